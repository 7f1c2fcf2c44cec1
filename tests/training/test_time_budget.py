"""train.time_budget_min: the real training step is timed, the iterations fitted, and kept on resume."""
from __future__ import annotations

import logging

import pytest
import torch

from mbvc.errors import ConfigError
from mbvc.training import build_trainer, prepare_run_dir
from mbvc.training.trainer import seconds_per_iteration

from .conftest import tiny_config


def test_seconds_per_iteration_leaves_model_and_rngs_alone(tmp_path):
    cfg = tiny_config("train.reverse_input=true", "train.grad_clip=1.0")
    trainer = build_trainer(cfg, tmp_path)
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    rng = torch.get_rng_state()
    per_it = seconds_per_iteration(trainer.model, cfg.train, trainer.stream.dataset, steps=2)
    assert 0 < per_it < 60
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in weights.items())
    assert torch.equal(torch.get_rng_state(), rng)


def test_budget_fits_iterations_to_the_timed_step_and_resume_keeps_them(tmp_path, monkeypatch, caplog):
    import mbvc.training.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "seconds_per_iteration", lambda *a, **k: 0.5)  # a known clock
    cfg = tiny_config("train.iterations=1000", "train.time_budget_min=0.05", "train.checkpoint_interval=2")
    run = prepare_run_dir(tmp_path / "run", cfg, resume=False)
    with caplog.at_level(logging.INFO):
        result = build_trainer(cfg, run).fit()
    assert result.planned_iterations == result.iteration == 6  # 3 s / 0.5 s
    assert result.seconds_per_iteration == 0.5
    assert "time budget 0.05 min" in caplog.text and "-> 6 iterations" in caplog.text

    # Resuming (on a machine twice as slow) continues towards the same 6, without re-timing.
    monkeypatch.setattr(trainer_module, "seconds_per_iteration", lambda *a, **k: pytest.fail("timed again"))
    resumed = build_trainer(cfg, run, resume=True)
    assert resumed.fit(resume=True).planned_iterations == 6


def test_budget_must_be_positive():
    with pytest.raises(ConfigError, match="time_budget_min must be > 0"):
        tiny_config("train.time_budget_min=0")
