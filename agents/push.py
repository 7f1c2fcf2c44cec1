"""The image cost of pushing a block to a goal, from pixels only, and what it learns from data.

:class:`PushCost` finds the block and the pusher in predicted frames by background
subtraction (:func:`background_image`); :func:`calibrate_finger` fits its finger detector on
recorded rollouts; :func:`clear_goal_image` draws a goal image that shows the whole block. The
cost registry (:mod:`agents.cost_registry`) builds it as ``--cost push``.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mbvc.errors import ConfigError, DataError, ShapeError

from .costs import check_frames, colour_mass, push_shaping, weighted_sum

log = logging.getLogger(__name__)

#: Colours of the target block and of the pusher's rod as the default camera renders them
#: (lit faces average to these; measured on 32x32 frames).
BLOCK_COLOUR = (0.83, 0.17, 0.14)
PUSHER_COLOUR = (0.85, 0.85, 0.88)


@dataclasses.dataclass(frozen=True)
class PushGoal:
    """The push cost's goal, with where the observed frames last showed the block and the finger.

    :meth:`PushCost.observe` makes one from a goal image (or pixel) at the episode's first frame
    and updates it with every observed frame (:meth:`agents.mpc.MPCAgent.act` calls it), so
    that a plan starts from the block's estimated position even while the pusher's rod hides it.

    Attributes:
        goal: the goal image ``C x h x w`` or the goal pixel ``(row, col)``.
        block: the block's estimated pixel ``(row, col)`` in the latest observation.
        finger: the finger's pixel in the latest observation.
        full_mass: the largest block weight observed so far (the block in full view).
    """

    goal: torch.Tensor
    block: tuple[float, float] | None = None
    finger: tuple[float, float] | None = None
    full_mass: float = 0.0


class PushCost:
    """Designated-pixel cost of a push on predicted frames, with shaping for the approach.

    Objects are found by background subtraction: the camera is fixed, so a frame minus the
    empty scene (:func:`background_image`, the per-pixel median of the collected frames) is
    zero except where the block and the pusher are. A pixel's change is projected on the
    colour direction from the background to the object (the block: redder, less green and
    blue; the pusher's rod: brighter and bluer), which keeps blurry, faded predictions
    detectable where a fixed colour match loses them. The block's position is the centroid of
    its weight; the pusher's rod rises from the finger to the top edge of the image, so its
    centroid column is the finger's and twice its centroid row is the finger's row.

    The cost per step is the block's distance to its position in the goal image plus
    ``pusher_weight`` times the finger's distance to a point ``behind`` pixels beyond the
    block on the goal-to-block line, where a push towards the goal starts, plus a keep-out
    term: ``keep_out_weight`` times how far the finger is inside ``keep_out`` pixels of the
    block, scaled from 0 behind the block to 1 on its goal side. The block term alone is flat
    until the pusher touches the block; the shaping gives the planner a slope everywhere, and
    the keep-out term makes it go round the block instead of through it (a small learnt model
    predicts contacts poorly, and a wrong-side touch pushes the block away from the goal).
    Distances are in pixels.

    Args:
        background: the empty scene ``C x h x w`` in [0, 1] at the model's frame size.
        block_colour: the block's rendered colour.
        pusher_colour: the rod's rendered colour.
        block_threshold: projected change below which a pixel is not block (noise, shadows).
        pusher_threshold: the same for the rod.
        pusher_weight: weight of the shaping term (0: the plain designated-pixel cost).
        behind: pixels behind the block's centre where the finger should be.
        keep_out: pixels around the block's centre that the finger should enter only from behind.
        keep_out_weight: weight of the keep-out term (0 disables it).
        track_sigma: pixels of the window that follows the block from step to step (see :meth:`track_block`).
        final_weight: relative weight of the last step (:func:`agents.costs.step_weights`).
        min_mass: summed weight below which an object counts as lost (costs the diagonal); 0: the
            block is never lost, its tracked position counts however faint (occluded, not gone).
        carry_below: fraction of the block's full weight (the most observed so far, see
            :class:`PushGoal`) below which the block counts as hidden under the pusher's rod, in
            observed and predicted frames (0: off, the block is tracked as it looks). A hidden
            block within ``carry_radius`` pixels of the finger is carried by the finger's advance
            towards it; a hidden block away from the finger stays where it was (see
            :meth:`track_block`).
        carry_radius: finger-to-block distance (pixels) within which a hidden block is pushed.
    """

    def __init__(self, background: torch.Tensor, block_colour: Sequence[float] = BLOCK_COLOUR,
                 pusher_colour: Sequence[float] = PUSHER_COLOUR, block_threshold: float = 0.1,
                 pusher_threshold: float = 0.1, pusher_weight: float = 0.5, behind: float = 3.0,
                 keep_out: float = 6.0, keep_out_weight: float = 2.0, track_sigma: float = 3.0,
                 final_weight: float = 1.0, min_mass: float = 0.5, finger_map: torch.Tensor | None = None,
                 carry_below: float = 0.0, carry_radius: float = 5.0) -> None:
        background = torch.as_tensor(background, dtype=torch.float32)
        if background.dim() != 3 or background.shape[0] != len(block_colour):
            raise ShapeError(f"PushCost background must be (C, h, w) with C = {len(block_colour)}, "
                             f"got {tuple(background.shape)}")
        if pusher_weight < 0 or min_mass < 0 or not 0 <= carry_below <= 1 or carry_radius < 0:
            raise ConfigError(f"PushCost needs pusher_weight >= 0, min_mass >= 0, 0 <= carry_below <= 1 and "
                              f"carry_radius >= 0, got {pusher_weight=}, {min_mass=}, {carry_below=}, {carry_radius=}")
        self.background = background
        mean_bg = background.mean(dim=(-2, -1))
        # Unit colour directions from the (average) background to each object. The block's
        # keeps only the change of hue (its grey component removed): shadows and the pusher's
        # dark finger also lower green and blue, but they lower red as much.
        block_change = torch.as_tensor(block_colour, dtype=torch.float32) - mean_bg
        self.block_dir = _unit(block_change - block_change.mean())
        self.pusher_dir = _unit(torch.as_tensor(pusher_colour, dtype=torch.float32) - mean_bg)
        self.block_threshold, self.pusher_threshold = block_threshold, pusher_threshold
        self.pusher_weight, self.behind = pusher_weight, behind
        self.keep_out, self.keep_out_weight = keep_out, keep_out_weight
        self.track_sigma = track_sigma
        self.final_weight, self.min_mass = final_weight, min_mass
        self.carry_below, self.carry_radius = carry_below, carry_radius
        if finger_map is not None:
            finger_map = torch.as_tensor(finger_map, dtype=torch.float32)
            if finger_map.shape != (2, FINGER_FEATURES):
                raise ShapeError(f"PushCost finger_map must be (2, {FINGER_FEATURES}) "
                                 f"(see calibrate_finger), got {tuple(finger_map.shape)}")
        self.finger_map = finger_map

    def _weights(self, frames: torch.Tensor, direction: torch.Tensor, threshold: float) -> torch.Tensor:
        bg = self.background.to(frames.device, frames.dtype)
        if frames.shape[-3:] != bg.shape:
            raise ShapeError(f"PushCost: frames of shape {tuple(frames.shape[-3:])} do not match the background "
                             f"{tuple(bg.shape)}")
        change = ((frames - bg) * direction.to(frames.device, frames.dtype)[:, None, None]).sum(dim=-3)
        return (change - threshold).clamp_min(0.0)

    def block_position(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Block centroid ``... x 2`` (row, col) and weight ``...`` of frames ``... x C x h x w``."""
        return _centroid(self._weights(frames, self.block_dir, self.block_threshold))

    def track_block(self, frames: torch.Tensor, finger: torch.Tensor | None = None,
                    start: PushGoal | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Block positions ``N x H x 2`` and weights ``N x H`` along predicted frames ``N x H x C x h x w``.

        From the second step on, only pixels near the previous step's position count (a
        Gaussian window of ``track_sigma`` pixels): the block moves at most a pixel or two per
        step, while a blurry model leaves faint reddish smears elsewhere (along the rod, where
        the block faded) whose weight would otherwise drag the centroid, and which a planner
        would learn to exploit.

        With ``carry_below`` > 0, ``finger`` (``N x H x 2``, :meth:`pusher_position`) and
        ``start`` (a :class:`PushGoal` that has observed the episode): the track starts from the
        block and finger of the latest observation, and a step whose block weight is under
        ``carry_below`` times the full weight is hidden. Pushing away from the camera puts the
        rod between the camera and the block, and a learnt model fades the block there rather
        than moving it; a hidden block within ``carry_radius`` of the finger moves by the
        finger's advance towards it (the rod cannot pass through the block: it pushes it), a
        hidden block away from the finger keeps its position, and neither counts as lost.
        """
        weight = self._weights(frames, self.block_dir, self.block_threshold)  # N x H x h x w
        carry = (self.carry_below > 0 and finger is not None and start is not None and start.block is not None
                 and start.finger is not None)
        if carry:
            assert finger is not None and start is not None and start.block is not None and start.finger is not None
            n = weight.shape[0]
            return self._follow(weight, weight.new_tensor(start.block).expand(n, 2),
                                weight.new_tensor(start.finger).expand(n, 2), finger, start.full_mass)
        pos, mass = _centroid(weight[:, 0])
        positions, masses = self._follow(weight[:, 1:], pos)
        return torch.cat([pos[:, None], positions], dim=1), torch.cat([mass[:, None], masses], dim=1)

    def _follow(self, weight: torch.Tensor, pos: torch.Tensor, prev_finger: torch.Tensor | None = None,
                finger: torch.Tensor | None = None, full_mass: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Block positions ``N x H x 2`` and weights ``N x H`` in block weights ``N x H x h x w``, from ``pos``.

        With ``finger`` (``N x H x 2``, after ``prev_finger``) and ``full_mass``, hidden steps are
        carried or held as :meth:`track_block` describes.
        """
        h, w = weight.shape[-2:]
        rows = torch.arange(h, device=weight.device, dtype=weight.dtype)[:, None]
        cols = torch.arange(w, device=weight.device, dtype=weight.dtype)[None, :]
        carry = finger is not None and prev_finger is not None and full_mass is not None and self.carry_below > 0
        full = weight.new_tensor(full_mass or 0.0)
        positions, masses = [], []
        for t in range(weight.shape[1]):
            d2 = (rows - pos[:, 0, None, None]) ** 2 + (cols - pos[:, 1, None, None]) ** 2
            window = torch.exp(-d2 / (2 * self.track_sigma**2))
            new_pos, mass = _centroid(weight[:, t] * window)
            new_pos = torch.where((mass > 1e-6)[:, None], new_pos, pos)  # an empty window keeps the last position
            if carry:
                assert finger is not None and prev_finger is not None
                # Where the estimate drifted from a block coming out of hiding, a window twice as
                # wide finds it again.
                wide_pos, wide_mass = _centroid(weight[:, t] * window.sqrt().sqrt())
                lost_here = mass < self.carry_below * full
                new_pos = torch.where(lost_here[:, None], wide_pos, new_pos)
                mass = torch.where(lost_here, wide_mass, mass)
                hidden = mass < self.carry_below * full
                held = _carried(pos, prev_finger, finger[:, t], self.carry_radius)
                new_pos = torch.where(hidden[:, None], held, new_pos)
                mass = torch.where(hidden, full.expand_as(mass), mass)  # occluded, not gone
                prev_finger = finger[:, t]
            pos = new_pos
            positions.append(pos)
            masses.append(mass)
        if not positions:
            return pos.new_zeros(pos.shape[0], 0, 2), pos.new_zeros(pos.shape[0], 0)
        return torch.stack(positions, dim=1), torch.stack(masses, dim=1)

    def observe(self, goal: Any, frame: torch.Tensor) -> PushGoal:
        """The goal (a :class:`PushGoal`, or a goal image or pixel) updated with an observed frame ``C x h x w``.

        The block is tracked from its last estimate (the whole frame at the first one); where the
        rod hides it (weight under ``carry_below`` of the most seen), the finger's observed
        advance carries it, as in :meth:`track_block`.
        """
        g = goal if isinstance(goal, PushGoal) else PushGoal(torch.as_tensor(goal, dtype=torch.float32))
        frame = torch.as_tensor(frame, dtype=torch.float32)
        (finger,), _ = self.pusher_position(frame[None])
        if g.block is None or g.finger is None:
            (block,), (mass,) = self.block_position(frame[None])
            return PushGoal(g.goal, _pixel(block), _pixel(finger), float(mass))
        weight = self._weights(frame[None, None], self.block_dir, self.block_threshold)  # 1 x 1 x h x w
        (block,), (mass,) = self._follow(weight, frame.new_tensor(g.block)[None], frame.new_tensor(g.finger)[None],
                                         finger[None, None], g.full_mass)
        return PushGoal(g.goal, _pixel(block[0]), _pixel(finger), max(g.full_mass, float(mass[0])))

    def rod_centroid(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Centroid ``... x 2`` (row, col) and weight ``...`` of the pusher's rod."""
        return _centroid(self._weights(frames, self.pusher_dir, self.pusher_threshold))

    def pusher_position(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Finger position ``... x 2`` (row, col), in the block's pixel frame, and rod weight ``...``.

        With a ``finger_map`` (:func:`calibrate_finger`) it is a quadratic function of the rod's
        centroid fitted on recorded frames; without, the rod is taken as a vertical bar from the
        top edge to the finger (twice its centroid row), which is off by 1-2 pixels where the
        perspective tilts the rod. Both use the centroid only, so a blurry prediction of the rod
        gives the same finger position as a sharp one.
        """
        pos, mass = self.rod_centroid(frames)
        if self.finger_map is not None:
            fm = self.finger_map.to(frames.device, frames.dtype)
            return _quadratic_features(pos) @ fm.T, mass
        return _bar_finger(pos), mass

    def goal_position(self, goal: Any, frames: torch.Tensor) -> torch.Tensor:
        """Block position in the goal image (``C x h x w``) or a given pixel (``2``)."""
        g = torch.as_tensor(goal, device=frames.device, dtype=frames.dtype)
        if g.dim() == 1:
            return g
        pos, mass = self.block_position(g)
        if float(mass) < max(self.min_mass, 1e-6):
            raise ShapeError("PushCost: the goal image does not show the block (it matches the background there)")
        return pos

    def __call__(self, frames: torch.Tensor, goal: Any) -> torch.Tensor:
        check_frames(frames)
        start = goal if isinstance(goal, PushGoal) else None
        if start is not None:
            goal = start.goal
        need_pusher = bool(self.pusher_weight or self.keep_out_weight or (self.carry_below and start is not None))
        pusher, pusher_mass = self.pusher_position(frames) if need_pusher else (None, None)
        block, block_mass = self.track_block(frames, pusher, start)  # N x H x 2
        target = self.goal_position(goal, frames)
        dist = (block - target).norm(dim=-1)
        diagonal = float(np.hypot(*frames.shape[-2:]))
        cost = torch.where(block_mass < self.min_mass, torch.full_like(dist, diagonal), dist)
        if self.pusher_weight or self.keep_out_weight:
            assert pusher is not None and pusher_mass is not None
            lost = pusher_mass < self.min_mass
            approach, intrusion = push_shaping(block, pusher, target, self.behind, self.keep_out)
            approach = torch.where(lost, torch.full_like(approach, diagonal), approach)
            intrusion = torch.where(lost, torch.zeros_like(intrusion), intrusion)
            cost = cost + self.pusher_weight * approach + self.keep_out_weight * intrusion
        return weighted_sum(cost, None, self.final_weight)


class MultiViewPushCost:
    """The push cost on frames that hold several camera views side by side (``camera="bair+side"``).

    One :class:`PushCost` per view finds the block and the pusher's rod in that view;
    :func:`calibrate_view` maps each view's pixels to table positions. The block's table position
    is the views' estimates averaged with weights of how much of the block each view shows (its
    weight over its weight in the goal image, at most 1): where the rod hides the block from one
    camera, that view stops counting, and the other camera, which sees the push from the side,
    places it. The block is lost (the step costs the image diagonal) only when every view loses
    it. The pusher's position is the mean over the views that show the rod. Distances are in the
    first view's pixels (``scale``: its pixels per metre), so ``behind``, ``keep_out`` and the
    weights mean what they mean in :class:`PushCost`. Where calibrations give their errors, each
    view's estimates also weigh by the inverse of its squared error (the side camera places the
    pusher about twice as far off as the BAIR-view one).

    Args:
        costs: one :class:`PushCost` per view, left to right, each with its view's background.
        calibrations: per view, ``{"block": (2, 6), "pusher": (2, 6)}`` maps and optionally
            ``"block_error_m"``, ``"pusher_error_m"`` (:func:`calibrate_view`'s).
        scale: pixels of the first view per metre on the table.
    """

    def __init__(self, costs: Sequence[PushCost], calibrations: Sequence[dict[str, torch.Tensor]], scale: float) -> None:
        if len(costs) < 2 or len(calibrations) != len(costs):
            raise ConfigError(f"MultiViewPushCost needs at least 2 views and one calibration per view, got "
                              f"{len(costs)} costs and {len(calibrations)} calibrations (one view: use PushCost)")
        if not scale > 0:
            raise ConfigError(f"MultiViewPushCost scale must be > 0 pixels per metre, got {scale!r}")
        for cal in calibrations:
            shapes = {k: tuple(cal[k].shape) if k in cal else None for k in ("block", "pusher")}
            if shapes != {"block": (2, FINGER_FEATURES), "pusher": (2, FINGER_FEATURES)}:
                raise ShapeError(f"MultiViewPushCost calibrations hold 'block' and 'pusher' maps of shape (2, 6) "
                                 f"(see calibrate_view), got {shapes}")
        self.costs, self.calibrations, self.scale = list(costs), list(calibrations), float(scale)
        # inverse-variance weights of each view's block and pusher estimates (1 without errors)
        self.trust = [{k: 1.0 / max(float(cal.get(f"{k}_error_m", 1.0)), 1e-4) ** 2 for k in ("block", "pusher")}
                      for cal in calibrations]
        self.views = len(self.costs)
        first = self.costs[0]
        self.min_mass, self.final_weight = first.min_mass, first.final_weight
        self.pusher_weight, self.keep_out_weight = first.pusher_weight, first.keep_out_weight
        self.behind, self.keep_out = first.behind, first.keep_out

    def split(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Frames ``... x C x h x (n w)`` -> the ``n`` views ``... x C x h x w``, left to right."""
        return split_views(frames, self.views)

    def observe(self, goal: Any, frame: torch.Tensor) -> tuple[PushGoal, ...]:
        """Every view's :meth:`PushCost.observe` (the goal: a goal image of all the views, or their goals)."""
        goals = goal if isinstance(goal, tuple) else self.split(torch.as_tensor(goal, dtype=torch.float32))
        return tuple(c.observe(g, f) for c, g, f in zip(self.costs, goals, self.split(torch.as_tensor(frame))))

    def table_positions(self, frames: torch.Tensor, goals: Sequence[Any] | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Block and pusher table positions ``N x H x 2`` (metres) in frames ``N x H x C x h x (n w)``,
        with whether the block is lost and whether the rod is, ``N x H``. ``goals`` (per view, a
        goal image or a :class:`PushGoal`) set each view's full block weight; else 1 pixel."""
        full = [1.0] * self.views if goals is None else [v[2] for v in self._goal_views(goals, frames)]
        return self._positions(frames, full)

    def goal_table_position(self, goals: Sequence[Any], frames: torch.Tensor) -> torch.Tensor:
        """The block's table position ``2`` in the goal images (per view), weighted by how much each shows."""
        return self._target(self._goal_views(goals, frames))

    def __call__(self, frames: torch.Tensor, goal: Any) -> torch.Tensor:
        check_frames(frames)
        goals = goal if isinstance(goal, tuple) else self.split(torch.as_tensor(goal, device=frames.device,
                                                                                 dtype=frames.dtype))
        if len(goals) != self.views:
            raise ShapeError(f"MultiViewPushCost: {self.views} views, got a goal of {len(goals)}")
        per_view = self._goal_views(goals, frames)  # the goal image's block, found once per call
        block, pusher, lost, pusher_lost = self._positions(frames, [v[2] for v in per_view])
        target = self._target(per_view)
        s = self.scale
        dist = (block - target).norm(dim=-1) * s
        diagonal = float(np.hypot(frames.shape[-2], frames.shape[-1] / self.views))
        cost = torch.where(lost, torch.full_like(dist, diagonal), dist)
        if self.pusher_weight or self.keep_out_weight:
            approach, intrusion = push_shaping(block * s, pusher * s, target * s, self.behind, self.keep_out)
            approach = torch.where(pusher_lost, torch.full_like(approach, diagonal), approach)
            intrusion = torch.where(pusher_lost, torch.zeros_like(intrusion), intrusion)
            cost = cost + self.pusher_weight * approach + self.keep_out_weight * intrusion
        return weighted_sum(cost, None, self.final_weight)

    def _positions(self, frames: torch.Tensor, full: Sequence[float]
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`table_positions` with each view's full block weight given."""
        blocks, block_w, pushers, pusher_w = [], [], [], []
        lost = None
        for i, (cost, cal, view) in enumerate(zip(self.costs, self.calibrations, self.split(frames))):
            pos, mass = cost.track_block(view)
            blocks.append(_quadratic_features(pos) @ cal["block"].to(pos).T)
            block_w.append((mass / full[i]).clamp(0.0, 1.0) * self.trust[i]["block"])
            rod, rod_mass = cost.rod_centroid(view)
            pushers.append(_quadratic_features(rod) @ cal["pusher"].to(rod).T)
            pusher_w.append((rod_mass >= cost.min_mass).to(rod.dtype) * self.trust[i]["pusher"])
            lost = mass < cost.min_mass if lost is None else lost & (mass < cost.min_mass)
        assert lost is not None
        bw, pw = torch.stack(block_w)[..., None], torch.stack(pusher_w)[..., None]
        block = (bw * torch.stack(blocks)).sum(0) / bw.sum(0).clamp_min(1e-6)
        pusher = (pw * torch.stack(pushers)).sum(0) / pw.sum(0).clamp_min(1e-6)
        return block, pusher, lost, pw.sum(0)[..., 0] == 0

    def _goal_views(self, goals: Sequence[Any], frames: torch.Tensor
                    ) -> list[tuple[torch.Tensor | None, torch.Tensor | None, float]]:
        """Per view: the goal block's table position (``None`` for a goal pixel), its weight in the
        goal image, and the block's full weight (that, or the most a :class:`PushGoal` observed)."""
        out: list[tuple[torch.Tensor | None, torch.Tensor | None, float]] = []
        for cost, cal, g in zip(self.costs, self.calibrations, goals):
            image = torch.as_tensor(g.goal if isinstance(g, PushGoal) else g, device=frames.device, dtype=frames.dtype)
            point = mass = None
            if image.dim() == 3:
                pos, mass = cost.block_position(image)
                point = _quadratic_features(pos) @ cal["block"].to(pos).T
            full = max(0.0 if mass is None else float(mass), g.full_mass if isinstance(g, PushGoal) else 0.0, 1e-6)
            out.append((point, mass, full))
        return out

    def _target(self, per_view: list[tuple[torch.Tensor | None, torch.Tensor | None, float]]) -> torch.Tensor:
        """The goal block's table position from :meth:`_goal_views`, weighted by how much each view shows."""
        if any(point is None for point, _, _ in per_view):
            raise ShapeError("MultiViewPushCost needs a goal image of every view, got a goal pixel")
        masses = torch.stack([mass for _, mass, _ in per_view])  # type: ignore[misc]
        if float(masses.max()) < self.min_mass:
            raise ShapeError("MultiViewPushCost: no view of the goal image shows the block")
        w = masses * masses.new_tensor([t["block"] for t in self.trust])
        return (w[:, None] * torch.stack([point for point, _, _ in per_view])).sum(0) / w.sum()  # type: ignore[misc]


def calibrate_view(cost: PushCost, data_root: str | os.PathLike, view: int = 0, views: int = 1,
                   max_frames: int = 3000, min_gap: float = 0.05) -> dict[str, Any]:
    """Maps from a view's pixels to table positions, fitted on recorded rollouts (:class:`MultiViewPushCost`).

    Least-squares quadratics: the block's detected pixel to its recorded table position (frames
    where the pusher is at least ``min_gap`` metres from it, so that its rod hides none of it),
    and the rod's centroid to the pusher's position. Half the frames fit, the other half
    measure the error.

    Returns:
        ``{"block": (2, 6), "pusher": (2, 6), "block_error_m", "pusher_error_m", "px_per_m"}``:
        the maps, their mean held-out errors and the view's pixels per metre (an affine fit's).
    """
    from envs.scene import StateLayout
    frames, states = _rollout_frames(data_root, max_frames, view, views)
    (blocks, block_mass), (rods, rod_mass) = cost.block_position(frames), cost.rod_centroid(frames)
    block_xy, pusher_xy = states[:, StateLayout(1).object(0)][:, :2], states[:, :2]
    clear = (block_mass >= cost.min_mass) & ((block_xy - pusher_xy).norm(dim=-1) > min_gap)
    seen = rod_mass >= cost.min_mass
    if int(clear.sum()) < 50 or int(seen.sum()) < 50:
        raise DataError(f"{data_root}: view {view} shows the block clear of the pusher in {int(clear.sum())} "
                        f"frames and the rod in {int(seen.sum())}; calibrate_view needs 50 of each")
    out: dict[str, Any] = {}
    for name, pixels, xy, ok in (("block", blocks, block_xy, clear), ("pusher", rods, pusher_xy, seen)):
        out[name], error, _ = _fit_quadratic(pixels[ok], xy[ok])
        out[f"{name}_error_m"] = float(error)
    out["px_per_m"] = float(_affine_camera(block_xy[clear], blocks[clear])[:2].det().abs().sqrt())
    return out


def split_views(frames: torch.Tensor, views: int) -> list[torch.Tensor]:
    """Frames ``... x h x (n w)`` of ``n`` views side by side -> the views ``... x h x w``, left to right."""
    width = frames.shape[-1]
    if width % views:
        raise ShapeError(f"frames {width} pixels wide do not hold {views} views side by side")
    step = width // views
    return [frames[..., i * step:(i + 1) * step] for i in range(views)]


FINGER_FEATURES = 6  # columns of the finger and table maps: see _quadratic_features


def _bar_finger(rod: torch.Tensor) -> torch.Tensor:
    """Finger ``... x 2`` from rod centroids: the rod spans rows 0 .. finger, so its centroid is half way."""
    return torch.stack([2.0 * rod[..., 0] + 0.5, rod[..., 1]], dim=-1)


def _quadratic_features(rod: torch.Tensor) -> torch.Tensor:
    """Quadratic features ``... x 6`` of pixels ``... x 2`` (rod centroids, block positions) for the fitted maps."""
    r, c = rod[..., 0], rod[..., 1]
    return torch.stack([r, c, r * r, r * c, c * c, torch.ones_like(r)], dim=-1)


def calibrate_finger(cost: PushCost, data_root: str | os.PathLike, max_frames: int = 3000,
                     min_gap: float = 0.05) -> dict[str, Any]:
    """Fit :class:`PushCost`'s finger map on recorded rollouts; returns the map and its error.

    The rollouts record the pusher's and the block's table positions with every frame (as BAIR
    records the end effector's). Camera calibration from them: an affine map from table
    position to the block's detected pixel position (fitted on frames where the pusher is at
    least ``min_gap`` metres from the block, so that it hides none of it); the finger's target
    pixel is that map applied to the pusher's position, i.e. where the block would be seen if
    it stood at the finger, which is the frame the cost compares them in. A least-squares
    quadratic in the rod's centroid then predicts it (about 1 pixel of error where the bar
    heuristic has 2). Half the frames fit, the other half measure the error.

    Returns:
        ``{"finger_map": (2, 6) tensor, "error_px": mean error on held-out frames,
        "bar_error_px": the heuristic's error on them, "frames": frames used}``.
    """
    from envs.scene import StateLayout
    frames_f, states_t = _rollout_frames(data_root, max_frames)
    (blocks, block_mass), (rods, rod_mass) = cost.block_position(frames_f), cost.rod_centroid(frames_f)
    seen = (block_mass >= cost.min_mass) & (rod_mass >= cost.min_mass)
    if int(seen.sum()) < 50:
        raise DataError(f"{data_root}: only {int(seen.sum())} frames show both the block and the pusher; "
                        "calibrate_finger needs at least 50")
    blocks, rods, states_t = blocks[seen], rods[seen], states_t[seen]
    block_xy, pusher_xy = states_t[:, StateLayout(1).object(0)][:, :2], states_t[:, :2]
    clear = (block_xy - pusher_xy).norm(dim=-1) > min_gap
    camera = _affine_camera(block_xy[clear], blocks[clear])
    target = (torch.cat([pusher_xy, torch.ones(len(blocks), 1)], 1).double() @ camera).float()
    finger_map, err, held_out = _fit_quadratic(rods, target)
    bar_err = (_bar_finger(rods[held_out]) - target[held_out]).norm(dim=-1).mean()
    return {"finger_map": finger_map, "error_px": float(err), "bar_error_px": float(bar_err), "frames": len(rods)}


def _affine_camera(xy: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Least-squares affine map ``3 x 2`` (float64) from table positions ``N x 2`` to pixels ``N x 2``."""
    ones = torch.ones(len(xy), 1)
    return torch.linalg.lstsq(torch.cat([xy, ones], 1).double(), pixels.double()).solution


def _fit_quadratic(points: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares map ``2 x 6`` from :func:`_quadratic_features` of ``points`` to ``target``, fitted on
    every other row; returns it, its mean error on the other rows and their mask."""
    feats = _quadratic_features(points)
    held_out = torch.arange(len(feats)) % 2 == 1
    fitted = torch.linalg.lstsq(feats[~held_out].double(), target[~held_out].double()).solution.T.float()
    return fitted, (feats[held_out] @ fitted.T - target[held_out]).norm(dim=-1).mean(), held_out


def _rollout_frames(data_root: str | os.PathLike, max_frames: int, view: int = 0, views: int = 1
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to about ``max_frames`` frames ``N x C x h x w`` in [0, 1] (view ``view`` of ``views``) spread
    over a rollout folder, with their recorded states ``N x S``."""
    from mbvc.data.rollouts import RolloutDataset
    pairs = RolloutDataset(data_root, seq_len=1, stride=1, uint8=True)
    step = max(1, len(pairs) // max_frames)
    frames, states = [], []
    for i in range(0, len(pairs), step):
        item = pairs[i]
        if "states" not in item:
            raise DataError(f"{data_root}: the rollouts record no states; calibrating the push cost needs the "
                            "pusher's and the block's positions")
        frames.append(split_views(item["frames"][0], views)[view])
        states.append(torch.as_tensor(item["states"][0], dtype=torch.float32))
    return torch.stack(frames).float() / 255.0, torch.stack(states)


def _carried(block: torch.Tensor, finger: torch.Tensor, finger_next: torch.Tensor, radius: float) -> torch.Tensor:
    """A hidden block ``N x 2`` after the finger moves ``finger -> finger_next``: pushed by the
    finger's advance towards it when within ``radius`` pixels, else where it was."""
    rel = block - finger
    gap = rel.norm(dim=-1, keepdim=True)
    towards = rel / gap.clamp_min(1e-3)
    advance = ((finger_next - finger) * towards).sum(-1, keepdim=True).clamp_min(0.0)
    return torch.where(gap <= radius, block + advance * towards, block)


def _pixel(p: torch.Tensor) -> tuple[float, float]:
    return float(p[0]), float(p[1])


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(1e-6)


def _centroid(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroid ``... x 2`` (row, col) and total of weights ``... x h x w`` (the centre when empty)."""
    h, w = weight.shape[-2:]
    rows = torch.arange(h, device=weight.device, dtype=weight.dtype)
    cols = torch.arange(w, device=weight.device, dtype=weight.dtype)
    mass = weight.sum(dim=(-2, -1))
    safe = mass.clamp_min(1e-6)
    row = torch.where(mass > 1e-6, (weight.sum(-1) * rows).sum(-1) / safe, torch.full_like(mass, (h - 1) / 2))
    col = torch.where(mass > 1e-6, (weight.sum(-2) * cols).sum(-1) / safe, torch.full_like(mass, (w - 1) / 2))
    return torch.stack([row, col], dim=-1), mass


def background_image(data_root: str | os.PathLike, max_frames: int = 1500) -> torch.Tensor:
    """The empty scene: per-pixel median of frames spread over a rollout folder, ``C x h x w``.

    The camera never moves and the pusher and the block cover any one pixel in few frames, so
    the median is the tray without them.
    """
    from mbvc.data.rollouts import RolloutDataset
    episodes = RolloutDataset(data_root, seq_len=1, stride=None, uint8=True)
    if len(episodes) == 0:
        raise DataError(f"{data_root}: no episodes to estimate the background from")
    full = RolloutDataset(data_root, seq_len=2, stride=1, uint8=True)
    step = max(1, len(full) // max_frames)
    frames = torch.stack([torch.as_tensor(full[i]["frames"][0]) for i in range(0, len(full), step)])
    return frames.float().median(dim=0).values / 255.0


def clear_goal_image(env: Any) -> np.ndarray:
    """The goal image with the pusher moved where it hides the least of the block.

    ``goal_image()`` leaves the pusher at its current place, where its rod may cover the block
    at the goal; a goal image is a picture of the desired block position, so the pusher is put
    at whichever of a few spots away from the goal shows most of the block.
    """
    base = env.unwrapped
    goal = base.goal
    best, best_mass = None, -1.0
    for dx, dy in ((0.0, 0.13), (0.0, -0.13), (0.13, 0.0), (-0.13, 0.0)):
        spot = np.clip(goal + (dx, dy), -0.18, 0.18)
        image = base.goal_image(pusher_xy=(float(spot[0]), float(spot[1])))
        frame = torch.as_tensor(image).float().div(255).permute(2, 0, 1)
        mass = float(colour_mass(frame, BLOCK_COLOUR, 0.3).sum())
        if mass > best_mass:
            best, best_mass = image, mass
    return best  # type: ignore[return-value]


__all__ = ["BLOCK_COLOUR", "PUSHER_COLOUR", "MultiViewPushCost", "PushCost", "PushGoal", "background_image",
           "calibrate_finger", "calibrate_view", "clear_goal_image", "split_views"]
