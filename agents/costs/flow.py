"""Visual Foresight's designated-pixel cost: the designated pixels pushed through the model's predicted flow.

With a world model whose output is a transformation of its input (``model.output: flow``), the
model itself says where every pixel went: a probability map over the designated object's pixel
is moved by the same flow and masks that move the image
(:func:`mbvc.models.transforms.push_distribution`), so no template has to be found again in
blurry predictions. :class:`DesignatedFlowCost` does this for the object and for the agent's
effector and scores the push as :class:`~agents.costs.designated.DesignatedPushCost` does (the
object's expected distance to its target, plus the approach and keep-out shaping); where the
object and the agent are in the observed frames is still tracked by template matching on
those real frames (``observe``), which are sharp.
"""
from __future__ import annotations

from typing import Any

import torch

from mbvc.errors import ConfigError, ShapeError

from ..core import Prediction
from .base import push_shaping, weighted_sum
from .designated import DesignatedGoal, DesignatedPushCost


def point_distribution(pixel: tuple[float, float], height: int, width: int,
                       device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A probability map ``1 x 1 x h x w`` whose mass sits at the sub-pixel ``(row, col)``: split over the four
    neighbouring pixels bilinearly, so that its centroid is exactly ``pixel`` (clamped into the frame)."""
    r = min(max(float(pixel[0]), 0.0), height - 1.0)
    c = min(max(float(pixel[1]), 0.0), width - 1.0)
    r0, c0 = min(int(r), height - 2) if height > 1 else 0, min(int(c), width - 2) if width > 1 else 0
    fr, fc = r - r0, c - c0
    p = torch.zeros(1, 1, height, width, device=device, dtype=dtype)
    for dr, wr in ((0, 1.0 - fr), (1, fr)):
        for dc, wc in ((0, 1.0 - fc), (1, fc)):
            if r0 + dr < height and c0 + dc < width:
                p[0, 0, r0 + dr, c0 + dc] += wr * wc
    return p


def centroid(p: torch.Tensor) -> torch.Tensor:
    """Expected ``(row, col)`` ``... x 2`` of probability maps ``... x 1 x h x w``."""
    h, w = p.shape[-2:]
    rows = torch.arange(h, device=p.device, dtype=p.dtype)
    cols = torch.arange(w, device=p.device, dtype=p.dtype)
    mass = p.sum(dim=(-3, -2, -1)).clamp_min(1e-12)
    return torch.stack([(p.sum(dim=(-3, -1)) * rows).sum(-1) / mass, (p.sum(dim=(-3, -2)) * cols).sum(-1) / mass], -1)


def propagate(pixel: tuple[float, float], flow: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Expected positions ``N x H x 2`` of a designated pixel pushed through predicted transformations.

    Args:
        pixel: the pixel's ``(row, col)`` in the last observation (and, for the first-frame skip,
            in the context's first frame).
        flow: ``N x H x 2 x h x w`` (:class:`agents.core.Prediction`).
        masks: ``N x H x 3 x h x w``.
    """
    from mbvc.models.transforms import push_distribution

    n, steps, _, h, w = flow.shape
    start = point_distribution(pixel, h, w, flow.device, flow.dtype).expand(n, 1, h, w)
    p, out = start, []
    for t in range(steps):  # H is a planning horizon (~10), each step batched over the N candidates
        p = push_distribution(p, flow[:, t], masks[:, t], start)
        out.append(centroid(p))
    return torch.stack(out, dim=1)


class DesignatedFlowCost(DesignatedPushCost):
    """``designated_flow``: the designated object and agent moved by the world model's own flow.

    Takes the same designation and settings as :class:`DesignatedPushCost` (whose template
    tracking on the observed frames it keeps); only the predicted positions differ: pushed
    through the model's flow and masks (:func:`propagate`) instead of matched in the predicted
    frames. Needs a world model with ``model.output: flow``.
    """

    uses_transforms = True

    def __call__(self, frames: Any, goal: Any) -> torch.Tensor:
        if not isinstance(frames, Prediction):
            raise ConfigError("the designated_flow cost scores a world model's predicted transformations "
                              "(agents.core.Prediction), got plain frames; it needs a model with model.output=flow")
        flow, masks = frames.flow, frames.masks
        if flow.dim() != 5 or flow.shape[2] != 2 or masks.shape[2] != 3:
            raise ShapeError(f"designated_flow needs flow (N, H, 2, h, w) and masks (N, H, 3, h, w), got "
                             f"{tuple(flow.shape)} and {tuple(masks.shape)}")
        goal = self._goal(goal)
        if not isinstance(goal, DesignatedGoal):
            raise ConfigError(f"designated_flow takes a DesignatedGoal, got {type(goal).__name__}")
        obj = propagate(goal.object_now, flow, masks)
        agent = propagate(goal.agent_now, flow, masks)  # type: ignore[arg-type]
        target = torch.tensor(goal.target, device=flow.device, dtype=flow.dtype)
        cost = (obj - target).norm(dim=-1)
        if self.approach_weight or self.keep_out_weight:
            approach, intrusion = push_shaping(obj, agent, target, self.behind, self.keep_out)
            cost = cost + self.approach_weight * approach + self.keep_out_weight * intrusion
        return weighted_sum(cost, self.weights, self.final_weight)


__all__ = ["DesignatedFlowCost", "centroid", "point_distribution", "propagate"]
