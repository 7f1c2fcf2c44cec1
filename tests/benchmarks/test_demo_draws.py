"""benchmarks/demo_draws.py: the demo per training draw, the away-from-camera goals split out."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("mujoco")


def test_draws_are_summarised_per_seed_and_resumed(tmp_path):
    from benchmarks.demo_draws import main

    args = ["--name", "tiny", "--seeds", "0,1", "--root", str(tmp_path / "draws"), "--quick", "--out", str(tmp_path / "r")]
    assert main(args) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    row = report["draws"]["0"]
    assert row["goals"] == 2 and row["away_solved"] + row["others_solved"] == round(row["success"] * 2)
    assert report["mean_success"] == (row["success"] + report["draws"]["1"]["success"]) / 2
    # each draw plays its own goals (1000000 + 1000 x seed + i), so each has its own away set
    assert set(report["away_goals"]["0"]) <= {1000000, 1000001} and set(report["away_goals"]["1"]) <= {1001000, 1001001}
    for seed in ("0", "1"):
        assert report["draws"][seed]["away_goals"] == len(report["away_goals"][seed])
    assert main(args) == 0  # a finished draw is not trained again
    again = json.loads((tmp_path / "r.json").read_text())["draws"]["0"]
    assert again["skipped"] == ["collect", "train", "plan"] and again["success"] == row["success"]
    assert (tmp_path / "r.md").read_text().startswith("# The demo over training draws: tiny")


def test_a_cost_switch_and_another_cost_on_the_same_models(tmp_path):
    from benchmarks.demo_draws import main

    args = ["--name", "tiny", "--seeds", "0", "--root", str(tmp_path / "draws"), "--quick", "--out", str(tmp_path / "r"),
            "--cost", "designated_push", "--also-cost", "push"]
    assert main(args) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    row = report["draws"]["0"]
    demo = json.loads((tmp_path / "draws" / "tiny-s0" / "report.json").read_text())
    assert demo["results"]["mpc"]["planner"]["cost"] == "designated_push"
    push = json.loads((tmp_path / "draws" / "tiny-s0" / "plan_push" / "results.json").read_text())
    assert push["results"]["mpc"]["planner"]["cost"] == "push" and set(push["results"]) == {"mpc"}
    assert row["also"]["push"]["success"] == push["results"]["mpc"]["success_rate"]
    assert "planned with the `push` cost" in (tmp_path / "r.md").read_text()
