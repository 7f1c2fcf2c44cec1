"""The image cost of pushing a block to a goal, from pixels and, where they lose the block, a model's readout.

:class:`PushCost` finds the block and the pusher in predicted frames by background
subtraction and, with ``block_entries``, reads a hidden block from the world model's state
readout; what it learns from recorded rollouts (the empty scene, the finger detector, the
table-to-pixel map) is in :mod:`agents.costs.push_calibration`. :func:`clear_goal_image` draws
a goal image that shows the whole block. The cost registry (:mod:`agents.costs.registry`)
builds it as ``--cost push``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mbvc.errors import ConfigError, ShapeError

from .base import Cost, FramesAndStates, check_frames, push_shaping, weighted_sum
from .image import colour_mass

#: Colours of the target block and of the pusher's rod as the default camera renders them
#: (lit faces average to these; measured on 32x32 frames).
BLOCK_COLOUR = (0.83, 0.17, 0.14)
PUSHER_COLOUR = (0.85, 0.85, 0.88)


class PushCost(Cost):
    """Designated-pixel cost of a push on predicted frames, with shaping for the approach.

    Objects are found by background subtraction: the camera is fixed, so a frame minus the
    empty scene (:func:`~agents.costs.push_calibration.background_image`, the per-pixel median
    of the collected frames) is zero except where the block and the pusher are. A pixel's change
    is projected on the colour direction from the background to the object (the block: redder,
    less green and blue; the pusher's rod: brighter and bluer), which keeps blurry, faded
    predictions detectable where a fixed colour match loses them. The block's position is the
    centroid of its weight; the pusher's rod rises from the finger to the top edge of the image,
    so its centroid column is the finger's and twice its centroid row is the finger's row.

    The cost per step is the block's distance to its position in the goal image plus
    ``pusher_weight`` times the finger's distance to a point ``behind`` pixels beyond the
    block on the goal-to-block line, where a push towards the goal starts, plus a keep-out
    term: ``keep_out_weight`` times how far the finger is inside ``keep_out`` pixels of the
    block, scaled from 0 behind the block to 1 on its goal side. The block term alone is flat
    until the pusher touches the block; the shaping gives the planner a slope everywhere, and
    the keep-out term makes it go round the block instead of through it (a small learnt model
    predicts contacts poorly, and a wrong-side touch pushes the block away from the goal).
    Distances are in pixels.

    With ``block_entries`` the cost also reads the world model's state readout
    (:class:`agents.costs.FramesAndStates`, a model trained with ``model.state_targets``): where
    the pusher's rod hides the block, a predicted frame shows little or none of it, and the
    block's position is blended from the frame's towards the readout's (mapped to pixels by the
    calibration's ``camera``) in proportion to the block weight missing from the frame
    (``block_mass`` is a whole block's). A block the frames lose is then where the model
    believes it is, not the image diagonal away.

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
        finger_map: the fitted finger detector
            (:func:`~agents.costs.push_calibration.calibrate_finger`); ``None``: the rod-as-a-bar
            heuristic.
        block_entries: the two entries of the model's predicted state that hold the block's
            table x, y (in the order of ``model.state_targets``); empty: frames only.
        camera: the affine map ``3 x 2`` from table x, y (with a 1) to pixels (row, col)
            (:func:`~agents.costs.push_calibration.fit_camera`); needed with ``block_entries``.
        block_mass: a whole, unhidden block's summed weight (``fit_camera``); needed with
            ``block_entries``.
    """

    def __init__(self, background: torch.Tensor, block_colour: Sequence[float] = BLOCK_COLOUR,
                 pusher_colour: Sequence[float] = PUSHER_COLOUR, block_threshold: float = 0.1,
                 pusher_threshold: float = 0.1, pusher_weight: float = 0.5, behind: float = 3.0,
                 keep_out: float = 6.0, keep_out_weight: float = 2.0, track_sigma: float = 3.0,
                 final_weight: float = 1.0, min_mass: float = 0.5, finger_map: torch.Tensor | None = None,
                 block_entries: Sequence[int] = (), camera: torch.Tensor | None = None,
                 block_mass: float | None = None) -> None:
        background = torch.as_tensor(background, dtype=torch.float32)
        if background.dim() != 3 or background.shape[0] != len(block_colour):
            raise ShapeError(f"PushCost background must be (C, h, w) with C = {len(block_colour)}, "
                             f"got {tuple(background.shape)}")
        if pusher_weight < 0 or min_mass < 0:
            raise ConfigError(f"PushCost needs pusher_weight >= 0 and min_mass >= 0, got {pusher_weight=}, {min_mass=}")
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
        if finger_map is not None:
            finger_map = torch.as_tensor(finger_map, dtype=torch.float32)
            if finger_map.shape != (2, FINGER_FEATURES):
                raise ShapeError(f"PushCost finger_map must be (2, {FINGER_FEATURES}) "
                                 f"(see calibrate_finger), got {tuple(finger_map.shape)}")
        self.finger_map = finger_map
        self.block_entries = [int(i) for i in block_entries]
        if self.block_entries:
            if len(self.block_entries) != 2:
                raise ConfigError(f"PushCost block_entries must be two state entries (the block's x, y), "
                                  f"got {self.block_entries}")
            if camera is None or block_mass is None or not block_mass > 0:
                raise ConfigError("PushCost with block_entries needs the calibration's camera and block_mass "
                                  f"(fit_camera), got camera={'set' if camera is not None else None}, {block_mass=}")
            camera = torch.as_tensor(camera, dtype=torch.float32)
            if camera.shape != (3, 2):
                raise ShapeError(f"PushCost camera must be (3, 2) (see fit_camera), got {tuple(camera.shape)}")
        self.camera, self.block_mass = camera, block_mass

    @property
    def reads(self) -> str:  # type: ignore[override]
        """``"frames+states"`` with ``block_entries``, else ``"frames"``."""
        return "frames+states" if self.block_entries else "frames"

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

    def track_block(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Block positions ``N x H x 2`` and weights ``N x H`` along predicted frames ``N x H x C x h x w``.

        From the second step on, only pixels near the previous step's position count (a
        Gaussian window of ``track_sigma`` pixels): the block moves at most a pixel or two per
        step, while a blurry model leaves faint reddish smears elsewhere (along the rod, where
        the block faded) whose weight would otherwise drag the centroid, and which a planner
        would learn to exploit.
        """
        weight = self._weights(frames, self.block_dir, self.block_threshold)  # N x H x h x w
        pos, mass = _centroid(weight[:, 0])
        positions, masses = [pos], [mass]
        h, w = weight.shape[-2:]
        rows = torch.arange(h, device=weight.device, dtype=weight.dtype)[:, None]
        cols = torch.arange(w, device=weight.device, dtype=weight.dtype)[None, :]
        for t in range(1, weight.shape[1]):  # H is a planning horizon (~10), each step batched over N
            d2 = (rows - pos[:, 0, None, None]) ** 2 + (cols - pos[:, 1, None, None]) ** 2
            new_pos, mass = _centroid(weight[:, t] * torch.exp(-d2 / (2 * self.track_sigma**2)))
            pos = torch.where((mass > 1e-6)[:, None], new_pos, pos)  # an empty window keeps the last position
            positions.append(pos)
            masses.append(mass)
        return torch.stack(positions, dim=1), torch.stack(masses, dim=1)

    def rod_centroid(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Centroid ``... x 2`` (row, col) and weight ``...`` of the pusher's rod."""
        return _centroid(self._weights(frames, self.pusher_dir, self.pusher_threshold))

    def pusher_position(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Finger position ``... x 2`` (row, col), in the block's pixel frame, and rod weight ``...``.

        With a ``finger_map`` (:func:`~agents.costs.push_calibration.calibrate_finger`) it is a
        quadratic function of the rod's centroid fitted on recorded frames; without, the rod is
        taken as a vertical bar from the top edge to the finger (twice its centroid row), which is
        off by 1-2 pixels where the perspective tilts the rod. Both use the centroid only, so a
        blurry prediction of the rod gives the same finger position as a sharp one.
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

    def __call__(self, frames: torch.Tensor | FramesAndStates, goal: Any) -> torch.Tensor:
        states = None
        if isinstance(frames, FramesAndStates):
            frames, states = frames
        check_frames(frames)
        block, block_mass = self.track_block(frames)  # N x H x 2
        target = self.goal_position(goal, frames)
        diagonal = float(np.hypot(*frames.shape[-2:]))
        if self.block_entries:
            if states is None or states.dim() != 3 or states.shape[:2] != frames.shape[:2] \
                    or states.shape[-1] <= max(self.block_entries):
                got = "frames only" if states is None else f"states of shape {tuple(states.shape)}"
                raise ShapeError(f"PushCost with block_entries={self.block_entries} needs FramesAndStates with states "
                                 f"N x H x S (S > {max(self.block_entries)}) beside frames {tuple(frames.shape)}, "
                                 f"got {got}")
            block = self._blend_readout(block, block_mass, states)
            cost = (block - target).norm(dim=-1)
        else:
            dist = (block - target).norm(dim=-1)
            cost = torch.where(block_mass < self.min_mass, torch.full_like(dist, diagonal), dist)
        if self.pusher_weight or self.keep_out_weight:
            pusher, pusher_mass = self.pusher_position(frames)
            lost = pusher_mass < self.min_mass
            approach, intrusion = push_shaping(block, pusher, target, self.behind, self.keep_out)
            approach = torch.where(lost, torch.full_like(approach, diagonal), approach)
            intrusion = torch.where(lost, torch.zeros_like(intrusion), intrusion)
            cost = cost + self.pusher_weight * approach + self.keep_out_weight * intrusion
        return weighted_sum(cost, None, self.final_weight)

    def table_to_pixels(self, xy: torch.Tensor) -> torch.Tensor:
        """Table positions ``... x 2`` (metres) as pixels ``... x 2`` (row, col), by the calibrated camera."""
        if self.camera is None:
            raise ConfigError("PushCost.table_to_pixels needs the calibration's camera (fit_camera)")
        return torch.cat([xy, torch.ones_like(xy[..., :1])], -1) @ self.camera.to(xy)

    def _blend_readout(self, block: torch.Tensor, mass: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """The frames' block positions pulled towards the readout's where the frames show less than a whole block."""
        assert self.block_mass is not None
        believed = self.table_to_pixels(states[..., self.block_entries].to(block))
        seen = (mass / self.block_mass).clamp(0.0, 1.0)[..., None]
        return seen * block + (1 - seen) * believed


FINGER_FEATURES = 6  # columns of the finger and table maps: see _quadratic_features


def _bar_finger(rod: torch.Tensor) -> torch.Tensor:
    """Finger ``... x 2`` from rod centroids: the rod spans rows 0 .. finger, so its centroid is half way."""
    return torch.stack([2.0 * rod[..., 0] + 0.5, rod[..., 1]], dim=-1)


def _quadratic_features(rod: torch.Tensor) -> torch.Tensor:
    """Quadratic features ``... x 6`` of pixels ``... x 2`` (rod centroids, block positions) for the fitted maps."""
    r, c = rod[..., 0], rod[..., 1]
    return torch.stack([r, c, r * r, r * c, c * c, torch.ones_like(r)], dim=-1)


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


__all__ = ["BLOCK_COLOUR", "PUSHER_COLOUR", "PushCost", "clear_goal_image"]
