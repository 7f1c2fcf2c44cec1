"""The cost of a push read from a world model's predicted simulator state, not from its pixels.

A model trained with ``model.state_targets`` (:mod:`mbvc.models.readout`) predicts chosen
entries of the simulator's state at every step, e.g. the pusher's and the block's positions.
:class:`StateCost` scores those predictions the way the oracle's true-state cost scores the
simulator's (:class:`agents.models.OracleStateCost`): the object's distance to the goal plus
``pusher_weight`` times the pusher's distance to the object. It needs no object to be visible
in the predicted frames, so a block hidden behind the pusher's rod still counts where the model
believes it is. The goal is the environment's goal position (environment knowledge, as the
push cost's calibration is).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mbvc.errors import ConfigError, ShapeError

from .base import Cost, env_goal_image, weighted_sum


@dataclass
class StateGoal:
    """An episode's goal for :class:`StateCost`: the goal position and, for the GIF, its image.

    Attributes:
        position: ``(2,)`` the goal's position in the state's units (metres on the table).
        image: the goal image ``h x w x 3`` uint8 where the environment draws one, else None.
    """

    position: torch.Tensor
    image: np.ndarray | None = None


class StateCost(Cost):
    """Object-to-goal distance plus pusher shaping, on predicted states ``N x H x S``.

    Reads the predictions of :class:`agents.models.PredRNNModel` with ``predict="states"``
    (:attr:`reads`), whose entries are the model's ``state_targets`` in their order.

    Args:
        object_entries: the two entries (of the predicted vector) holding the object's position.
        pusher_entries: the two entries holding the pusher's position.
        pusher_weight: weight of the pusher's distance to the object (until the pusher touches
            the object, the object's distance alone is flat in the actions).
        final_weight: relative weight of the final step (:func:`agents.costs.step_weights`).
    """

    reads = "states"

    def __init__(self, object_entries: tuple[int, int] = (2, 3), pusher_entries: tuple[int, int] = (0, 1),
                 pusher_weight: float = 0.5, final_weight: float = 1.0) -> None:
        self.object_entries = list(object_entries)
        self.pusher_entries = list(pusher_entries)
        self.pusher_weight = pusher_weight
        self.final_weight = final_weight

    def __call__(self, frames: torch.Tensor, goal: Any) -> torch.Tensor:
        states = frames
        needed = max(self.object_entries + self.pusher_entries) + 1
        if states.dim() != 3 or states.shape[-1] < needed:
            raise ShapeError(f"StateCost scores predicted states N x H x S with S >= {needed} (a model with "
                             f"model.state_targets, planned with predict='states'), got {tuple(states.shape)}")
        if not isinstance(goal, StateGoal):
            raise ConfigError(f"StateCost needs a StateGoal (from goal_for_env), got {type(goal).__name__}")
        target = goal.position.to(states.device, states.dtype)
        obj = states[..., self.object_entries]
        dist = (obj - target).norm(dim=-1)
        if self.pusher_weight:
            dist = dist + self.pusher_weight * (states[..., self.pusher_entries] - obj).norm(dim=-1)
        return weighted_sum(dist, None, self.final_weight)

    def goal_for_env(self, env: Any, image_size: tuple[int, int]) -> StateGoal:
        """The environment's goal position (``env.unwrapped.goal``, its first two entries) and image."""
        base = getattr(env, "unwrapped", env)
        position = getattr(base, "goal", None)
        if position is None or np.asarray(position).size < 2:
            raise ConfigError(f"the state cost needs an environment with a goal position (env.unwrapped.goal); "
                              f"{type(base).__name__} has none")
        return StateGoal(torch.as_tensor(np.asarray(position, np.float32)[:2]), env_goal_image(env))

    def picture(self, goal: Any) -> np.ndarray | None:
        """The goal image the environment drew, if any."""
        return goal.image if isinstance(goal, StateGoal) else None
