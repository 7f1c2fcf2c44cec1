"""A tiny ``collect -> train -> plan`` on gymnasium's Reacher (``mbvc/Reacher-v0``), headless, through the CLI."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("mujoco")

from mbvc.cli import main  # noqa: E402


def test_collect_train_plan_on_reacher_with_the_designated_object_cost(tmp_path):
    data = tmp_path / "data"
    common = ["--env", "mbvc/Reacher-v0", "--image-size", "32", "--episode-length", "14",
              "--policy", "envs.reacher:data_policy", "--env-kwargs", '{"control": "velocity"}', "--no-progress"]
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
    # planned in the env the data came from (velocity control), with the command line's kwargs on top
    assert report["settings"]["env_kwargs"] == {"control": "velocity", "episode_length": 3}
    assert (out / "episode.gif").is_file()


def test_plan_takes_the_env_kwargs_of_its_training_data_from_the_same_env_only(tmp_path):
    from agents.plan_records import data_env_kwargs

    (tmp_path / "manifest.json").write_text(json.dumps(
        {"spec": {"env_id": "mbvc/Reacher-v0", "env_kwargs": {"control": "velocity"}}}))
    assert data_env_kwargs(tmp_path, "mbvc/Reacher-v0") == {"control": "velocity"}
    assert data_env_kwargs(tmp_path, "mbvc/Push-v0") == {}  # another env's settings would not fit
    assert data_env_kwargs(tmp_path / "missing", "mbvc/Reacher-v0") == {} and data_env_kwargs(None, "x") == {}


def test_the_designated_colour_follows_the_fingertip_in_real_reacher_frames():
    """The preset's tracker (1-pixel patch, squared differences) on rendered episodes, against the true fingertip."""
    import gymnasium as gym
    import numpy as np
    import torch

    import envs  # noqa: F401
    from agents.core import image_to_tensor
    from agents.costs.designated import extract_patch, track_template
    from envs.reacher import data_policy

    env = gym.make("mbvc/Reacher-v0", image_size=32, render_scale=2, episode_length=30)
    errors = []
    for seed in (1, 3):
        policy = data_policy(env, reach_prob=0.5)
        policy.reset(seed)
        obs, _ = env.reset(seed=seed)
        frames, truth = [image_to_tensor(obs["image"])], [env.unwrapped.designate((32, 32))[0]]
        for _ in range(30):
            obs, *_ = env.step(policy(obs))
            frames.append(image_to_tensor(obs["image"]))
            truth.append(env.unwrapped.designate((32, 32))[0])
        video = torch.stack(frames)[None]
        pos = track_template(video, extract_patch(video[0, 0], truth[0], 1), truth[0], 0.001, 4.0, "ssd")[0]
        errors.append(np.linalg.norm(pos.numpy() - np.array(truth), axis=1))
    env.close()
    assert np.mean(errors) < 1.0 and np.max(errors) < 2.5
