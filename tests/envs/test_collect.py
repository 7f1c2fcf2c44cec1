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
from mbvc.data.rollouts import RolloutDataset
from mbvc.data.store import SequenceStore
from mbvc.errors import ConfigError

CFG = CollectConfig("mbvc/Push-v0", num_episodes=4, policy="mixed", image_size=8, episode_length=4,
                    shard_size=2, progress=False)
FIELDS = ("frames", "actions", "states", "rewards")


def assert_same_episodes(a, b, n: int) -> None:
    store_a, store_b = SequenceStore(a), SequenceStore(b)
    assert len(store_a) == len(store_b) == n
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


def test_interrupted_collection_resumes_without_duplicates_or_loss(tmp_path):
    collect(tmp_path / "whole", CFG)

    def interrupt(index, arrays):
        if index == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect(tmp_path / "resumed", CFG, on_episode=interrupt)
    assert len(SequenceStore(tmp_path / "resumed")) == 3  # episodes written before Ctrl-C are kept
    stats = collect(tmp_path / "resumed", CFG)
    assert (stats.episodes_total, stats.episodes_new) == (4, 1)
    assert_same_episodes(tmp_path / "whole", tmp_path / "resumed", 4)
    assert collect(tmp_path / "resumed", CFG).episodes_new == 0


def test_killed_collection_resumes_without_duplicates_or_loss(tmp_path):
    """SIGKILL mid-shard: the unfinished shard is dropped and collected again on resume."""
    collect(tmp_path / "whole", CFG)
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
    assert_same_episodes(tmp_path / "whole", tmp_path / "killed", 4)


def test_vectorised_collection_equals_serial(tmp_path):
    cfg = dataclasses.replace(CFG, num_episodes=3)
    collect(tmp_path / "serial", cfg)
    collect(tmp_path / "parallel", dataclasses.replace(cfg, num_envs=2))
    assert_same_episodes(tmp_path / "serial", tmp_path / "parallel", 3)


def test_resuming_with_another_spec_raises(tmp_path):
    collect(tmp_path, dataclasses.replace(CFG, num_episodes=1))
    with pytest.raises(ValueError, match="spec"):
        collect(tmp_path, dataclasses.replace(CFG, num_episodes=2, policy="random"))


def test_tfrecord_export_is_bair_readable(tmp_path):
    collect(tmp_path / "rollouts", dataclasses.replace(CFG, num_episodes=2))
    files = export_tfrecords(tmp_path / "rollouts", tmp_path / "tfrecords")
    episodes = [ep for f in files for ep in read_bair_file(f, "image_aux1", image_size=8)]
    store = SequenceStore(tmp_path / "rollouts")
    assert len(episodes) == 2
    np.testing.assert_array_equal(episodes[1]["frames"], store.read(1, "frames"))
    np.testing.assert_array_equal(episodes[1]["actions"], store.read(1, "actions"))


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
