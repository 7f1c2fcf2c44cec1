"""The weight average (``train.ema_decay``): its arithmetic, what is validated and exported, resume."""
from __future__ import annotations

import pytest
import torch

from mbvc.errors import ConfigError
from mbvc.models import read_model_file
from mbvc.training import build_trainer, prepare_run_dir
from mbvc.training.ema import WeightEMA

from .conftest import tiny_config


def test_average_follows_the_warmed_up_decay_and_copies_buffers():
    net = torch.nn.BatchNorm1d(2)  # weight, bias (parameters) and running stats (buffers)
    ema = WeightEMA(net, decay=0.9)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.fill_(3.0)
        net.running_mean.fill_(5.0)
    assert ema.current_decay() == pytest.approx(2 / 11)  # (1 + n) / (10 + n) below the cap
    ema.update(net)
    expected = start + (1 - 2 / 11) * (3.0 - start)
    assert torch.allclose(ema.module.weight, expected)
    assert torch.equal(ema.module.running_mean, torch.full((2,), 5.0))
    assert not ema.module.weight.requires_grad
    ema.updates = 1000
    assert ema.current_decay() == 0.9  # capped at the configured decay
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(net, decay=1.0)


def test_config_refuses_a_decay_of_one():
    with pytest.raises(ConfigError, match="train.ema_decay"):
        tiny_config("train.ema_decay=1.0")


def test_the_average_is_validated_and_exported_not_the_last_step(tmp_path):
    cfg = tiny_config("train.iterations=6", "train.ema_decay=0.9", "train.lr=1e-2")
    trainer = build_trainer(cfg, prepare_run_dir(tmp_path / "run", cfg, resume=False))
    result = trainer.fit()
    _, exported, meta = read_model_file(result.model_path)
    average = trainer.ema.module.state_dict()
    raw = trainer.model.state_dict()
    assert all(torch.equal(exported[k], average[k].cpu()) for k in exported)
    assert any(not torch.equal(exported[k], raw[k].cpu()) for k in exported)  # 6 steps apart from the raw weights
    assert trainer.inference_model is trainer.ema.module
    assert "moving average" in meta["weights"]


def test_resume_restores_the_average(tmp_path):
    same = ("train.ema_decay=0.9", "train.checkpoint_interval=2", "train.lr_schedule=constant")
    cfg = tiny_config("train.iterations=4", *same)
    full = build_trainer(cfg, prepare_run_dir(tmp_path / "full", cfg, resume=False))
    full.fit()
    half_cfg = tiny_config("train.iterations=2", *same)  # stops after its checkpoint at 2
    run = prepare_run_dir(tmp_path / "halves", half_cfg, resume=False)
    build_trainer(half_cfg, run).fit()
    resumed = build_trainer(cfg, run, resume=True)
    resumed.fit(resume=True)
    assert resumed.ema.updates == full.ema.updates == 4
    want, got = full.ema.module.state_dict(), resumed.ema.module.state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want)
