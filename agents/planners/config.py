"""Planner configuration: one frozen dataclass and a name registry."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mbvc.errors import ConfigError, did_you_mean

from .base import BoundLike, SamplingOptimizer
from .cem import CEMOptimizer
from .mppi import MPPIOptimizer


@dataclass(frozen=True)
class PlannerConfig:
    """Settings of a sampling planner (the ``plan`` section of a preset).

    Attributes:
        name: ``cem``, ``icem`` or ``mppi``.
        num_iterations: iterations per plan.
        population_size: candidates N per iteration.
        elite_ratio: CEM elite fraction.
        alpha: momentum of mean and std.
        init_std: initial std (``None``: a quarter of the bounds' range).
        min_std: std floor.
        noise_beta: coloured noise exponent; ``None`` = the method's default (iCEM 2, else 0).
        keep_elites: fraction of elites carried over (``None`` = iCEM 0.3, CEM 0).
        temperature: MPPI temperature relative to the cost range.
        seed: planner seed (``None``: torch's global RNG).
        horizon: planning horizon H of an MPC agent (actions per plan).
        replan_every: actions an MPC agent executes per plan (1 <= replan_every <= horizon).
    """

    name: str = "cem"
    num_iterations: int = 3
    population_size: int = 200
    elite_ratio: float = 0.1
    alpha: float = 0.1
    init_std: float | None = None
    min_std: float = 1e-3
    noise_beta: float | None = None
    keep_elites: float | None = None
    temperature: float = 0.1
    seed: int | None = None
    horizon: int = 10
    replan_every: int = 1

    def __post_init__(self) -> None:
        if self.name not in PLANNERS:
            raise ConfigError(
                f"planner name must be one of {sorted(PLANNERS)}, got {self.name!r}."
                + did_you_mean(self.name, PLANNERS)
            )
        for key in ("num_iterations", "population_size", "horizon"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"plan.{key} must be a positive integer, got {value!r}")
        if not 1 <= self.replan_every <= self.horizon:
            raise ConfigError(f"plan.replan_every must be between 1 and plan.horizon ({self.horizon}), "
                              f"got {self.replan_every!r}")

    def replace(self, **changes: Any) -> PlannerConfig:
        """Return a copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


def _cem(cfg: PlannerConfig, lo: BoundLike, hi: BoundLike, icem: bool) -> CEMOptimizer:
    return CEMOptimizer(
        lo,
        hi,
        num_iterations=cfg.num_iterations,
        population_size=cfg.population_size,
        elite_ratio=cfg.elite_ratio,
        alpha=cfg.alpha,
        init_std=cfg.init_std,
        min_std=cfg.min_std,
        noise_beta=(2.0 if icem else 0.0) if cfg.noise_beta is None else cfg.noise_beta,
        keep_elites=(0.3 if icem else 0.0) if cfg.keep_elites is None else cfg.keep_elites,
        include_mean=icem,
        seed=cfg.seed,
    )


def _mppi(cfg: PlannerConfig, lo: BoundLike, hi: BoundLike) -> MPPIOptimizer:
    return MPPIOptimizer(
        lo,
        hi,
        num_iterations=cfg.num_iterations,
        population_size=cfg.population_size,
        temperature=cfg.temperature,
        alpha=cfg.alpha,
        init_std=cfg.init_std,
        min_std=cfg.min_std,
        noise_beta=0.0 if cfg.noise_beta is None else cfg.noise_beta,
        seed=cfg.seed,
    )


PLANNERS: dict[str, Callable[[PlannerConfig, BoundLike, BoundLike], SamplingOptimizer]] = {
    "cem": lambda cfg, lo, hi: _cem(cfg, lo, hi, icem=False),
    "icem": lambda cfg, lo, hi: _cem(cfg, lo, hi, icem=True),
    "mppi": _mppi,
}


def build_planner(
    cfg: PlannerConfig | str, lower_bound: BoundLike, upper_bound: BoundLike, **overrides: Any
) -> SamplingOptimizer:
    """Build the optimiser a config (or just a name) describes.

    Args:
        cfg: a :class:`PlannerConfig` or a planner name.
        lower_bound: action lower bound (scalar or ``A``).
        upper_bound: action upper bound.
        **overrides: config fields to change, e.g. ``population_size=64``.

    Returns:
        The optimiser.
    """
    if isinstance(cfg, str):
        cfg = PlannerConfig(name=cfg)
    if overrides:
        fields = {f.name for f in dataclasses.fields(PlannerConfig)}
        for key in overrides:
            if key not in fields:
                raise ConfigError(f"unknown planner setting {key!r}." + did_you_mean(key, fields))
        cfg = cfg.replace(**overrides)
    return PLANNERS[cfg.name](cfg, lower_bound, upper_bound)
