"""What the push cost learns from recorded rollouts, computed once and saved next to them.

:func:`background_image` (the empty scene), :func:`calibrate_finger` (the finger detector) and
:func:`fit_camera` (the table-to-pixel map and a whole block's weight, with which the cost reads
a world model's state readout); :class:`PushCalibration` holds them, and
:func:`load_calibration` computes them on first use and saves them as :data:`CALIBRATION_FILE`
in the rollout folder.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from mbvc.errors import DataError, OutputError

from .push import PushCost, _bar_finger, _quadratic_features

log = logging.getLogger(__name__)


def calibrate_finger(cost: PushCost, frames: torch.Tensor, states: torch.Tensor,
                     min_gap: float = 0.05) -> dict[str, Any]:
    """Fit :class:`PushCost`'s finger map on recorded frames ``N x C x h x w`` and their states ``N x S``
    (:func:`rollout_frames` reads them from a rollout folder); returns the map and its error.

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
    (blocks, block_mass), (rods, rod_mass) = cost.block_position(frames), cost.rod_centroid(frames)
    seen = (block_mass >= cost.min_mass) & (rod_mass >= cost.min_mass)
    if int(seen.sum()) < 50:
        raise DataError(f"only {int(seen.sum())} of {len(frames)} frames show both the block and the pusher; "
                        "calibrate_finger needs at least 50")
    blocks, rods, states = blocks[seen], rods[seen], states[seen]
    block_xy, pusher_xy = states[:, StateLayout(1).object(0)][:, :2], states[:, :2]
    clear = (block_xy - pusher_xy).norm(dim=-1) > min_gap
    camera = _affine_camera(block_xy[clear], blocks[clear])
    target = (torch.cat([pusher_xy, torch.ones(len(blocks), 1)], 1).double() @ camera).float()
    finger_map, err, held_out = _fit_quadratic(rods, target)
    bar_err = (_bar_finger(rods[held_out]) - target[held_out]).norm(dim=-1).mean()
    return {"finger_map": finger_map, "error_px": float(err), "bar_error_px": float(bar_err), "frames": len(rods)}


def fit_camera(cost: PushCost, frames: torch.Tensor, states: torch.Tensor, min_gap: float = 0.05) -> dict[str, Any]:
    """Fit the map from table positions to pixels, and a whole block's weight, on recorded frames and
    states (as :func:`calibrate_finger`).

    On frames where the block is detected (weight at least ``cost.min_mass``) and the pusher is
    at least ``min_gap`` metres from it (so that its rod hides none of it), an affine map from
    the block's recorded table position to its detected pixel position is fitted by least
    squares; the median of the block's weight on those frames is a whole block's. With them
    :class:`PushCost` reads a world model's predicted block position where the frames lose it.

    Returns:
        ``{"camera": (3, 2) tensor, "block_mass": float, "error_px": mean fit error, "frames": frames used}``.

    Raises:
        DataError: fewer than 3 such frames.
    """
    from envs.scene import StateLayout
    blocks, mass = cost.block_position(frames)
    block_xy, pusher_xy = states[:, StateLayout(1).object(0)][:, :2], states[:, :2]
    clear = ((block_xy - pusher_xy).norm(dim=-1) > min_gap) & (mass >= cost.min_mass)
    if int(clear.sum()) < 3:
        raise DataError(f"only {int(clear.sum())} of {len(frames)} frames show the whole block; fit_camera needs "
                        "at least 3")
    camera = _affine_camera(block_xy[clear], blocks[clear])
    fitted = torch.cat([block_xy[clear], torch.ones(int(clear.sum()), 1)], 1).double() @ camera
    error = float((fitted.float() - blocks[clear]).norm(dim=-1).mean())
    return {"camera": camera.float(), "block_mass": float(mass[clear].median()), "error_px": error,
            "frames": int(clear.sum())}


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


