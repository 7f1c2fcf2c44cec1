"""Image costs: distances of predicted frames to a goal image, or of a coloured object to a goal pixel.

* :func:`goal_mse` / :class:`GoalImageCost`: pixel MSE to the goal image, weighted over the horizon;
* :class:`MaskedGoalImageCost`: the same over the pixels a mask keeps (e.g. not the agent's body);
* :class:`LPIPSCost`: LPIPS (AlexNet) to the goal image;
* :class:`DesignatedPixelCost`: the distance of an object of a given colour to a goal pixel;
* :class:`SumCost`: a weighted sum of costs sharing one goal.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mbvc.errors import ConfigError, DependencyNotInstalled, ShapeError

from .base import Cost, check_frames, goal_as_frames, require_goal, weighted_sum

log = logging.getLogger(__name__)


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


class GoalImageCost(Cost):
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


class LPIPSCost(Cost):
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


def load_mask(mask: str | os.PathLike | np.ndarray | torch.Tensor) -> torch.Tensor:
    """A mask ``h x w`` in [0, 1] (1: the pixel counts, 0: ignored) from an array or a file.

    Files: ``.npy`` (values in [0, 1]) or an image (PNG...; grey levels / 255, so white counts).

    Raises:
        ConfigError: a missing or unreadable file, or values outside [0, 1].
    """
    if isinstance(mask, (str, os.PathLike)):
        path = Path(mask)
        if not path.is_file():
            raise ConfigError(f"cost mask {path}: no such file (expected .npy or an image, h x w)")
        try:
            if path.suffix == ".npy":
                array = np.load(path, allow_pickle=False).astype(np.float32)
            else:
                from PIL import Image

                array = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cost mask {path}: cannot read it ({exc})") from None
        mask = array
    t = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask, dtype=torch.float32)
    if t.dim() != 2:
        raise ConfigError(f"a cost mask must be (h, w), got shape {tuple(t.shape)}")
    if not bool(((t >= 0) & (t <= 1)).all()):
        raise ConfigError(f"a cost mask must hold values in [0, 1], got [{float(t.min())}, {float(t.max())}]")
    return t


class MaskedGoalImageCost(Cost):
    """Mean squared pixel distance to a goal image over the pixels a mask keeps.

    Args:
        final_weight: relative weight of the last planned step (:func:`agents.costs.step_weights`).
        mask: ``h x w`` weights in [0, 1] (an array or a file, :func:`load_mask`); 0 ignores a
            pixel, e.g. where the agent's own body is, which otherwise dominates the distance.
            Resized (area) to the frames' size when it differs. ``None``: every pixel counts.
        weights: explicit per-step weights ``H`` (overrides ``final_weight``).
    """

    def __init__(
        self,
        final_weight: float = 1.0,
        mask: str | os.PathLike | np.ndarray | torch.Tensor | None = None,
        weights: Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        self.final_weight = final_weight
        self.mask = None if mask is None else load_mask(mask)
        if self.mask is not None and float(self.mask.sum()) <= 0:
            raise ConfigError("the cost mask ignores every pixel (all zeros)")
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)

    def _mask_for(self, frames: torch.Tensor) -> torch.Tensor | None:
        if self.mask is None:
            return None
        mask = self.mask.to(frames.device, frames.dtype)
        if tuple(mask.shape) != tuple(frames.shape[-2:]):
            mask = F.interpolate(mask[None, None], size=tuple(frames.shape[-2:]), mode="area")[0, 0]
        return mask

    def __call__(self, frames: torch.Tensor, goal: Any) -> torch.Tensor:
        check_frames(frames)
        sq = (frames - goal_as_frames(goal, frames)).square_()
        mask = self._mask_for(frames)
        if mask is None:
            per_step = sq.mean(dim=(-3, -2, -1))
        else:
            per_step = (sq * mask).sum(dim=(-3, -2, -1)) / (mask.sum() * frames.shape[-3])
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


class DesignatedPixelCost(Cost):
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


class SumCost(Cost):
    """Weighted sum of costs sharing one goal: ``sum_i w_i * cost_i(frames, goal)``.

    Args:
        terms: ``(weight, cost)`` pairs.
    """

    def __init__(self, *terms: tuple[float, Callable[[torch.Tensor, Any], torch.Tensor]]) -> None:
        if not terms:
            raise ConfigError("SumCost needs at least one (weight, cost) term")
        self.terms = terms

    def __call__(self, frames: torch.Tensor, goal: Any) -> torch.Tensor:
        return sum(w * cost(frames, goal) for w, cost in self.terms)  # type: ignore[return-value]


__all__ = ["DesignatedPixelCost", "GoalImageCost", "LPIPSCost", "MaskedGoalImageCost", "SumCost", "blob_position",
           "colour_mass", "goal_mse", "load_mask"]
