"""Shared settings of the training tests: a tiny Moving MNIST run that takes well under a second per iteration."""
from __future__ import annotations

import pytest

from mbvc.config import RunConfig, load_run_config

#: A 2 x 4-channel PredRNN-V2 on 32x32 Moving MNIST (patch 4 -> 8x8 states), 3 -> 6 frames.
TINY = [
    "model.num_hidden=[4,4]", "model.img_width=32", "model.filter_size=3", "model.patch_size=4",
    "model.input_length=3", "model.total_length=6",
    "data.image_size=32", "data.train_size=32", "data.val_size=4", "data.test_size=4",
    "train.batch_size=4", "train.lr=3e-3", "train.warmup_iters=0", "train.progress=false",
    "train.tensorboard=false", "train.log_interval=1", "train.eval_interval=0", "train.checkpoint_interval=100",
    "train.curriculum.r_sampling_step_1=2", "train.curriculum.r_sampling_step_2=20",
    "train.curriculum.r_exp_alpha=5",
    "eval.horizon=3", "eval.batch_size=4", "eval.lpips=false", "eval.val_batches=1", "eval.num_samples=2",
]


def tiny_config(*overrides: str, preset: str = "mnist-predrnn-v2-small") -> RunConfig:
    """The tiny run config plus ``overrides`` (later ones win)."""
    return load_run_config(preset, [*TINY, *overrides])


def cli_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    """Run ``mbvc ARGV`` in-process; assert exit 2 and one ``mbvc ...`` line, no traceback; return it."""
    from mbvc.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("mbvc ")]
    assert len(lines) == 1, err
    return lines[0]


def tiny_cli_args(*overrides: str) -> list[str]:
    """``--set`` arguments of the tiny config for ``mbvc train``."""
    out: list[str] = []
    for item in [*TINY, *overrides]:
        out += ["--set", item]
    return out


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every training test on one torch thread (tests/conftest.py says why)."""
