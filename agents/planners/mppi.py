"""Model predictive path integral (MPPI) control as a sampling optimiser.

MPPI refits the mean to an exponentially weighted average of all candidates,
``w_i ~ exp(-c_i / lambda)``, instead of an unweighted average of elites. Here the temperature
is relative to the spread of the iteration's costs, so one default works for costs of any scale.
"""
from __future__ import annotations

import torch

from mbvc.errors import ConfigError

from .base import BoundLike, SamplingOptimizer


class MPPIOptimizer(SamplingOptimizer):
    """MPPI over action sequences; returns the final (weighted) mean by default.

    Args:
        lower_bound: action lower bound (scalar or broadcastable to ``H x A``).
        upper_bound: action upper bound.
        num_iterations: refitting rounds per plan.
        population_size: candidates N per iteration.
        temperature: softmax temperature as a fraction of the iteration's cost range
            (``max - min``); small values approach "take the best".
        alpha: momentum of mean and std.
        init_std: initial std; ``None`` = quarter of the bounds' range.
        min_std: std floor.
        update_std: also refit the std to the weighted spread (otherwise it stays fixed).
        noise_beta: coloured noise exponent (0 = white).
        return_best: return the best sequence seen instead of the mean.
        seed: seed of the optimiser's generator.
    """

    def __init__(
        self,
        lower_bound: BoundLike,
        upper_bound: BoundLike,
        *,
        num_iterations: int = 3,
        population_size: int = 200,
        temperature: float = 0.1,
        alpha: float = 0.1,
        init_std: BoundLike | None = None,
        min_std: float = 1e-3,
        update_std: bool = True,
        noise_beta: float = 0.0,
        return_best: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            lower_bound,
            upper_bound,
            num_iterations=num_iterations,
            population_size=population_size,
            alpha=alpha,
            init_std=init_std,
            min_std=min_std,
            noise_beta=noise_beta,
            seed=seed,
        )
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature=}")
        self.temperature = temperature
        self.update_std = update_std
        self.return_best = return_best

    def _fit(
        self, samples: torch.Tensor, costs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        finite = torch.isfinite(costs)
        if not bool(finite.any()):
            # Nothing to learn from; keep the distribution where it is.
            return samples.mean(0), None, None
        c = torch.where(finite, costs, costs[finite].max())
        spread = (c.max() - c.min()).clamp_min(1e-12)
        weights = torch.softmax(-(c - c.min()) / (self.temperature * spread), dim=0)
        w = weights[:, None, None]
        mean = (w * samples).sum(0)
        std = (w * (samples - mean) ** 2).sum(0).sqrt() if self.update_std else None
        return mean, std, None

    def _solution(self, best: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        return best if self.return_best else mean
