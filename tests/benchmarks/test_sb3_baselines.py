"""benchmarks/sb3_baselines.py: a smoke run trains, evaluates on the seeded goals, and reuses its models."""
from __future__ import annotations

import json
import sys

import pytest

import envs

envs.setup_gl()  # before MuJoCo loads: headless GL, and no TensorFlow behind SB3's TensorBoard (envs/_gl.py)

pytest.importorskip("stable_baselines3")
pytest.importorskip("mujoco")


@pytest.fixture(autouse=True)
def _renderable() -> None:
    from envs._gl import mesa_software_gl

    if "tensorflow" in sys.modules and mesa_software_gl():
        pytest.skip("tensorflow is loaded in this pytest process and would crash Mesa's software OpenGL")


def test_quick_run_scores_each_baseline_on_the_seeded_goals_and_reuses_trained_models(tmp_path):
    from benchmarks.sb3_baselines import main

    out, work = tmp_path / "sb3.json", tmp_path / "models"
    args = ["--algos", "ppo", "--observations", "state,pixels", "--steps", "32", "--episodes", "2",
            "--image-size", "16", "--env-kwargs", '{"episode_length": 5}', "--work-dir", str(work), "--out", str(out)]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["seeds"] == [1_000_000, 1_000_001]
    assert [(r["algo"], r["observation"]) for r in report["rows"]] == [("ppo", "state"), ("ppo", "pixels")]
    assert all(r["episodes"] == 2 and r["train_steps"] == 32 and r["train_seconds"] > 0 for r in report["rows"])
    assert (work / "ppo-state-32" / "model.zip").is_file()
    first = [r["final_distance"] for r in report["rows"]]
    assert main(args) == 0  # the saved models are evaluated again: same episodes, no training
    again = json.loads(out.read_text())["rows"]
    assert [r["final_distance"] for r in again] == first and all(r["train_seconds"] is None for r in again)
    assert "| SB3 PPO from state |" in out.with_suffix(".md").read_text()


def test_bad_arguments_exit_with_one_line(capsys):
    from benchmarks.sb3_baselines import main

    with pytest.raises(SystemExit) as exc:
        main(["--env-kwargs", "{nope"])
    assert exc.value.code == 2 and "--env-kwargs must be a JSON object" in capsys.readouterr().err
