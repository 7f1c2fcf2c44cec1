"""``mbvc plan --workers N`` and the demo's ``demo.plan_workers``: the records of a serial run, resumable, one-line errors."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("mujoco")

from agents.demo import DemoRun, demo_settings
from agents.plan_records import WORKERS_DIR
from mbvc.cli import main
from mbvc.errors import ConfigError

ENV = ["--env", "mbvc/Push-v0", "--env-kwargs", "episode_length=4", "terminate_on_success=true"]
FAST = ["--population", "8", "--iterations", "1", "--horizon", "4", "--replan-every", "2", "--no-progress"]
TIMING = ("plan_ms", "plan_times_ms", "seconds")
QUIET = ["demo.progress=false"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """A tiny demo folder whose collect and train stages are done (seconds)."""
    out = tmp_path_factory.mktemp("plan_workers") / "demo"
    DemoRun(demo_settings(tiny=True, overrides=QUIET), out).train()
    return out


@pytest.fixture(scope="module")
def serial(demo_dir, tmp_path_factory):
    """A serial run on seeds 0-2, the reference of the runs with workers."""
    out = tmp_path_factory.mktemp("serial") / "plan"
    assert main(["plan", str(demo_dir / "model"), *ENV, "--out", str(out), "--episodes", "3", *FAST]) == 0
    return out


def _records(out) -> list[dict]:
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def _figures(out) -> dict:
    results = json.loads((out / "results.json").read_text())["results"]
    return {agent: {"success_rate": r["success_rate"], "final_distance": r["final_distance"], "episodes": r["episodes"],
                    "per_episode": [{k: v for k, v in e.items() if k not in TIMING} for e in r["per_episode"]]}
            for agent, r in results.items()}


def test_two_workers_write_the_records_of_a_serial_run(demo_dir, serial, tmp_path):
    out = tmp_path / "plan"
    assert main(["plan", str(demo_dir / "model"), *ENV, "--out", str(out), "--episodes", "3", "--workers", "2",
                 *FAST]) == 0
    records = _records(out)
    assert [(r["agent"], r["seed"]) for r in records] == [(a, s) for a in ("mpc", "random", "oracle") for s in range(3)]
    assert records == _records(serial)
    assert _figures(out) == _figures(serial)
    assert (out / "episode.gif").read_bytes() == (serial / "episode.gif").read_bytes()  # the first MPC episode's
    assert not (out / WORKERS_DIR).exists()


def test_an_interrupted_run_resumes_with_workers(demo_dir, serial, tmp_path):
    out, model = tmp_path / "plan", str(demo_dir / "model")
    assert main(["plan", model, *ENV, "--out", str(out), "--seeds", "1", "--workers", "2", *FAST]) == 0
    first = (out / "episodes.jsonl").read_text().splitlines()
    # a killed run left a worker folder holding seed 2 of the random agent (marked to see it kept, not replayed)
    leftover = out / WORKERS_DIR / "0"
    leftover.mkdir(parents=True)
    (leftover / "plan.json").write_text((out / "plan.json").read_text())
    row = next(json.loads(x) for x in (serial / "episodes.jsonl").read_text().splitlines()
               if json.loads(x)["agent"] == "random" and json.loads(x)["seed"] == 2)
    (leftover / "episodes.jsonl").write_text(json.dumps({**row, "seconds": 123.0}) + "\n")
    assert main(["plan", model, *ENV, "--out", str(out), "--seeds", "0,1,2", "--workers", "2", *FAST]) == 0
    lines = (out / "episodes.jsonl").read_text().splitlines()
    assert lines[: len(first)] == first  # the earlier episodes are kept as they were
    assert len(lines) == 9 and [json.loads(x)["seconds"] for x in lines[3:4]] == [123.0]
    assert _figures(out) == _figures(serial)
    assert sorted(map(json.dumps, _records(out))) == sorted(map(json.dumps, _records(serial)))
    assert not (out / WORKERS_DIR).exists() and (out / "episode.gif").is_file()


def _error(capfd, argv) -> str:
    assert main(argv) == 2
    err = capfd.readouterr().err  # the workers' stderr too
    assert "Traceback" not in err, err
    lines = [x for x in err.splitlines() if "error:" in x]
    assert len(lines) == 1, err
    return lines[0]


def test_bad_workers_and_a_workers_error_are_one_line(demo_dir, tmp_path, capfd, monkeypatch):
    model = str(demo_dir / "model")
    line = _error(capfd, ["plan", model, *ENV, "--out", str(tmp_path / "zero"), "--workers", "0", *FAST])
    assert "--workers must be a positive integer, got 0" in line
    # a user's cost that fails while planning, i.e. in the workers: the serial run's error line
    (tmp_path / "nan_cost.py").write_text("def cost(frames, goal):\n    return frames.mean(dim=(1, 2, 3, 4)) * float('nan')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["plan", model, *ENV, "--episodes", "2", "--agents", "mpc", "--cost", "nan_cost:cost", *FAST]
    serial = _error(capfd, [*argv, "--out", str(tmp_path / "one")])
    assert "must be finite" in serial
    assert _error(capfd, [*argv, "--out", str(tmp_path / "two"), "--workers", "2"]) == serial
    assert not (tmp_path / "two" / WORKERS_DIR).exists()


def test_demo_plays_its_plan_stage_in_plan_workers(demo_dir):
    with pytest.raises(ConfigError, match="demo.plan_workers must be a positive integer, got 0"):
        demo_settings(tiny=True, overrides=["demo.plan_workers=0"])
    assert demo_settings().plan_workers == 2  # the preset's, fixed
    report = DemoRun(demo_settings(tiny=True, overrides=[*QUIET, "demo.plan_workers=2"]), demo_dir).plan()
    assert set(report["results"]) == {"mpc", "random", "oracle"}
    assert all([e["seed"] for e in r["per_episode"]] == report["seeds"] for r in report["results"].values())
    assert (demo_dir / "plan" / "episode.gif").is_file() and not (demo_dir / "plan" / WORKERS_DIR).exists()
    # the results do not depend on the number of workers: one worker finds the stage done
    again = DemoRun(demo_settings(tiny=True, overrides=QUIET), demo_dir)
    assert again.plan()["results"] == report["results"] and again.stages.skipped == ["collect", "train", "plan"]
