"""Rollout collection: the format the data loaders read, parallel = serial, resuming, export, CLI."""
from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from envs.collect import CollectConfig, collect, episode_seed, export_tfrecords
from mbvc.cli import main
from mbvc.data.bair import read_bair_file
from mbvc.data.config import DataConfig, build_dataset
from mbvc.data.rollouts import RolloutDataset
from mbvc.data.store import SequenceStore
from mbvc.errors import ConfigError

CFG = CollectConfig("mbvc/Push-v0", num_episodes=4, policy="mixed", image_size=8, episode_length=4,
                    shard_size=2, progress=False)
FIELDS = ("frames", "actions", "states", "rewards")


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    """CFG collected serially in one go: the reference the other collections must equal."""
    root = tmp_path_factory.mktemp("whole")
    collect(root, CFG)
    return root


def assert_same_episodes(a, b, n: int) -> None:
    """The first ``n`` episodes of ``a`` and ``b`` are identical, and ``b`` holds exactly ``n``."""
    store_a, store_b = SequenceStore(a), SequenceStore(b)
    assert len(store_a) >= n and len(store_b) == n
    for ep in range(n):
        for field in FIELDS:
            np.testing.assert_array_equal(store_a.read(ep, field), store_b.read(ep, field), f"{ep}/{field}")


def test_collection_is_read_back_by_the_loaders(tmp_path):
    stats = collect(tmp_path, CFG)
    assert (stats.episodes_total, stats.episodes_new, stats.frames) == (4, 4, 20)
    ds = RolloutDataset(tmp_path, seq_len=5, stride=None)
    sample = ds[0]
    assert len(ds) == 4
    assert sample["frames"].shape == (5, 3, 8, 8) and 0.0 <= sample["frames"].min() <= sample["frames"].max() <= 1.0
    assert sample["actions"].shape == (5, 2) and sample["states"].shape == (5, 14)
    assert sample["rewards"].shape == (5,)
    assert not sample["actions"][-1].any() and sample["rewards"][-1] == 0  # BAIR padding
    assert ds.spec["env_id"] == "mbvc/Push-v0"


def test_episodes_replay_from_their_seeds(tmp_path, make_push):
    collect(tmp_path, dataclasses.replace(CFG, num_episodes=2))
    store = SequenceStore(tmp_path)
    env = make_push(image_size=8, episode_length=4)
    obs, _ = env.reset(seed=episode_seed(CFG.seed, 1))
    frames = [obs["image"]] + [env.step(a)[0]["image"] for a in store.read(1, "actions")[:-1]]
    np.testing.assert_array_equal(np.stack(frames), store.read(1, "frames"))


def test_interrupted_collection_resumes_without_duplicates_or_loss(tmp_path, whole):
    def interrupt(index, arrays):
        if index == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect(tmp_path / "resumed", CFG, on_episode=interrupt)
    assert len(SequenceStore(tmp_path / "resumed")) == 3  # episodes written before Ctrl-C are kept
    stats = collect(tmp_path / "resumed", CFG)
    assert (stats.episodes_total, stats.episodes_new) == (4, 1)
    assert_same_episodes(whole, tmp_path / "resumed", 4)
    assert collect(tmp_path / "resumed", CFG).episodes_new == 0


