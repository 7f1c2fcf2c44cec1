"""``mbvc train`` starts that fail on their data, run as a user runs them (a subprocess each).

* A start that fails before its first checkpoint (a damaged data file) leaves nothing that blocks
  the corrected command: no "already holds a run", no "--resume ... another data"; files the user
  had in the folder stay.
* A model configured for other frames (size, channels) or another action dimension than the data
  is refused at the start, naming data.root and the model setting, before a run folder exists.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mbvc.data.rollouts import RolloutWriter

ENV = {**os.environ, "MUJOCO_GL": "egl", "PYTHONDONTWRITEBYTECODE": "1"}
PRESET = "push-predrnn-v2-small"
#: A one-layer, 4-channel action-conditioned PredRNN-V2 on 16x16 rollouts, 2 -> 4 frames, 2 iterations.
TINY = ["model.num_hidden=[4]", "model.filter_size=3", "model.input_length=2", "model.total_length=4",
        "model.img_width=16", "train.iterations=2", "train.batch_size=2", "train.progress=false",
        "train.tensorboard=false", "train.eval_interval=0", "train.checkpoint_interval=100", "train.warmup_iters=0",
        "eval.horizon=2", "eval.batch_size=2", "eval.val_batches=1", "eval.lpips=false"]


def _train(*args: object, overrides: list[str], cwd: Path) -> subprocess.CompletedProcess:
    sets = [x for item in [*TINY, *overrides] for x in ("--set", item)]
    return subprocess.run([sys.executable, "-m", "mbvc", "train", *map(str, args), *sets, "--threads", "1"],
                          cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def _one_line_error(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    assert "Traceback" not in out.stderr, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("mbvc train: ")]
    assert len(lines) == 1 and "error:" in lines[0], out.stderr
    assert out.stderr.rstrip().splitlines()[-1] == lines[0], out.stderr
    return lines[0]


def _rollouts(root: Path, episodes: int, seed: int) -> None:
    """16x16 RGB episodes of 6 frames with 2-d actions, one episode per shard."""
    rng = np.random.default_rng(seed)
    with RolloutWriter(root, {"source": "tests.robustness"}, shard_size=1) as writer:
        for _ in range(episodes):
            writer.add_episode(rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8),
                               rng.uniform(-1, 1, (6, 2)).astype(np.float32))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("push")
    _rollouts(root / "train", 4, seed=0)
    _rollouts(root / "val", 2, seed=1)
    return root


def test_a_start_that_fails_on_damaged_data_leaves_nothing_that_blocks_the_fix(tmp_path, data):
    damaged = tmp_path / "damaged"
    for split in ("train", "val"):
        _rollouts(damaged / split, 4 if split == "train" else 2, seed=0 if split == "train" else 1)
    for shard in ("shard_00001", "shard_00002", "shard_00003"):  # the first episode is fine: training starts
        (damaged / "train" / shard / "frames.bin").write_bytes(b"\0" * 100)
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("the user's")

    failed = _train(PRESET, "--run-dir", run, overrides=[f"data.root={damaged}"], cwd=tmp_path)
    line = _one_line_error(failed)
    assert "frames.bin" in line and "damaged" in line, line
    assert "run dir:" in failed.stdout  # it failed in training, after config.yaml was written
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]  # what the failed start wrote is gone
    assert (run / "notes.txt").read_text() == "the user's"

    fixed = _train(PRESET, "--run-dir", run, overrides=[f"data.root={data}"], cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert (run / "model.safetensors").is_file() and (run / "notes.txt").read_text() == "the user's"


def test_a_start_that_fails_in_a_new_folder_removes_the_folder(tmp_path, data):
    run = tmp_path / "runs" / "new"
    missing = tmp_path / "nowhere"
    _one_line_error(_train(PRESET, "--run-dir", run, overrides=[f"data.root={missing}"], cwd=tmp_path))
    assert not run.exists()
    resumed = _train("--resume", "--run-dir", run, overrides=[f"data.root={data}"], cwd=tmp_path)
    assert "not an mbvc run folder" in _one_line_error(resumed)  # nothing half-made to resume


@pytest.mark.parametrize("override, named", [
    ("model.img_width=32", ["data.root=", "16x16", "32x32", "model.img_width=16"]),
    ("model.img_channel=1", ["data.root=", "3x16x16", "1x16x16", "model.img_channel=3"]),
    ("model.num_action_ch=4", ["data.root=", "model.num_action_ch=4", "model.num_action_ch=2"]),
], ids=["frame-size", "channels", "action-dim"])
def test_a_model_for_other_data_is_refused_at_the_start(tmp_path, data, override, named):
    run = tmp_path / "run"
    line = _one_line_error(_train(PRESET, "--run-dir", run, overrides=[f"data.root={data}", override], cwd=tmp_path))
    for word in named:
        assert word in line, line
    assert not run.exists()


def test_a_run_dir_that_is_a_file_or_under_one_is_one_line(tmp_path, data):
    a_file = tmp_path / "a_file"
    a_file.write_text("the user's")
    for run in (a_file, a_file / "run"):
        line = _one_line_error(_train(PRESET, "--run-dir", run, overrides=[f"data.root={data}"], cwd=tmp_path))
        assert str(a_file) in line and ("is a file" in line or "Not a directory" in line), line
    assert a_file.read_text() == "the user's"


def test_resuming_a_run_that_never_saved_accepts_the_fixed_data(tmp_path, data):
    """A folder left by a start that died before its first checkpoint (e.g. killed) resumes with other data."""
    done = tmp_path / "done"
    assert _train(PRESET, "--run-dir", done, overrides=[f"data.root={data}"], cwd=tmp_path).returncode == 0
    left = tmp_path / "left"
    left.mkdir()
    config = (done / "config.yaml").read_text()
    assert f"root: {data}" in config
    (left / "config.yaml").write_text(config.replace(f"root: {data}", f"root: {tmp_path / 'gone'}"))

    resumed = _train("--resume", "--run-dir", left, overrides=[f"data.root={data}"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (left / "model.safetensors").is_file() and f"root: {data}" in (left / "config.yaml").read_text()
    # once a run has saved, its data is fixed
    again = _train("--resume", "--run-dir", left, overrides=[f"data.root={tmp_path / 'gone'}"], cwd=tmp_path)
    assert "another data" in _one_line_error(again)
