"""The cost protocol and the tensor helpers every cost shares.

A cost scores predicted frames ``N x H x C x h x w`` (in [0, 1], for N candidate action
sequences) against a goal: ``cost(frames, goal) -> N``, lower is better. :class:`Cost` declares
that call and the optional hooks an MPC agent calls around it, each with a default that does
nothing, so a cost overrides only what it uses:

* :meth:`Cost.goal_for_env`: the episode's goal from the environment (default: its goal image);
* :meth:`Cost.start`: the goal bound to the episode's first observation (default: unchanged);
* :meth:`Cost.observe`: the goal updated with each new observation (default: unchanged);
* :meth:`Cost.picture`: an image of the goal for the episode GIF (default: the goal image).

A plain function ``cost(frames, goal)`` is a cost too: :func:`as_cost` gives it the default hooks.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

from mbvc.errors import ConfigError, ShapeError


class FramesAndStates(NamedTuple):
    """A rollout for a cost that reads a world model's state readout beside its frames.

    Attributes:
        frames: predicted frames ``N x H x C x h x w`` in [0, 1].
        states: the model's predicted simulator state ``N x H x S`` (the entries of its
            ``model.state_targets``, in their order; :mod:`mbvc.models.readout`).
    """

    frames: torch.Tensor
    states: torch.Tensor


class Cost:
    """Base of every cost: ``cost(frames N x H x C x h x w, goal) -> N`` plus the agent's hooks.

    Attributes:
        reads: what the cost scores: ``"frames"`` (predicted images), or ``"frames+states"``:
            a :class:`FramesAndStates` of the frames and the world model's state readout
            (the push cost with ``block_entries``).
    """

    reads = "frames"

    def __call__(self, frames: torch.Tensor, goal: Any) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define __call__(frames, goal)")

    def goal_for_env(self, env: Any, image_size: tuple[int, int]) -> Any:
        """The goal of the episode ``env`` has just started (default: :func:`env_goal_image`)."""
        return env_goal_image(env)

    def start(self, goal: Any, frame: torch.Tensor) -> Any:
        """The goal bound to the episode's first observation ``C x h x w`` (default: ``goal``)."""
        return goal

    def observe(self, goal: Any, frame: torch.Tensor) -> Any:
        """The goal after a new observation ``C x h x w`` (default: ``goal``); called on every step."""
        return goal

    def picture(self, goal: Any) -> np.ndarray | None:
        """The goal drawn for the episode GIF, ``h x w x 3`` uint8 (default: a goal image as it is)."""
        return image_picture(goal)


class FunctionCost(Cost):
    """A plain ``cost(frames, goal)`` function with the default hooks (:func:`as_cost`)."""

    def __init__(self, fn: Callable[[torch.Tensor, Any], torch.Tensor]) -> None:
        self.fn = fn

    def __call__(self, frames: torch.Tensor, goal: Any) -> torch.Tensor:
        return self.fn(frames, goal)


def as_cost(cost: Cost | Callable[[torch.Tensor, Any], torch.Tensor]) -> Cost:
    """``cost`` as a :class:`Cost`: itself, or a callable wrapped with the default hooks.

    Raises:
        ConfigError: ``cost`` is not callable.
    """
    if isinstance(cost, Cost):
        return cost
    if not callable(cost):
        raise ConfigError(f"a cost must be callable as cost(frames, goal), got {type(cost).__name__}")
    return FunctionCost(cost)


def env_goal_image(env: Any) -> np.ndarray | None:
    """The goal image of an environment: ``env.unwrapped.goal_image()``, ``None`` when it has none.

    For the pushing environments the pusher is drawn away from the goal, where it hides the
    least of the block (:func:`agents.costs.push.clear_goal_image`).
    """
    from envs.push import PushEnv

    base = getattr(env, "unwrapped", env)
    if isinstance(base, PushEnv):
        from .push import clear_goal_image

        return clear_goal_image(env)
    goal_image = getattr(base, "goal_image", None)  # an optional method of the environment, not of a cost
    return None if goal_image is None else goal_image()


def image_picture(goal: Any) -> np.ndarray | None:
    """A goal image (``C x h x w`` float in [0, 1] or ``h x w x C`` uint8) as ``h x w x 3`` uint8; else ``None``."""
    if isinstance(goal, np.ndarray) and goal.dtype == np.uint8 and goal.ndim == 3:
        return goal
    if isinstance(goal, torch.Tensor) and goal.dim() == 3 and goal.is_floating_point():
        img = (goal.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).movedim(0, -1).numpy()
        return np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img
    return None