def test_killed_collection_resumes_without_duplicates_or_loss(tmp_path, whole):
    """SIGKILL mid-shard: the unfinished shard is dropped and collected again on resume."""
    script = (
        "import os, signal, sys\n"
        "import envs\n"
        "from envs.collect import collect\n"
        "from tests.envs.test_collect import CFG\n"
        "def die(index, arrays):\n"
        "    if index == 2:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        f"collect({str(tmp_path / 'killed')!r}, CFG, on_episode=die)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert len(SequenceStore(tmp_path / "killed")) == 2  # shard 0 finished; shard 1 was open
    assert collect(tmp_path / "killed", CFG).episodes_new == 2
    assert_same_episodes(whole, tmp_path / "killed", 4)


def test_vectorised_collection_equals_serial(tmp_path, whole):
    # 3 episodes on 2 workers: the second round leaves a worker idle.
    collect(tmp_path, dataclasses.replace(CFG, num_episodes=3, num_envs=2))
    assert_same_episodes(whole, tmp_path, 3)


def test_resuming_with_another_spec_raises(tmp_path):
    collect(tmp_path, dataclasses.replace(CFG, num_episodes=1))
    with pytest.raises(ValueError, match="spec"):
        collect(tmp_path, dataclasses.replace(CFG, num_episodes=2, policy="random"))


def test_build_dataset_reads_a_collection(tmp_path):
    """The trainer's entry point (DataConfig name='rollouts') reads collected data."""
    collect(tmp_path / "train", dataclasses.replace(CFG, num_episodes=2))
    ds = build_dataset(DataConfig(name="rollouts", root=str(tmp_path), seq_len=3, uint8=True), "train")
    assert len(ds) == 2 * 3  # stride 1: windows at steps 0, 1, 2 of each 5-frame episode
    sample = ds[4]
    assert sample["frames"].shape == (3, 3, 8, 8) and str(sample["frames"].dtype) == "torch.uint8"
    np.testing.assert_array_equal(sample["frames"].permute(0, 2, 3, 1).numpy(),
                                  SequenceStore(tmp_path / "train").read(1, "frames")[1:4])


class GoalSeekingAgent:
    """A stand-in for a trained agent: its actions depend on its seed and on the goal image."""

    def __init__(self, gain: float) -> None:
        self.gain = gain

    def reset(self, obs=None, goal=None, seed=None) -> None:
        assert obs["image"].shape == goal.shape == (8, 8, 3), "reset with the first frame and the goal image"
        self.rng, self.bias = np.random.default_rng(seed), self.gain * (goal.mean() / 255 - 0.5)

    def act(self, obs) -> np.ndarray:
        return np.clip(self.rng.uniform(-0.5, 0.5, 2) + self.bias, -1, 1)


def goal_agent(env, gain: float = 1.0) -> GoalSeekingAgent:
    """``module:factory`` of :class:`GoalSeekingAgent`."""
    return GoalSeekingAgent(gain)


def test_trained_agent_policy_serial_and_vectorised(tmp_path, make_push):
    cfg = dataclasses.replace(CFG, num_episodes=2, policy="tests.envs.test_collect:goal_agent",
                              policy_kwargs={"gain": 3.0})
    collect(tmp_path / "serial", cfg)
    collect(tmp_path / "parallel", dataclasses.replace(cfg, num_envs=2))
    assert_same_episodes(tmp_path / "serial", tmp_path / "parallel", 2)
    # What the agent was given: the episode's seed and its goal image.
    env, store = make_push(image_size=8, episode_length=4), SequenceStore(tmp_path / "parallel")
    for ep in range(2):
        seed = episode_seed(cfg.seed, ep)
        env.reset(seed=seed)
        agent = GoalSeekingAgent(3.0)
        agent.rng, agent.bias = np.random.default_rng(seed), 3.0 * (env.unwrapped.goal_image().mean() / 255 - 0.5)
        expected = [agent.act(None) for _ in range(4)]
        np.testing.assert_allclose(store.read(ep, "actions")[:-1], expected, rtol=1e-6)


def test_tfrecord_export_is_bair_readable(tmp_path):
    collect(tmp_path / "rollouts", dataclasses.replace(CFG, num_episodes=2))
    files = export_tfrecords(tmp_path / "rollouts", tmp_path / "tfrecords")
    episodes = [ep for f in files for ep in read_bair_file(f, "image_aux1", image_size=8)]
    store = SequenceStore(tmp_path / "rollouts")
    assert len(episodes) == 2
    np.testing.assert_array_equal(episodes[1]["frames"], store.read(1, "frames"))
    np.testing.assert_array_equal(episodes[1]["actions"], store.read(1, "actions"))
    # mbvc's BAIR loader, as a preset would configure it (the exported files as the test split).
    (tmp_path / "bair").mkdir()
    (tmp_path / "tfrecords").rename(tmp_path / "bair" / "test")
    ds = build_dataset(DataConfig(name="bair", root=str(tmp_path / "bair"), image_size=8, eval_seq_len=5), "test")
    sample = ds[1]
    assert len(ds) == 2 and sample["frames"].shape == (5, 3, 8, 8) and sample["actions"].shape == (5, 2)
    np.testing.assert_allclose(sample["frames"].permute(0, 2, 3, 1).numpy() * 255, store.read(1, "frames"), atol=1e-3)
    assert sample["states"].shape == (5, 14)  # the env state rides in BAIR's endeffector_pos


def test_config_errors():
    with pytest.raises(ConfigError, match="num_envs"):
        CollectConfig(num_envs=0)
    with pytest.raises(ConfigError, match="episode_length"):
        CollectConfig(episode_length=0)


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["collect", str(out), "-n", "2", "--policy", "scripted", "--image-size", "8",
            "--episode-length", "3", "--no-progress", "--env-kwargs", '{"goal_distance": [0.06, 0.08]}']
    assert main(args) == 0
    assert "wrote 2 episodes" in capsys.readouterr().out
    assert len(SequenceStore(out)) == 2
    assert main(["collect", str(tmp_path / "bad"), "--policy", "scriptd", "--no-progress"]) == 2
    assert "Did you mean 'scripted'" in capsys.readouterr().err
    assert main(["collect", str(tmp_path / "bad"), "--policy-kwargs", "[1]", "--no-progress"]) == 2
    assert "--policy-kwargs must be a JSON object" in capsys.readouterr().err
