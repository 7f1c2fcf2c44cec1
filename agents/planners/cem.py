"""Cross-entropy method (CEM) and its improved variant iCEM.

CEM keeps a diagonal Gaussian over action sequences ``H x A``; each iteration it samples N
candidates, keeps the ``elite_ratio`` cheapest and refits mean and std to them (with momentum).
iCEM (Pinneri et al., 2020) adds coloured noise in time (``noise_beta``), carries a fraction of
the elites into the next iteration's population (``keep_elites``), and evaluates the mean itself
in the last iteration (``include_mean``). :func:`icem` builds CEM with those defaults.
"""
from __future__ import annotations

import math

import torch

from mbvc.errors import ConfigError

from .base import BoundLike, SamplingOptimizer


class CEMOptimizer(SamplingOptimizer):
    """CEM over action sequences; returns the best sequence ever evaluated.

    Args:
        lower_bound: action lower bound (scalar or broadcastable to ``H x A``).
        upper_bound: action upper bound.
        num_iterations: CEM iterations per plan.
        population_size: candidates N per iteration.
        elite_ratio: fraction of candidates refitted to (rounded up, at least 2).
        alpha: momentum of mean and std (``0`` = refit entirely each iteration).
        init_std: initial std; ``None`` = quarter of the bounds' range.
        min_std: std floor.
        noise_beta: coloured noise exponent (0 = white; iCEM uses 2 to 2.5).
        keep_elites: fraction of the elites re-inserted into the next iteration's population.
        include_mean: in the last iteration, evaluate the current mean as one candidate.
        return_mean: return the final mean instead of the best sequence seen.
        seed: seed of the optimiser's generator.

    Example:
        >>> cem = CEMOptimizer(-1.0, 1.0, num_iterations=5, population_size=64, seed=0)
        >>> target = torch.full((4, 2), 0.3)
        >>> plan = cem.optimize(lambda a: ((a - target) ** 2).sum((1, 2)), torch.zeros(4, 2))
        >>> bool(((plan - target).abs() < 0.2).all())
        True
    """

    def __init__(
        self,
        lower_bound: BoundLike,
        upper_bound: BoundLike,
        *,
        num_iterations: int = 3,
        population_size: int = 200,
        elite_ratio: float = 0.1,
        alpha: float = 0.1,
        init_std: BoundLike | None = None,
        min_std: float = 1e-3,
        noise_beta: float = 0.0,
        keep_elites: float = 0.0,
        include_mean: bool = False,
        return_mean: bool = False,
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
        if not 0.0 < elite_ratio <= 1.0:
            raise ConfigError(f"elite_ratio must be in (0, 1], got {elite_ratio=}")
        if not 0.0 <= keep_elites <= 1.0:
            raise ConfigError(f"keep_elites must be in [0, 1], got {keep_elites=}")
        # At least two elites, or the fitted std is zero after one iteration.
        self.num_elites = min(population_size, max(2, math.ceil(elite_ratio * population_size)))
        self.elite_ratio = elite_ratio
        self.keep_elites = keep_elites
        self.include_mean = include_mean
        self.return_mean = return_mean

    def _sample(
        self, mean: torch.Tensor, std: torch.Tensor, carry: torch.Tensor | None, last: bool
    ) -> torch.Tensor:
        samples = super()._sample(mean, std, carry, last)
        if last and self.include_mean:
            samples[-1] = mean
        return samples

    def _fit(
        self, samples: torch.Tensor, costs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        idx = torch.topk(costs, self.num_elites, largest=False, sorted=True).indices
        elites = samples[idx]
        mean = elites.mean(dim=0)
        std = elites.std(dim=0, unbiased=False)
        n_keep = int(round(self.keep_elites * self.num_elites))
        return mean, std, (elites[:n_keep] if n_keep else None)

    def _solution(self, best: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        return mean if self.return_mean else best


def icem(
    lower_bound: BoundLike,
    upper_bound: BoundLike,
    *,
    noise_beta: float = 2.0,
    keep_elites: float = 0.3,
    include_mean: bool = True,
    **kwargs: object,
) -> CEMOptimizer:
    """CEM with iCEM's defaults: coloured noise, elites carried over, mean evaluated last.

    Args:
        lower_bound: action lower bound.
        upper_bound: action upper bound.
        noise_beta: coloured noise exponent.
        keep_elites: fraction of elites carried to the next iteration.
        include_mean: evaluate the mean in the last iteration.
        **kwargs: any other :class:`CEMOptimizer` argument.

    Returns:
        A configured :class:`CEMOptimizer`.
    """
    return CEMOptimizer(
        lower_bound,
        upper_bound,
        noise_beta=noise_beta,
        keep_elites=keep_elites,
        include_mean=include_mean,
        **kwargs,  # type: ignore[arg-type]
    )
