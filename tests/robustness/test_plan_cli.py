"""``mbvc plan`` as a careless or unlucky user runs it: one line and exit code 2, or correct records.

Each case runs ``python -m mbvc plan`` in a subprocess and checks the exit code, the one
``mbvc plan: error:`` line (no traceback) and what is on disk afterwards: a plan folder is
locked while a run plans into it, its records are written whole (a torn tail is dropped, a stray
line refused), seeds are counted before any list is made, and a start that failed leaves
nothing that blocks the corrected command.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.robustness.test_io_cli import mbvc, one_line_error

pytest.importorskip("mujoco")

ENV = ["--env", "mbvc/Push-v0", "--env-kwargs", "episode_length=3", "terminate_on_success=true"]
FAST = ["--population", "6", "--iterations", "1", "--horizon", "3", "--replan-every", "3", "--no-progress",
        "--threads", "1"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny world model trained by the demo's collect and train stages (seconds)."""
    import envs

    envs.setup_gl()
    from agents.demo import DemoRun, demo_settings

    out = tmp_path_factory.mktemp("plan_cli") / "demo"
    DemoRun(demo_settings(tiny=True, overrides=["demo.progress=false"]), out).train()
    return out / "model"


def test_bad_seeds_threads_and_env_kwargs_are_refused_before_any_work(tmp_path):
    out = tmp_path / "plan"
    cases = [
        (["--seeds", "1,1,1"], "seed 1 is given twice"),
        (["--seeds", "3-1,7"], "reversed"),
        (["--seeds", "0-100000000000"], "MBVC_MAX_EPISODES"),  # counted, not listed: no memory taken
        (["--seeds", "-1"], "non-negative"),
        (["--threads", "-1"], "--threads"),
        (["--episodes", "0"], "--episodes"),
        # an alias chain that expands to gigabytes when printed
        (["--env-kwargs", "x=[&a [1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], [*b,*b,*b,*b,*b,*b,*b,*b,*b]]"],
         "aliases"),
    ]
    for extra, named in cases:
        argv = ["plan", tmp_path / "no-model", "--env", "mbvc/Push-v0", "--out", out, *extra]
        one_line_error(mbvc(*argv, cwd=tmp_path, timeout=60), named)
        assert not out.exists()


def test_a_plan_folder_is_locked_and_its_records_are_whole(model, tmp_path):
    from mbvc.training.lock import RunLock

    out = tmp_path / "plan"
    run = ["plan", model, *ENV, "--out", out, "--agents", "mpc,random", *FAST]
    assert mbvc(*run, "--seeds", "0", cwd=tmp_path).returncode == 0
    records = (out / "episodes.jsonl").read_text()
    # another process plans into the folder: a second run is refused, nothing recorded twice
    with RunLock(out, created=False):
        one_line_error(mbvc(*run, "--seeds", "0,1", cwd=tmp_path), "in use by process")
    assert (out / "episodes.jsonl").read_text() == records
    # a crash mid-write left a torn last line: dropped with a warning, the next record on its own line
    (out / "episodes.jsonl").write_text(records + '{"agent": "mpc", "seed": 1, "succ')
    proc = mbvc(*run, "--seeds", "0,1", cwd=tmp_path)
    assert proc.returncode == 0 and "torn last line" in proc.stderr
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert sorted((r["agent"], r["seed"]) for r in rows) == [("mpc", 0), ("mpc", 1), ("random", 0), ("random", 1)]
    results = json.loads((out / "results.json").read_text())["results"]
    assert all(results[a]["episodes"] == 2 for a in ("mpc", "random"))  # the counts are the records'
    # a stray line is refused by name, not read as an episode
    (out / "episodes.jsonl").write_text("{}\n" + (out / "episodes.jsonl").read_text())
    one_line_error(mbvc(*run, "--seeds", "0,1", cwd=tmp_path), "episodes.jsonl line 1", "not an episode record")
    # an unreadable plan.json with episodes there: refused, not silently re-labelled
    (out / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "plan.json").write_text("{not json")
    one_line_error(mbvc(*run, "--seeds", "0,1", cwd=tmp_path), "plan.json cannot be read", "--force")
    assert len((out / "episodes.jsonl").read_text().splitlines()) == 4


def test_a_failed_start_does_not_block_the_corrected_command(model, tmp_path):
    out = tmp_path / "plan"
    # the first run fails after its folder was made (an env kwarg the env refuses when it resets)
    failed = mbvc("plan", model, *ENV, "goal_distance=[0.5,0.1]", "--out", out, "--agents", "random", "--seeds", "0",
                  *FAST, cwd=tmp_path)
    assert failed.returncode != 0
    # other settings, no episodes recorded: the corrected command runs
    ok = mbvc("plan", model, *ENV, "--out", out, "--agents", "random", "--seeds", "0", *FAST, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.loads((out / "results.json").read_text())["results"]["random"]["episodes"] == 1


def test_outputs_that_cannot_be_written_are_one_line(model, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    one_line_error(mbvc("plan", model, *ENV, "--out", blocker / "plan", "--agents", "random", "--seeds", "0", *FAST,
                        cwd=tmp_path), str(blocker))
    assert blocker.read_text() == "x"
