"""The demo's opt-in training time budget (``mbvc demo --train-minutes``): fit the iterations to it.

Off the default path: the demo trains the preset's fixed number of iterations. This times a
few real training iterations on this machine (:func:`mbvc.training.seconds_per_iteration`), so its
result depends on the machine and its load. Unlike ``train.time_budget_min`` it also rescales the
demo's compressed curriculum to the fitted iteration count.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mbvc.models import build_model
from mbvc.training.trainer import resolve_device, seconds_per_iteration

log = logging.getLogger(__name__)


def fit_iterations(run_cfg: Any, train_set: Any, minutes: float,
                   schedule: Callable[[int], list[str]]) -> Any:
    """``run_cfg`` with as many iterations as fit ``minutes`` here (``schedule(n)`` gives their overrides).

    About 10% of the budget is left for validation and checkpoints; the trainer's time limit
    (1.5 x the budget) only guards against a machine that slows down mid-run.
    """
    from mbvc.config import RunConfig, apply_overrides
    from mbvc.training.distributed import DistInfo

    device = resolve_device(run_cfg.train.device, DistInfo())
    per_it = seconds_per_iteration(build_model(run_cfg.model), run_cfg.train, train_set, device=device)
    iterations = max(20, int(0.9 * minutes * 60 / per_it))
    log.info("train: %.0f ms per iteration here: %d iterations fit %.1f min", 1000 * per_it, iterations, minutes)
    data = apply_overrides(run_cfg.to_dict(), [*schedule(iterations), f"train.time_limit_min={1.5 * minutes}"],
                           run_cfg.source)
    return RunConfig.from_dict(data, run_cfg.source)
