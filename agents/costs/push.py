"""The image cost of pushing a block to a goal, from pixels only, and what it learns from data.

:class:`PushCost` finds the block and the pusher in predicted frames by background
subtraction (:func:`background_image`); :func:`calibrate_finger` fits its finger detector on
recorded rollouts; :class:`PushCalibration` holds both, computed once and saved next to the
rollouts (:func:`load_calibration`); :func:`clear_goal_image` draws a goal image that shows the
whole block. The cost registry (:mod:`agents.costs.registry`) builds it as ``--cost push``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mbvc.errors import ConfigError, DataError, OutputError, ShapeError

from .base import Cost, check_frames, push_shaping, weighted_sum
from .image import colour_mass

log = logging.getLogger(__name__)

#: Colours of the target block and of the pusher's rod as the default camera renders them
#: (lit faces average to these; measured on 32x32 frames).
BLOCK_COLOUR = (0.83, 0.17, 0.14)
PUSHER_COLOUR = (0.85, 0.85, 0.88)


class PushCost(Cost):
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
        finger_map: the fitted finger detector (:func:`calibrate_finger`); ``None``: the
            rod-as-a-bar heuristic.
    """

    def __init__(self, background: torch.Tensor, block_colour: Sequence[float] = BLOCK_COLOUR,
                 pusher_colour: Sequence[float] = PUSHER_COLOUR, block_threshold: float = 0.1,
                 pusher_threshold: float = 0.1, pusher_weight: float = 0.5, behind: float = 3.0,
                 keep_out: float = 6.0, keep_out_weight: float = 2.0, track_sigma: float = 3.0,
                 final_weight: float = 1.0, min_mass: float = 0.5, finger_map: torch.Tensor | None = None) -> None:
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
        block, block_mass = self.track_block(frames)  # N x H x 2
        target = self.goal_position(goal, frames)
        dist = (block - target).norm(dim=-1)
        diagonal = float(np.hypot(*frames.shape[-2:]))
        cost = torch.where(block_mass < self.min_mass, torch.full_like(dist, diagonal), dist)
        if self.pusher_weight or self.keep_out_weight:
            pusher, pusher_mass = self.pusher_position(frames)
            lost = pusher_mass < self.min_mass
            approach, intrusion = push_shaping(block, pusher, target, self.behind, self.keep_out)
            approach = torch.where(lost, torch.full_like(approach, diagonal), approach)
            intrusion = torch.where(lost, torch.zeros_like(intrusion), intrusion)
            cost = cost + self.pusher_weight * approach + self.keep_out_weight * intrusion
        return weighted_sum(cost, None, self.final_weight)


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


