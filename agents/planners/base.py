"""The shared loop of sampling-based trajectory optimisers.

An optimiser minimises ``objective(actions) -> costs`` over action sequences ``H x A`` within
box bounds. It knows nothing about models or costs: the MPC agent composes those into the
objective. Every iteration samples all ``N`` candidates at once and calls the objective exactly
once with the whole ``N x H x A`` batch, so a world model evaluates them in one batched pass.
"""
from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from mbvc.errors import ConfigError, ShapeError

from .noise import colored_noise

log = logging.getLogger(__name__)

Objective = Callable[[torch.Tensor], torch.Tensor]
"""``objective(actions: N x H x A) -> costs: N`` (lower is better)."""

BoundLike = float | torch.Tensor | list[float] | tuple[float, ...]


@dataclass
class OptimizerInfo:
    """Diagnostics of the last :meth:`SamplingOptimizer.optimize` call.

    Attributes:
        best_cost: lowest cost of any evaluated candidate.
        iteration_costs: per iteration, the lowest cost among that iteration's candidates.
        num_evaluations: candidate sequences evaluated (N x iterations).
    """

    best_cost: float = float("inf")
    iteration_costs: list[float] = field(default_factory=list)
    num_evaluations: int = 0


class SamplingOptimizer(abc.ABC):
    """Base class: Gaussian sampling around a mean sequence, refitted every iteration.

    Subclasses define how the new mean / std are fitted to the evaluated candidates
    (:meth:`_fit`). The base class handles bounds, seeding, coloured noise, momentum, the best
    sequence seen, and validation of the objective's output.

    Args:
        lower_bound: action lower bound, a scalar or broadcastable to ``H x A`` (usually ``A``).
        upper_bound: action upper bound, same shapes as ``lower_bound``.
        num_iterations: sampling / refitting rounds per :meth:`optimize` call.
        population_size: candidates N evaluated per iteration (one objective call).
        alpha: momentum of the distribution: ``new = alpha * old + (1 - alpha) * fitted``.
        init_std: initial std of the sampling distribution (scalar or broadcastable to
            ``H x A``); ``None`` uses a quarter of the bounds' range.
        min_std: floor of the std, so the search never collapses completely.
        noise_beta: exponent of the coloured noise in time (0 = white noise, ~2 = iCEM).
        seed: seed of the optimiser's own ``torch.Generator`` (one per device); ``None`` draws
            from torch's global generator.
    """

    def __init__(
        self,
        lower_bound: BoundLike,
        upper_bound: BoundLike,
        *,
        num_iterations: int = 3,
        population_size: int = 200,
        alpha: float = 0.1,
        init_std: BoundLike | None = None,
        min_std: float = 1e-3,
        noise_beta: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.lower_bound = torch.as_tensor(lower_bound, dtype=torch.float32)
        self.upper_bound = torch.as_tensor(upper_bound, dtype=torch.float32)
        if self.lower_bound.shape != self.upper_bound.shape:
            raise ShapeError(
                f"{type(self).__name__} requires lower and upper bounds of the same shape, got "
                f"{tuple(self.lower_bound.shape)} and {tuple(self.upper_bound.shape)}"
            )
        if bool((self.lower_bound > self.upper_bound).any()):
            raise ConfigError(f"{type(self).__name__} requires lower_bound <= upper_bound elementwise")
        if num_iterations < 1:
            raise ConfigError(f"num_iterations must be >= 1, got {num_iterations=}")
        if population_size < 2:
            raise ConfigError(f"population_size must be >= 2, got {population_size=}")
        if not 0.0 <= alpha < 1.0:
            raise ConfigError(f"alpha (momentum) must be in [0, 1), got {alpha=}")
        if min_std < 0:
            raise ConfigError(f"min_std must be >= 0, got {min_std=}")
        if noise_beta < 0:
            raise ConfigError(f"noise_beta must be >= 0, got {noise_beta=}")
        self.num_iterations = num_iterations
        self.population_size = population_size
        self.alpha = alpha
        self.init_std = None if init_std is None else torch.as_tensor(init_std, dtype=torch.float32)
        self.min_std = min_std
        self.noise_beta = noise_beta
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}
        self.info = OptimizerInfo()

    # -- public -------------------------------------------------------------------------------

    def reseed(self, seed: int | None) -> None:
        """Restart the optimiser's random streams from ``seed`` (``None``: global RNG)."""
        self.seed = seed
        self._generators.clear()

    @torch.no_grad()
    def optimize(self, objective: Objective, x0: torch.Tensor) -> torch.Tensor:
        """Minimise ``objective`` starting from the mean sequence ``x0``.

        Args:
            objective: maps candidates ``N x H x A`` to costs ``N``; called once per iteration.
            x0: initial mean ``H x A``; its device and dtype are those of the search.

        Returns:
            The solution ``H x A`` (within bounds) on ``x0``'s device.
        """
        if x0.dim() != 2:
            raise ShapeError(f"{type(self).__name__}.optimize requires x0 of shape (H, A), got {tuple(x0.shape)}")
        lo, hi = self._bounds_like(x0)
        mean = torch.minimum(torch.maximum(x0.clone(), lo), hi)
        std = self._initial_std(lo, hi).expand_as(mean).clone()
        self.info = OptimizerInfo()
        best_seq, carry = mean.clone(), None
        for it in range(self.num_iterations):
            samples = self._sample(mean, std, carry, last=it == self.num_iterations - 1)
            samples = torch.minimum(torch.maximum(samples, lo), hi)  # bounds by clipping
            costs = self._evaluate(objective, samples)
            i_best = int(torch.argmin(costs))
            c_best = float(costs[i_best])
            self.info.iteration_costs.append(c_best)
            if c_best < self.info.best_cost or it == 0:
                self.info.best_cost, best_seq = c_best, samples[i_best].clone()
            fit_mean, fit_std, carry = self._fit(samples, costs)
            mean = self.alpha * mean + (1.0 - self.alpha) * fit_mean
            if fit_std is not None:  # None: the method keeps its sampling std fixed
                std = (self.alpha * std + (1.0 - self.alpha) * fit_std).clamp_min(self.min_std)
        log.debug("%s: best cost per iteration %s", type(self).__name__, self.info.iteration_costs)
        return self._solution(best_seq, torch.minimum(torch.maximum(mean, lo), hi))

    # -- hooks --------------------------------------------------------------------------------

    @abc.abstractmethod
    def _fit(
        self, samples: torch.Tensor, costs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Fit ``(mean H x A, std H x A or None to keep it, carried candidates K x H x A or None)``."""

    @abc.abstractmethod
    def _solution(self, best: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """Pick what :meth:`optimize` returns from the best-seen sequence and the final mean."""

    def _sample(
        self, mean: torch.Tensor, std: torch.Tensor, carry: torch.Tensor | None, last: bool
    ) -> torch.Tensor:
        """Draw N candidates ``N x H x A`` around ``mean``; carried candidates fill the front."""
        noise = colored_noise(
            self.population_size,
            mean.shape[0],
            mean.shape[1],
            self.noise_beta,
            generator=self._generator(mean.device),
            device=mean.device,
            dtype=mean.dtype,
        )
        samples = mean + std * noise
        if carry is not None and carry.numel():
            # Keep at least one fresh sample so the search can still move.
            k = min(carry.shape[0], self.population_size - 1)
            samples[:k] = carry[:k]
        return samples

    # -- helpers ------------------------------------------------------------------------------

    def _evaluate(self, objective: Objective, samples: torch.Tensor) -> torch.Tensor:
        costs = objective(samples)
        if not isinstance(costs, torch.Tensor) or costs.shape != (samples.shape[0],):
            got = tuple(costs.shape) if isinstance(costs, torch.Tensor) else type(costs).__name__
            raise ShapeError(
                f"the objective must return a cost tensor of shape (N,) = ({samples.shape[0]},) "
                f"for candidates {tuple(samples.shape)}, got {got}"
            )
        self.info.num_evaluations += samples.shape[0]
        # A NaN/inf cost (a diverging model) must never become an elite.
        costs = costs.detach().to(device=samples.device, dtype=torch.float32)
        return torch.nan_to_num(costs, nan=float("inf"), posinf=float("inf"))

    def _bounds_like(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lo = self.lower_bound.to(device=x0.device, dtype=x0.dtype)
        hi = self.upper_bound.to(device=x0.device, dtype=x0.dtype)
        try:
            lo, hi = lo.expand_as(x0), hi.expand_as(x0)
        except RuntimeError:
            raise ShapeError(
                f"bounds of shape {tuple(lo.shape)} do not broadcast to the plan shape (H, A) = "
                f"{tuple(x0.shape)}"
            ) from None
        return lo, hi

    def _initial_std(self, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        if self.init_std is None:
            return (hi - lo) / 4.0
        return self.init_std.to(device=lo.device, dtype=lo.dtype).expand_as(lo)

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]