def rollout_frames(data_root: str | os.PathLike, max_frames: int = 3000) -> tuple[torch.Tensor, torch.Tensor]:
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
        info: the fit's figures (``error_px``, ``bar_error_px``, ``frames``, ``camera_error_px``), for the log.
        camera: the table-to-pixel map ``3 x 2`` (:func:`fit_camera`); ``None``: not fitted (no
            recorded states, or too few frames showing the whole block).
        block_mass: a whole block's summed weight (:func:`fit_camera`), with ``camera``.
    """

    background: torch.Tensor
    finger_map: torch.Tensor | None = None
    episodes: int = 0
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    camera: torch.Tensor | None = None
    block_mass: float | None = None

    @classmethod
    def fit(cls, data_root: str | os.PathLike, finger: bool = True, episodes: int | None = None) -> PushCalibration:
        """Compute the calibration from the rollouts in ``data_root`` (``finger``: fit the detector too;
        ``episodes``: the folder's episode count, when the caller has it)."""
        background = background_image(data_root)
        if episodes is None:
            from mbvc.data.rollouts import RolloutDataset

            episodes = len(RolloutDataset(data_root, seq_len=1, stride=None, uint8=True))
        read = functools.cache(lambda: rollout_frames(data_root))  # one read for both fits
        camera, block_mass, finger_map, info = None, None, None, {}
        try:
            seen = fit_camera(PushCost(background), *read())
        except DataError as exc:  # rollouts without states; the tiny configuration's few frames
            log.info("push cost: no table-to-pixel map from %s (%s); the cost cannot read a model's state readout",
                     data_root, exc)
            info["camera_failed"] = True
        else:
            camera, block_mass, info["camera_error_px"] = seen["camera"], seen["block_mass"], seen["error_px"]
        if finger:
            try:
                fit = calibrate_finger(PushCost(background), *read())
            except DataError as exc:  # e.g. the tiny configuration's few frames
                log.warning("push cost: finger calibration on %s impossible (%s); using the rod-as-a-bar heuristic",
                            data_root, exc)
            else:
                finger_map = fit["finger_map"]
                info.update({k: fit[k] for k in ("error_px", "bar_error_px", "frames")})
        return cls(background, finger_map, episodes, info, camera, block_mass)

    def save(self, path: str | os.PathLike) -> None:
        """Write the calibration as a safetensors file (atomically)."""
        from safetensors.torch import save_file

        from mbvc.io import atomic_path

        tensors = {"background": self.background.contiguous()}
        if self.finger_map is not None:
            tensors["finger_map"] = self.finger_map.contiguous()
        if self.camera is not None:
            tensors["camera"] = self.camera.contiguous()
        meta = {"episodes": str(self.episodes), "info": json.dumps(self.info)}
        if self.block_mass is not None:
            meta["block_mass"] = repr(float(self.block_mass))
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
            block_mass = float(meta["block_mass"]) if "block_mass" in meta else None
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise DataError(f"{path}: not a push-cost calibration ({exc})") from None
        if background.dim() != 3:
            raise DataError(f"{path}: the background must be (C, h, w), got {tuple(background.shape)}")
        camera = tensors.get("camera")
        if camera is not None and (camera.shape != (3, 2) or block_mass is None):
            raise DataError(f"{path}: the camera must be (3, 2) with a block_mass, got {tuple(camera.shape)}, "
                            f"{block_mass=}")
        return cls(background, tensors.get("finger_map"), episodes, info, camera, block_mass)


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
            # A file from before the camera fit (or from another folder size) is computed again.
            fitted = saved.camera is not None or saved.info.get("camera_failed")
            if saved.episodes == episodes and fitted and (saved.finger_map is not None or not finger
                                                          or saved.info.get("failed")):
                return saved if finger else dataclasses.replace(saved, finger_map=None)
    calibration = PushCalibration.fit(data_root, finger, episodes)
    if finger and calibration.finger_map is None:  # too few frames: no fit next time either
        calibration = dataclasses.replace(calibration, info={**calibration.info, "failed": True})
    if calibration.info.get("frames"):
        log.info("push cost: finger detector calibrated on %d frames, %.2f px error (rod-as-a-bar: %.2f px)",
                 calibration.info["frames"], calibration.info["error_px"], calibration.info["bar_error_px"])
    try:
        calibration.save(path)
    except (OSError, OutputError) as exc:  # a read-only data folder: use it without saving
        log.warning("push cost: %s; using it unsaved", exc)
    return calibration


__all__ = ["CALIBRATION_FILE", "PushCalibration", "background_image", "calibrate_finger", "fit_camera",
           "load_calibration", "rollout_frames"]
