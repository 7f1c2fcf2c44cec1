"""The control benchmark's results file: rows of agents not rerun survive when comparable."""
from __future__ import annotations

import json

from benchmarks.control import previous_rows, settings
from agents.demo import demo_settings


def demo_config(**changes):
    """The demo's settings with ``section.key`` changes."""
    return demo_settings(overrides=["demo.progress=false", *(f"{k}={v}" for k, v in changes.items())])


ROWS = {"random": {"success_rate": 0.0}, "predrnn_v2_mpc": {"success_rate": 0.5}, "sb3_state": {"success_rate": 0.1}}


def _results_file(tmp_path, cfg):
    path = tmp_path / "control_cpu.json"
    path.write_text(json.dumps({"settings": settings(cfg), "results": ROWS,
                                "planning_time": {"predrnn_v2_mpc": {"plan_ms": 800.0}},
                                "world_models": {"predrnn_v2": {"iterations": 10}, "predrnn": {"iterations": 10}}}))
    return path


def test_rows_of_agents_not_run_are_kept_with_the_same_settings(tmp_path):
    cfg = demo_config()
    kept = previous_rows(_results_file(tmp_path, cfg), ["random"], cfg)
    assert set(kept["results"]) == {"predrnn_v2_mpc", "sb3_state"}  # the rerun agent's row goes
    assert set(kept["planning_time"]) == {"predrnn_v2_mpc"}
    assert set(kept["world_models"]) == {"predrnn_v2"}  # only the models of kept rows


def test_planning_rows_go_when_the_planner_changed_but_the_task_did_not(tmp_path):
    path = _results_file(tmp_path, demo_config())
    kept = previous_rows(path, [], demo_config(**{"plan.population_size": 100}))
    assert set(kept["results"]) == {"random", "sb3_state"} and kept["planning_time"] == {}
    assert previous_rows(path, [], demo_config(**{"demo.eval_episode_length": 30})) == {}  # another task


def test_timing_only_keeps_the_success_rows_of_the_timed_agents(tmp_path):
    cfg = demo_config()
    kept = previous_rows(_results_file(tmp_path, cfg), ["predrnn_v2_mpc"], cfg, timing_only=True)
    assert kept["results"]["predrnn_v2_mpc"] == ROWS["predrnn_v2_mpc"] and "predrnn_v2_mpc" not in kept["planning_time"]


def test_unreadable_or_missing_file_starts_afresh(tmp_path):
    cfg = demo_config()
    assert previous_rows(tmp_path / "none.json", [], cfg) == {}
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert previous_rows(bad, [], cfg) == {}
