"""The demo's opt-in training time budget (``mbvc demo --train-minutes``): fit the iterations to it.

Off the default path: the demo trains the preset's fixed number of iterations. This times a
few training steps of the model on this machine, so its result depends on the machine and its
load; the trainer's own time budget is meant to replace it.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)


def seconds_per_iteration(run_cfg: Any, train_set: Any, device: torch.device, steps: int = 4) -> float:
    """Measure a training iteration of ``run_cfg``'s model on ``train_set`` (after one warm-up step)."""
    from mbvc.data import to_float
    from mbvc.models import build_model

    model = build_model(run_cfg.model).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=run_cfg.train.lr)
    b = min(run_cfg.train.batch_size, len(train_set))
    samples = [train_set[i % len(train_set)] for i in range(b)]
    total = run_cfg.model.total_length
    frames = to_float(torch.stack([torch.as_tensor(s["frames"]) for s in samples])[:, :total]).to(device)
    actions = torch.stack([torch.as_tensor(s["actions"]) for s in samples])[:, :total].float().to(device)
    mask = torch.ones(b, run_cfg.model.mask_steps(total), device=device)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        out = model(frames, mask, actions)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - start)
    # A full batch costs batch_size / b of the measured one when the data is smaller than a batch.
    return float(np.median(times)) * run_cfg.train.batch_size / b


def fit_iterations(run_cfg: Any, train_set: Any, minutes: float,
                   schedule: Callable[[int], list[str]]) -> Any:
    """``run_cfg`` with as many iterations as fit ``minutes`` here (``schedule(n)`` gives their overrides).

    About 10% of the budget is left for validation and checkpoints; the trainer's time limit
    (1.5 x the budget) only guards against a machine that slows down mid-run.
    """
    from mbvc.config import RunConfig, apply_overrides
    from mbvc.training.distributed import DistInfo
    from mbvc.training.trainer import resolve_device

    device = resolve_device(run_cfg.train.device, DistInfo())
    per_it = seconds_per_iteration(run_cfg, train_set, device)
    iterations = max(20, int(0.9 * minutes * 60 / per_it))
    log.info("train: %.0f ms per iteration here: %d iterations fit %.1f min", 1000 * per_it, iterations, minutes)
    data = apply_overrides(run_cfg.to_dict(), [*schedule(iterations), f"train.time_limit_min={1.5 * minutes}"],
                           run_cfg.source)
    return RunConfig.from_dict(data, run_cfg.source)