def _rollout_frames(data_root: str | os.PathLike, max_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to about ``max_frames`` frames ``N x C x h x w`` in [0, 1] spread over a rollout folder, with
    their recorded states ``N x S``."""
    from mbvc.data.rollouts import RolloutDataset
    pairs = RolloutDataset(data_root, seq_len=1, stride=1, uint8=True)
    step = max(1, len(pairs) // max_frames)
    frames, states = [], []
    for i in range(0, len(pairs), step):
        item = pairs[i]
        if "states" not in item:
            raise DataError(f"{data_root}: the rollouts record no states; calibrating the push cost needs the "
                            "pusher's and the block's positions")
        frames.append(torch.as_tensor(item["frames"][0]))
        states.append(torch.as_tensor(item["states"][0], dtype=torch.float32))
    return torch.stack(frames).float() / 255.0, torch.stack(states)


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


#: File of a rollout folder holding its :class:`PushCalibration` (written once, by the first plan).
CALIBRATION_FILE = "push_calibration.safetensors"


@dataclasses.dataclass(frozen=True)
class PushCalibration:
    """What :class:`PushCost` learns from training rollouts: the empty scene and the finger detector.

    Attributes:
        background: the empty scene ``C x h x w`` in [0, 1] (:func:`background_image`).
        finger_map: the finger detector ``2 x 6`` (:func:`calibrate_finger`); ``None``: the
            rod-as-a-bar heuristic (not asked for, or too few frames to fit it).
        episodes: episodes of the rollout folder it was computed from (a folder that has grown
            since is calibrated again).
        info: the fit's figures (``error_px``, ``bar_error_px``, ``frames``), for the log.
    """

    background: torch.Tensor
    finger_map: torch.Tensor | None = None
    episodes: int = 0
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def fit(cls, data_root: str | os.PathLike, finger: bool = True, episodes: int | None = None) -> PushCalibration:
        """Compute the calibration from the rollouts in ``data_root`` (``finger``: fit the detector too;
        ``episodes``: the folder's episode count, when the caller has it)."""
        background = background_image(data_root)
        if episodes is None:
            from mbvc.data.rollouts import RolloutDataset

            episodes = len(RolloutDataset(data_root, seq_len=1, stride=None, uint8=True))
        if not finger:
            return cls(background, None, episodes)
        try:
            fit = calibrate_finger(PushCost(background), data_root)
        except DataError as exc:  # e.g. the tiny configuration's few frames
            log.warning("push cost: finger calibration impossible (%s); using the rod-as-a-bar heuristic", exc)
            return cls(background, None, episodes)
        info = {k: fit[k] for k in ("error_px", "bar_error_px", "frames")}
        return cls(background, fit["finger_map"], episodes, info)

    def save(self, path: str | os.PathLike) -> None:
        """Write the calibration as a safetensors file (atomically)."""
        from safetensors.torch import save_file

        from mbvc.io import atomic_path

        tensors = {"background": self.background.contiguous()}
        if self.finger_map is not None:
            tensors["finger_map"] = self.finger_map.contiguous()
        meta = {"episodes": str(self.episodes), "info": json.dumps(self.info)}
        with atomic_path(Path(path)) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PushCalibration:
        """Read a calibration written by :meth:`save`.

        Raises:
            DataError: a missing or unreadable file.
        """
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            background, episodes, info = tensors["background"], int(meta.get("episodes", 0)), json.loads(meta.get("info", "{}"))
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise DataError(f"{path}: not a push-cost calibration ({exc})") from None
        if background.dim() != 3:
            raise DataError(f"{path}: the background must be (C, h, w), got {tuple(background.shape)}")
        return cls(background, tensors.get("finger_map"), episodes, info)


def load_calibration(data_root: str | os.PathLike, finger: bool = True) -> PushCalibration:
    """The push cost's calibration for the rollouts in ``data_root``: read from its :data:`CALIBRATION_FILE`,
    else computed (:meth:`PushCalibration.fit`) and saved there (where the folder is writable).

    A saved calibration is used when it was computed from as many episodes as the folder holds now
    and with the finger detector when ``finger`` asks for it; otherwise it is computed again.
    """
    from mbvc.data.rollouts import RolloutDataset

    path = Path(data_root) / CALIBRATION_FILE
    episodes = len(RolloutDataset(data_root, seq_len=1, stride=None, uint8=True))
    if path.is_file():
        try:
            saved = PushCalibration.load(path)
        except DataError as exc:
            log.warning("push cost: %s; calibrating again", exc)
        else:
            if saved.episodes == episodes and (saved.finger_map is not None or not finger or saved.info.get("failed")):
                return saved if finger else dataclasses.replace(saved, finger_map=None)
    calibration = PushCalibration.fit(data_root, finger, episodes)
    if finger and calibration.finger_map is None:
        calibration = dataclasses.replace(calibration, info={"failed": True})  # too few frames: no fit next time either
    if calibration.info.get("frames"):
        log.info("push cost: finger detector calibrated on %d frames, %.2f px error (rod-as-a-bar: %.2f px)",
                 calibration.info["frames"], calibration.info["error_px"], calibration.info["bar_error_px"])
    try:
        calibration.save(path)
    except (OSError, OutputError) as exc:  # a read-only data folder: use it without saving
        log.warning("push cost: %s; using it unsaved", exc)
    return calibration


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


__all__ = ["BLOCK_COLOUR", "CALIBRATION_FILE", "PUSHER_COLOUR", "PushCalibration", "PushCost", "background_image",
           "calibrate_finger", "clear_goal_image", "load_calibration"]
