"""Costs of predicted frames: plain callables ``cost(frames, goal) -> costs``.

``frames`` are a world model's predictions ``N x H x C x h x w`` in [0, 1] for N candidate
action sequences; the result is one cost per candidate (``N``, lower is better). ``goal`` is
whatever the cost needs: a goal image ``C x h x w`` (or one per candidate, ``N x C x h x w``) for
image costs, a pixel position for :class:`DesignatedPixelCost`. Any function with this
signature is a cost, so users add their own without subclassing.

Per-step weights (``H``) combine the per-step distances; :func:`step_weights` emphasises the
final step, where the goal should be reached.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch

from mbvc.errors import ConfigError, DependencyNotInstalled, ShapeError

log = logging.getLogger(__name__)

Cost = Callable[[torch.Tensor, Any], torch.Tensor]
"""``cost(frames: N x H x C x h x w, goal) -> costs: N``."""


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


def goal_mse(frames: torch.Tensor, goal: Any, weights: torch.Tensor | None = None, final_weight: float = 1.0) -> torch.Tensor:
    """Mean squared pixel distance to a goal image, weighted over the horizon.

    Args:
        frames: predictions ``N x H x C x h x w`` in [0, 1].
        goal: goal image ``C x h x w`` (or ``N x C x h x w``).
        weights: per-step weights ``H`` (default :func:`step_weights` with ``final_weight``).
        final_weight: relative weight of the last step when ``weights`` is ``None``.

    Returns:
        Costs ``N``.

    Example:
        >>> frames = torch.zeros(2, 3, 1, 4, 4); frames[1] = 1.0
        >>> goal_mse(frames, torch.ones(1, 4, 4)).tolist()
        [1.0, 0.0]
    """
    check_frames(frames)
    # Squared in place: the difference is a fresh N x H x C x h x w tensor, often the largest
    # one of a planning iteration.
    per_step = (frames - goal_as_frames(goal, frames)).square_().mean(dim=(-3, -2, -1))
    return weighted_sum(per_step, weights, final_weight)


class GoalImageCost:
    """Goal-image MSE as a configured callable (see :func:`goal_mse`).

    Args:
        final_weight: relative weight of the final step.
        weights: explicit per-step weights ``H`` (overrides ``final_weight``).
    """

    def __init__(self, final_weight: float = 1.0, weights: Sequence[float] | torch.Tensor | None = None) -> None:
        self.final_weight = final_weight
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)

    def __call__(self, frames: torch.Tensor, goal: Any) -> torch.Tensor:
        return goal_mse(frames, goal, self.weights, self.final_weight)


class LPIPSCost:
    """LPIPS (AlexNet) distance to a goal image, weighted over the horizon.

    Uses :func:`mbvc.metrics.lpips.load_lpips`, loaded on first use, so constructing the cost
    is free and the weights are needed only when it is evaluated. Frames must be at least
    31 x 31 (AlexNet's pooling).

    Args:
        final_weight: relative weight of the final step.
        weights: explicit per-step weights ``H``.
        metric: an LPIPS callable ``(pred B x C x h x w, target) -> B`` to use instead of
            loading one (tests, or a metric already on the right device).
        chunk: images per network call, bounding activation memory for large N x H.
    """

    def __init__(
        self,
        final_weight: float = 1.0,
        weights: Sequence[float] | torch.Tensor | None = None,
        metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        chunk: int = 512,
    ) -> None:
        self.final_weight = final_weight
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        self.metric = metric
        self.chunk = chunk

    def _metric(self, device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        if self.metric is None:
            try:
                from mbvc.metrics.lpips import load_lpips
            except ImportError as exc:
                raise DependencyNotInstalled(
                    f"LPIPSCost needs mbvc.metrics.lpips, which could not be imported ({exc}); "
                    "use GoalImageCost (MSE) instead"
                ) from exc
            self.metric = load_lpips(device=device)  # raises DependencyNotInstalled without weights
        if isinstance(self.metric, torch.nn.Module):
            self.metric.to(device)
        return self.metric

    def __call__(self, frames: torch.Tensor, goal: Any) -> torch.Tensor:
        check_frames(frames)
        metric = self._metric(frames.device)
        n, h = frames.shape[:2]
        target = goal_as_frames(goal, frames).expand_as(frames).reshape(n * h, *frames.shape[2:])
        pred = frames.clamp(0, 1).reshape(n * h, *frames.shape[2:])
        dists = [metric(pred[i : i + self.chunk], target[i : i + self.chunk]) for i in range(0, n * h, self.chunk)]
        per_step = torch.cat(dists).to(frames.dtype).reshape(n, h)
        return weighted_sum(per_step, self.weights, self.final_weight)


def colour_mass(frames: torch.Tensor, colour: Sequence[float] | torch.Tensor, tolerance: float = 0.3) -> torch.Tensor:
    """Soft mask of the pixels whose colour is within ``tolerance`` of ``colour``.

    A linear kernel ``max(0, 1 - |pixel - colour| / tolerance)`` with compact support: unlike a
    Gaussian it gives exactly zero to the (many) background pixels, which would otherwise pull
    the centroid towards the image centre; blurry predictions still contribute in proportion.

    Args:
        frames: ``... x C x h x w`` in [0, 1].
        colour: ``C`` values in [0, 1].
        tolerance: Euclidean colour distance at which a pixel stops counting.

    Returns:
        Mask ``... x h x w`` in [0, 1].
    """
    c = torch.as_tensor(colour, dtype=frames.dtype, device=frames.device)
    if c.shape != (frames.shape[-3],):
        raise ShapeError(f"colour must have C = {frames.shape[-3]} values, got shape {tuple(c.shape)}")
    dist = (frames - c[:, None, None]).pow(2).sum(dim=-3).sqrt()
    return (1.0 - dist / tolerance).clamp_min(0.0)


def blob_position(frames: torch.Tensor, colour: Sequence[float] | torch.Tensor, tolerance: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroid (row, col) in pixels of the pixels matching ``colour``, and their total mass.

    Args:
        frames: ``... x C x h x w`` in [0, 1].
        colour: ``C`` values.
        tolerance: see :func:`colour_mass`.

    Returns:
        ``(position ... x 2, mass ...)``; the position of an empty mask is the image centre.
    """
    mask = colour_mass(frames, colour, tolerance)
    h, w = mask.shape[-2:]
    rows = torch.arange(h, device=mask.device, dtype=mask.dtype)
    cols = torch.arange(w, device=mask.device, dtype=mask.dtype)
    mass = mask.sum(dim=(-2, -1))
    safe = mass.clamp_min(1e-6)
    row = (mask.sum(-1) * rows).sum(-1) / safe
    col = (mask.sum(-2) * cols).sum(-1) / safe
    empty = mass < 1e-6
    row = torch.where(empty, torch.full_like(row, (h - 1) / 2), row)
    col = torch.where(empty, torch.full_like(col, (w - 1) / 2), col)
    return torch.stack([row, col], dim=-1), mass


class DesignatedPixelCost:
    """Distance (pixels) from the predicted position of a coloured object to a goal pixel.

    A flow-free designated-pixel cost: instead of propagating a pixel's probability mass with
    predicted flow, the object's position in each predicted frame is the centroid of the
    pixels of its colour (:func:`blob_position`). The goal is a pixel ``(row, col)``, or a goal
    image in which the object's centroid is the goal position. If the object vanishes from a
    prediction (mass below ``min_mass``), that step costs the image diagonal: losing the
    object must never look like success.

    Args:
        colour: the object's colour ``C`` in [0, 1] (e.g. ``(0.85, 0.15, 0.12)``).
        tolerance: colour distance within which a pixel belongs to the object.
        min_mass: pixels of mass below which the object counts as lost.
        final_weight: relative weight of the final step.
        weights: explicit per-step weights ``H``.
    """

    def __init__(
        self,
        colour: Sequence[float] | torch.Tensor,
        tolerance: float = 0.3,
        min_mass: float = 0.5,
        final_weight: float = 1.0,
        weights: Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        if tolerance <= 0:
            raise ConfigError(f"tolerance must be > 0, got {tolerance=}")
        self.colour = torch.as_tensor(colour, dtype=torch.float32)
        self.tolerance = tolerance
        self.min_mass = min_mass
        self.final_weight = final_weight
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)

    def goal_position(self, goal: Any, frames: torch.Tensor) -> torch.Tensor:
        """Goal pixel ``2`` (or ``N x 2``) from a position or a goal image."""
        require_goal(goal)
        g = torch.as_tensor(goal, device=frames.device)
        if g.dim() >= 3:  # a goal image: where the object is in it
            pos, mass = blob_position(goal_as_frames(g, frames)[:, 0], self.colour, self.tolerance)
            if bool((mass < self.min_mass).any()):
                raise ShapeError("the goal image does not show the designated object's colour "
                                 f"{self.colour.tolist()} (within tolerance {self.tolerance})")
            return pos
        if g.shape[-1] != 2:
            raise ShapeError(f"a goal pixel must be (row, col), got shape {tuple(g.shape)}")
        return g.to(frames.dtype).reshape(-1, 2)

    def __call__(self, frames: torch.Tensor, goal: Any) -> torch.Tensor:
        check_frames(frames)
        pos, mass = blob_position(frames, self.colour, self.tolerance)  # N x H x 2, N x H
        target = self.goal_position(goal, frames)[:, None, :]  # (1|N) x 1 x 2
        dist = (pos - target).pow(2).sum(-1).sqrt()
        diagonal = float(torch.tensor(frames.shape[-2:], dtype=torch.float32).norm())
        dist = torch.where(mass < self.min_mass, torch.full_like(dist, diagonal), dist)
        return weighted_sum(dist, self.weights, self.final_weight)


class SumCost:
    """Weighted sum of costs sharing one goal: ``sum_i w_i * cost_i(frames, goal)``.

    Args:
        terms: ``(weight, cost)`` pairs.
    """

    def __init__(self, *terms: tuple[float, Cost]) -> None:
        if not terms:
            raise ConfigError("SumCost needs at least one (weight, cost) term")
        self.terms = terms

    def __call__(self, frames: torch.Tensor, goal: Any) -> torch.Tensor:
        return sum(w * cost(frames, goal) for w, cost in self.terms)  # type: ignore[return-value]