def step_weights(horizon: int, final_weight: float = 1.0, device: torch.device | str | None = None) -> torch.Tensor:
    """Weights ``H`` that sum to 1: 1 for every step but the last, ``final_weight`` for the last.

    ``final_weight=1`` weighs all steps alike (reach the goal soon); a large value asks mostly
    for the goal at the end of the horizon; ``float("inf")`` uses the final step only.
    """
    if horizon < 1 or final_weight < 0:
        raise ConfigError(f"step_weights needs horizon >= 1 and final_weight >= 0, got {horizon=}, {final_weight=}")
    w = torch.ones(horizon, device=device)
    if final_weight == float("inf"):
        w.zero_()
        w[-1] = 1.0
    else:
        w[-1] = final_weight
    return w / w.sum()


def weighted_sum(per_step: torch.Tensor, weights: torch.Tensor | None = None, final_weight: float = 1.0) -> torch.Tensor:
    """Combine per-step costs ``N x H`` into ``N`` with weights ``H`` (default :func:`step_weights`)."""
    horizon = per_step.shape[1]
    if weights is None:
        weights = step_weights(horizon, final_weight, device=per_step.device)
    weights = torch.as_tensor(weights, dtype=per_step.dtype, device=per_step.device)
    if weights.shape != (horizon,):
        raise ShapeError(f"step weights must have shape (H,) = ({horizon},), got {tuple(weights.shape)}")
    return per_step @ weights


def check_frames(frames: torch.Tensor) -> None:
    """Raise :class:`ShapeError` unless ``frames`` is ``N x H x C x h x w``."""
    if not isinstance(frames, torch.Tensor) or frames.dim() != 5:
        got = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ShapeError(f"costs take predicted frames of shape (N, H, C, h, w), got {got}")


def require_goal(goal: Any) -> None:
    """Refuse a missing goal with a message (``torch.as_tensor(None)`` would be a bare TypeError)."""
    if goal is None:
        raise ConfigError("this cost compares predictions to a goal, got goal=None; pass goal= to "
                          "MPCAgent.reset (a goal image or pixel) or an observation with a 'goal' entry")


def goal_as_frames(goal: Any, frames: torch.Tensor) -> torch.Tensor:
    """Turn a goal image into a tensor broadcastable to ``frames`` (``N x H x C x h x w``).

    Accepts ``C x h x w`` (one goal), ``N x C x h x w`` (one per candidate) or
    ``N x H x C x h x w`` (a goal per step), float in [0, 1].
    """
    require_goal(goal)
    goal = torch.as_tensor(goal, device=frames.device)
    if goal.dtype == torch.uint8:
        raise ShapeError(
            "goal images must be float (C, h, w) in [0, 1]; convert uint8 (H, W, 3) observations "
            "with agents.core.image_to_tensor"
        )
    goal = goal.to(frames.dtype)
    if goal.dim() == 3:
        goal = goal[None, None]
    elif goal.dim() == 4:
        goal = goal[:, None]
    if goal.dim() != 5 or goal.shape[-3:] != frames.shape[-3:]:
        raise ShapeError(
            f"goal image of shape {tuple(goal.shape)} does not match predicted frames "
            f"{tuple(frames.shape)}: expected (C, h, w) = {tuple(frames.shape[-3:])}"
        )
    return goal


def push_shaping(obj: torch.Tensor, agent: torch.Tensor, target: torch.Tensor, behind: float,
                 keep_out: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The approach and keep-out terms (pixels) of a push, for positions ``... x 2`` (row, col).

    A push of ``obj`` towards ``target`` starts with the agent ``behind`` pixels beyond the
    object on the target-to-object line: ``approach`` is the agent's distance to that point.
    ``intrusion`` is how far the agent is inside ``keep_out`` pixels of the object, scaled from 0
    behind the object to 1 on its target side, so that a planner goes round the object rather
    than through it (a wrong-side touch pushes it away from the target). Without these terms
    the object's distance to its target is flat until the agent touches it.
    """
    to_goal = obj - target
    away = to_goal / to_goal.norm(dim=-1).clamp_min(1e-3)[..., None]  # unit vector from the target through obj
    approach = (agent - (obj + behind * away)).norm(dim=-1)
    offset = agent - obj
    gap = offset.norm(dim=-1)
    wrong_side = 0.5 * (1.0 - (offset * away).sum(-1) / gap.clamp_min(1e-3))  # 0 behind .. 1 in front
    return approach, (keep_out - gap).clamp_min(0.0) * wrong_side
