"""A tiny ``collect -> train -> plan`` on gymnasium's Reacher (``mbvc/Reacher-v0``), headless, through the CLI."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("mujoco")

from mbvc.cli import main  # noqa: E402


def test_collect_train_plan_on_reacher_with_the_designated_object_cost(tmp_path):
    data = tmp_path / "data"
    common = ["--env", "mbvc/Reacher-v0", "--image-size", "32", "--episode-length", "14",
              "--policy", "envs.reacher:data_policy", "--no-progress"]
    assert main(["collect", str(data / "train"), "-n", "2", *common]) == 0
    assert main(["collect", str(data / "val"), "-n", "1", "--seed", "1", *common]) == 0
    assert main(["train", "reacher-demo", "--run-dir", str(tmp_path / "model"), "--set", f"data.root={data}",
                 "--set", "train.iterations=3", "--set", "train.eval_interval=3", "--set", "train.checkpoint_interval=3",
                 "--set", "train.device=cpu", "--set", "eval.val_batches=1", "--no-progress", "--threads", "1"]) == 0
    out = tmp_path / "plan"
    assert main(["plan", str(tmp_path / "model"), "--env", "mbvc/Reacher-v0", "--env-kwargs", "episode_length=3",
                 "--out", str(out), "--episodes", "2", "--population", "8", "--iterations", "1", "--horizon", "3",
                 "--no-progress", "--threads", "1"]) == 0
    report = json.loads((out / "results.json").read_text())
    assert set(report["results"]) == {"mpc", "random", "oracle"}  # the oracle: Reacher has get/set state
    assert report["settings"]["cost"]["name"] == "designated_object"  # the preset's cost, from the run config
    assert all(e["steps"] == 3 for e in report["results"]["mpc"]["per_episode"])
    assert (out / "episode.gif").is_file()
