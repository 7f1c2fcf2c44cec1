"""DDP on gloo with 2 CPU processes follows the loss curve of one process with the same global batch."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mbvc.models import load_model
from mbvc.training import DistInfo, build_trainer, prepare_run_dir
from mbvc.training.logger import read_jsonl

from .conftest import tiny_cli_args, tiny_config

# reverse_input, a random curriculum, several epochs, validation and checkpoints (rank-0 only).
OVERRIDES = ("train.iterations=5", "data.train_size=12", "train.reverse_input=true", "train.grad_clip=1.0",
             "train.eval_interval=2", "train.checkpoint_interval=2")


def _worker(rank: int, world: int, init_file: str, run_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        trainer = build_trainer(tiny_config(*OVERRIDES), run_dir, DistInfo(rank, world, rank))
        result = trainer.fit()
        torch.save({"losses": result.losses, "weights": trainer.model.state_dict()}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_match_one_process(tmp_path):
    cfg = tiny_config(*OVERRIDES)
    single = build_trainer(cfg, prepare_run_dir(tmp_path / "single", cfg, resume=False))
    expected = single.fit()
    run = prepare_run_dir(tmp_path / "ddp", cfg, resume=False)
    out = str(tmp_path / "result")
    mp.spawn(_worker, args=(2, str(tmp_path / "rendezvous"), str(run), out), nprocs=2, join=True)
    for rank in (0, 1):
        got = torch.load(f"{out}.{rank}", weights_only=True)
        assert got["losses"] == pytest.approx(expected.losses, rel=1e-5, abs=1e-7)
        for k, v in single.model.state_dict().items():
            torch.testing.assert_close(got["weights"][k], v, rtol=1e-4, atol=1e-6)
    # only rank 0 wrote checkpoints and the model file
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == sorted(
        p.name for p in (tmp_path / "single" / "checkpoints").iterdir())
    assert (run / "model.safetensors").is_file()


def test_torchrun_cli(tmp_path):
    """``torchrun --nproc_per_node 2 -m mbvc train`` matches one in-process trainer (one launch)."""
    cfg = tiny_config(*OVERRIDES)
    single = build_trainer(cfg, prepare_run_dir(tmp_path / "one", cfg, resume=False))
    expected = single.fit()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "mbvc",
              "train", "mnist-predrnn-v2-small", "--threads", "1", "--run-dir", str(tmp_path / "two"),
              *tiny_cli_args(*OVERRIDES)]
    proc = subprocess.run(launch, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout
    losses = [r["train/loss"] for r in read_jsonl(tmp_path / "two" / "metrics.jsonl") if "train/loss" in r]
    assert len(losses) == 5 and losses == pytest.approx(expected.losses, rel=1e-5)
    two = load_model(tmp_path / "two" / "model.safetensors").state_dict()
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(two[k], v, rtol=1e-4, atol=1e-6)
