"""Rollout format: round trip, resume, crash safety, validation, BAIR TFRecord interchange."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from mbvc.data.rollouts import RolloutDataset, RolloutWriter, rollouts_to_tfrecords, tfrecords_to_rollouts
from mbvc.errors import DataError, ShapeError

SPEC = {"env": "mbvc/Push-v0", "image_size": 8}


def episode(i: int, t: int = 6, states: bool = True):
    frames = np.full((t, 8, 8, 3), i, np.uint8)
    frames[:, 0, 0, 0] = np.arange(t)  # mark the step so windows can be checked
    actions = np.stack([np.full(2, i * 100 + s, np.float32) for s in range(t)])
    return frames, actions, (np.full((t, 3), i, np.float32) if states else None)


def write(root, n, shard_size=2, **kw):
    with RolloutWriter(root, SPEC, shard_size=shard_size) as w:
        for i in range(w.num_episodes, w.num_episodes + n):
            f, a, s = episode(i, **kw)
            w.add_episode(f, a, s, rewards=np.zeros(len(f)))
    return w


def test_round_trip_windows(tmp_path):
    write(tmp_path, 3)
    ds = RolloutDataset(tmp_path, seq_len=4, stride=2)
    assert len(ds) == 3 * 2
    sample = ds[3]  # episode 1, start 2
    assert sample["frames"].shape == (4, 3, 8, 8) and sample["frames"].dtype == torch.float32
    assert sample["frames"][0, 0, 0, 0] == pytest.approx(2 / 255)
    assert sample["frames"][0, 1, 1, 1] == pytest.approx(1 / 255)
    assert sample["actions"][:, 0].tolist() == [102, 103, 104, 105]
    assert sample["states"].shape == (4, 3) and sample["rewards"].shape == (4,)
    raw = RolloutDataset(tmp_path, seq_len=6, stride=None, uint8=True)
    assert len(raw) == 3 and raw[2]["frames"].dtype == torch.uint8


def test_resume_appends_new_shards(tmp_path):
    write(tmp_path, 3)  # shards of 2 + 1
    with RolloutWriter(tmp_path, SPEC, shard_size=2) as w:
        assert w.num_episodes == 3
        f, a, s = episode(3)
        w.add_episode(f, a, s, rewards=np.zeros(6))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["num_episodes"] == 4 and len(manifest["shards"]) == 3
    ds = RolloutDataset(tmp_path, seq_len=6, stride=None)
    assert [int(ds[i]["actions"][0, 0]) for i in range(4)] == [0, 100, 200, 300]


def test_crash_loses_only_the_unfinished_shard(tmp_path):
    script = textwrap.dedent(f"""
        import os, numpy as np
        from mbvc.data.rollouts import RolloutWriter
        w = RolloutWriter({str(tmp_path)!r}, {SPEC!r}, shard_size=2)
        for i in range(3):
            w.add_episode(np.zeros((5, 8, 8, 3), np.uint8), np.zeros((5, 2), np.float32))
        os._exit(3)  # killed: no close(), no flush
    """)
    assert subprocess.run([sys.executable, "-c", script], cwd=".").returncode == 3
    with RolloutWriter(tmp_path, SPEC, shard_size=2) as w:
        assert w.num_episodes == 2  # the finished shard survived, the open one is gone
        w.add_episode(np.ones((5, 8, 8, 3), np.uint8), np.ones((5, 2), np.float32))
    ds = RolloutDataset(tmp_path, seq_len=5, stride=None, uint8=True)
    assert len(ds) == 3 and int(ds[2]["frames"].max()) == 1


def test_exception_inside_with_keeps_added_episodes(tmp_path):
    with pytest.raises(RuntimeError):
        with RolloutWriter(tmp_path, SPEC) as w:
            w.add_episode(*episode(0)[:2])
            raise RuntimeError("env crashed")
    assert RolloutWriter(tmp_path, SPEC).num_episodes == 1


def test_other_spec_is_refused(tmp_path):
    write(tmp_path, 1)
    with pytest.raises(DataError, match="spec"):
        RolloutWriter(tmp_path, {"env": "other"})


def test_second_writer_is_refused(tmp_path):
    with RolloutWriter(tmp_path, SPEC):
        with pytest.raises(DataError, match="another process"):
            RolloutWriter(tmp_path, SPEC)


def test_bad_frames_dtype(tmp_path):
    with RolloutWriter(tmp_path, SPEC) as w, pytest.raises(ShapeError, match="uint8"):
        w.add_episode(np.zeros((5, 8, 8, 3), np.float32), np.zeros((5, 2)))


def test_actions_length_mismatch(tmp_path):
    with RolloutWriter(tmp_path, SPEC) as w, pytest.raises(ShapeError, match="T = 5"):
        w.add_episode(np.zeros((5, 8, 8, 3), np.uint8), np.zeros((4, 2)))


def test_inconsistent_fields(tmp_path):
    with RolloutWriter(tmp_path, SPEC) as w:
        w.add_episode(np.zeros((5, 8, 8, 3), np.uint8), np.zeros((5, 2)))
        with pytest.raises(DataError, match="differ"):
            w.add_episode(np.zeros((5, 8, 8, 3), np.uint8), np.zeros((5, 3)))


def test_missing_folder():
    with pytest.raises(DataError, match="does not exist"):
        RolloutDataset("/nonexistent/rollouts", seq_len=4)


def test_short_episode_raises_or_is_skipped(tmp_path):
    write(tmp_path, 2)
    with pytest.raises(DataError, match="shorter than the window"):
        RolloutDataset(tmp_path, seq_len=7)
    with RolloutWriter(tmp_path, SPEC) as w:
        f, a, s = episode(2, t=9)
        w.add_episode(f, a, s, rewards=np.zeros(9))
    assert len(RolloutDataset(tmp_path, seq_len=7, skip_short=True)) == 3


def test_damaged_shard_names_file(tmp_path):
    write(tmp_path, 2)
    with open(tmp_path / "shard_00000" / "actions.bin", "r+b") as f:
        f.truncate(10)
    with pytest.raises(DataError, match="actions.bin"):
        RolloutDataset(tmp_path, seq_len=4)[0]


def test_tfrecord_interchange(tmp_path):
    write(tmp_path / "a", 3)
    files = rollouts_to_tfrecords(tmp_path / "a", tmp_path / "tf", records_per_file=2)
    assert [p.name for p in files] == ["traj_0_to_1.tfrecords", "traj_2_to_2.tfrecords"]
    assert tfrecords_to_rollouts(tmp_path / "tf", tmp_path / "b", image_size=8) == 3
    a = RolloutDataset(tmp_path / "a", seq_len=6, stride=None)
    b = RolloutDataset(tmp_path / "b", seq_len=6, stride=None)
    for i in range(3):
        for key in ("frames", "actions", "states"):
            assert torch.equal(a[i][key], b[i][key])
    assert "rewards" not in b[0]  # BAIR has no rewards


def test_tfrecord_interchange_without_states(tmp_path):
    write(tmp_path / "a", 2, states=False)
    rollouts_to_tfrecords(tmp_path / "a", tmp_path / "tf")
    tfrecords_to_rollouts(tmp_path / "tf", tmp_path / "b", image_size=8)
    assert "states" not in RolloutDataset(tmp_path / "b", seq_len=6)[0]


def test_pickles_without_the_data(tmp_path):
    """DataLoader workers started by spawn get the dataset pickled: maps must reopen, not copy."""
    write(tmp_path, 2)
    ds = RolloutDataset(tmp_path, seq_len=4)
    ds[0]  # open the maps
    blob = pickle.dumps(ds)
    assert len(blob) < 4096
    assert torch.equal(pickle.loads(blob)[3]["frames"], ds[3]["frames"])
