"""Receding-horizon wrapper: warm starts each plan from the previous one, shifted in time."""
from __future__ import annotations

import logging

import torch

from mbvc.errors import ConfigError, ShapeError

from .base import BoundLike, Objective, SamplingOptimizer

log = logging.getLogger(__name__)


class TrajectoryOptimizer:
    """Plans ``H x A`` action sequences with a sampling optimiser, warm-started across calls.

    After ``k`` actions of the last plan were executed, the next search starts from that plan
    shifted ``k`` steps forward in time and padded at the end with the initial value: the
    remaining actions are usually still good, which is what lets MPC use few iterations.

    Args:
        optimizer: the sampling optimiser (CEM, iCEM, MPPI...).
        horizon: planning horizon H.
        initial_value: the start of the very first plan and the padding of shifted plans; a
            scalar or ``A`` vector. ``None`` uses the midpoint of the optimiser's bounds.
        keep_last_solution: warm start (otherwise every plan starts from the initial value).
        device: device of the search (and so of the candidates passed to the objective).
        action_dim: A; needed when the bounds and ``initial_value`` are scalars (they are then
            the same for every action dimension). ``None``: the bounds' last dimension (1 for
            scalar bounds).

    Example:
        >>> from agents.planners import CEMOptimizer
        >>> opt = TrajectoryOptimizer(CEMOptimizer(-1.0, 1.0, seed=0), horizon=5)
        >>> plan = opt.optimize(lambda a: (a - 0.5).pow(2).sum((1, 2)))
        >>> plan.shape
        torch.Size([5, 1])
    """

    def __init__(
        self,
        optimizer: SamplingOptimizer,
        horizon: int,
        *,
        initial_value: BoundLike | None = None,
        keep_last_solution: bool = True,
        device: torch.device | str = "cpu",
        action_dim: int | None = None,
    ) -> None:
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ConfigError(f"horizon must be an int >= 1, got {horizon=}")
        self.optimizer = optimizer
        self.horizon = horizon
        self.keep_last_solution = keep_last_solution
        self.device = torch.device(device)
        lo, hi = optimizer.lower_bound, optimizer.upper_bound
        bound_dim = lo.shape[-1] if lo.dim() else None
        if action_dim is not None and bound_dim not in (None, 1, action_dim):
            raise ShapeError(f"the planner's bounds have {bound_dim} action dimensions, expected {action_dim=}")
        if action_dim is None:
            action_dim = bound_dim or 1
        if action_dim < 1:
            raise ConfigError(f"action_dim must be >= 1, got {action_dim=}")
        if initial_value is None:
            value = (lo + hi) / 2.0
        else:
            value = torch.as_tensor(initial_value, dtype=torch.float32)
        if value.dim() == 2:  # per-step bounds (H x A): pad with the last step's value
            value = value[-1]
        try:
            self.initial_value = value.expand(action_dim).to(self.device).clone()
        except RuntimeError:
            raise ShapeError(
                f"initial_value of shape {tuple(value.shape)} does not broadcast to {action_dim=}"
            ) from None
        self.reset()

    @property
    def action_dim(self) -> int:
        """Action dimension A."""
        return int(self.initial_value.numel())

    def reset(self) -> None:
        """Forget the previous plan (start of an episode)."""
        self.previous_solution = self._initial_plan()

    def optimize(self, objective: Objective, executed: int = 0) -> torch.Tensor:
        """Plan, starting from the previous plan shifted by the ``executed`` steps.

        Args:
            objective: ``objective(actions N x H x A) -> costs N``.
            executed: actions of the previous plan executed since it was made.

        Returns:
            The plan ``H x A`` on :attr:`device`.
        """
        if executed < 0:
            raise ConfigError(f"executed must be >= 0, got {executed=}")
        x0 = self.shifted(executed) if self.keep_last_solution else self._initial_plan()
        plan = self.optimizer.optimize(objective, x0)
        self.previous_solution = plan.detach().clone()
        return plan

    def shifted(self, steps: int) -> torch.Tensor:
        """The previous plan advanced ``steps`` in time, padded with the initial value (``H x A``)."""
        steps = min(steps, self.horizon)
        pad = self.initial_value.expand(steps, self.action_dim)
        return torch.cat([self.previous_solution[steps:], pad], dim=0)

    def _initial_plan(self) -> torch.Tensor:
        return self.initial_value.expand(self.horizon, self.action_dim).clone()
