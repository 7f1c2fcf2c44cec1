"""Checkpoint files: atomic under SIGKILL, weights-only loading, rotation, clear errors."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from mbvc.errors import CheckpointError
from mbvc.training.checkpoint import (
    CheckpointManager,
    checkpoint_iteration,
    load_checkpoint,
    rng_states,
    save_checkpoint,
    set_rng_states,
)

# Saves a ~40 MB checkpoint over and over, printing after each completed save.
WRITER = """
import sys, torch
from mbvc.training.checkpoint import save_checkpoint
path = sys.argv[1]
i = 0
while True:
    i += 1
    save_checkpoint(path, {"iteration": i, "model": {"w": torch.full((10_000_000,), float(i))}})
    print(i, flush=True)
"""


def _writing(folder) -> bool:
    for p in folder.iterdir():
        try:
            if p.name.endswith(".tmp") and p.stat().st_size > 0:
                return True
        except FileNotFoundError:  # renamed between listing and stat
            pass
    return False


def test_a_kill_during_save_leaves_the_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "checkpoints" / "ckpt-00000001.pt"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert proc.stdout.readline().strip() == "1"  # one complete save on disk
        deadline = time.monotonic() + 20
        while not _writing(path.parent):
            assert time.monotonic() < deadline, "the writer never started a second save"
        proc.send_signal(signal.SIGKILL)  # in the middle of writing the temporary file
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert any(p.name.endswith(".tmp") for p in path.parent.iterdir())  # the killed save's leftovers
    state = load_checkpoint(path)
    n = state["iteration"]
    assert n >= 1 and torch.equal(state["model"]["w"], torch.full((10_000_000,), float(n)))
    manager = CheckpointManager(path.parent)
    found_path, found = manager.latest()  # also removes temporaries of the killed save
    assert found_path == path and found["iteration"] == n
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_failed_save_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt-00000001.pt"
    save_checkpoint(path, {"iteration": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, {"iteration": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["iteration"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    import random

    import numpy as np

    save_checkpoint(tmp_path / "c.pt", {"rng": rng_states()})
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    set_rng_states(load_checkpoint(tmp_path / "c.pt")["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected


def test_rotation_and_latest_skip_unreadable_files(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    for i in (1, 2, 3):
        manager.save(i, {"iteration": i})
    assert [p.name for p in manager.list()] == ["ckpt-00000002.pt", "ckpt-00000003.pt"]
    manager.path(4).write_bytes(b"truncated")
    path, state = manager.latest()
    assert state["iteration"] == 3
    (tmp_path / "notes.txt").write_text("mine")  # a user's file is never touched
    manager.save(5, {"iteration": 5})
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_foreign_files_are_refused_clearly(tmp_path):
    torch.save({"net_param": {"conv_last.weight": torch.zeros(1)}}, tmp_path / "model.ckpt-1000")
    with pytest.raises(CheckpointError, match="reference checkpoint.*mbvc convert"):
        load_checkpoint(tmp_path / "model.ckpt-1000")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable training checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.slow  # two `mbvc train` start-ups and ~100 tiny iterations: 10-20 s on a shared machine
def test_sigkilled_cli_run_resumes_to_the_uninterrupted_weights(tmp_path):
    """A real SIGKILL at an arbitrary moment (mid-step or mid-save), then `mbvc train --resume`."""
    from mbvc.models import load_model
    from mbvc.training import build_trainer, prepare_run_dir

    from .conftest import tiny_cli_args, tiny_config

    over = ("train.iterations=50", "data.train_size=8", "train.checkpoint_interval=1", "train.keep_last=1",
            "train.reverse_input=true", "train.lr_schedule=cosine", "train.warmup_iters=3")
    cfg = tiny_config(*over)
    full = build_trainer(cfg, prepare_run_dir(tmp_path / "full", cfg, resume=False))
    full.fit()
    expected = full.model.state_dict()

    run = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "mbvc", "train", "--threads", "1", "--run-dir", str(run)]
    proc = subprocess.Popen([*cmd[:4], "mnist-predrnn-v2-small", *cmd[4:], *tiny_cli_args(*over)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoints" / "ckpt-00000005.pt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run never reached iteration 5"
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (run / "model.safetensors").exists(), "the run finished before the kill"
    resumed = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got = load_model(run / "model.safetensors").state_dict()
    for k, v in expected.items():
        assert torch.equal(got[k], v), k


def test_latest_refuses_when_no_checkpoint_is_readable(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    manager.path(7).write_bytes(b"damaged")
    manager.path(9).write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"none of the 2 checkpoint.*ckpt-00000009\.pt.*ckpt-00000007\.pt"):
        manager.latest()
    assert CheckpointManager(tmp_path / "empty").latest() is None  # no checkpoint at all: a fresh start


def test_rotation_never_deletes_a_newer_checkpoint(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    manager.save(50, {"iteration": 50})
    manager.path(90).write_bytes(b"damaged")  # resumed from 50 with a damaged 90 above it
    for i in (60, 70, 80):
        manager.save(i, {"iteration": i})
    assert [checkpoint_iteration(p) for p in manager.list()] == [70, 80, 90]
    assert manager.latest()[1]["iteration"] == 80
