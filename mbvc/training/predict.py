"""Prediction on a user's data: read a context (video, frame folder, array), write the predictions.

Frames are read into ``(T, C, H, W)`` float32 in ``[0, 1]`` (uint8 data divided by 255, float
data taken as it is), adapted to the model's channels (grey -> RGB by repetition; RGB -> grey by
luma only when asked, ``--grey``, or when the RGB frames hold grey content) and size
(area/bilinear resize, with a warning). Arrays are read through :mod:`mbvc.data.arrays`, which
checks the sizes a file declares before anything is allocated.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mbvc.data.arrays import NpzFile, check_in_memory_size, load_npy
from mbvc.data.checks import check_finite, check_frames
from mbvc.errors import ConfigError, DataError, ShapeError
from mbvc.models import ModelConfig

log = logging.getLogger(__name__)

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_EXT = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".m4v")
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _array_frames(array: np.ndarray, where: str) -> torch.Tensor:
    """``(T, H, W)``, ``(T, H, W, C)`` or ``(T, C, H, W)`` with C in (1, 3) -> ``(T, C, H, W)`` float."""
    if array.ndim == 5 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[-1] in (1, 3) and array.shape[1] not in (1, 3):
        array = array.transpose(0, 3, 1, 2)
    elif not (array.ndim == 4 and array.shape[1] in (1, 3)):
        raise ShapeError(f"{where}: frames must be (T, H, W), (T, H, W, C) or (T, C, H, W) with C in (1, 3), "
                         f"got shape {array.shape}")
    if array.dtype == object or not (array.dtype == np.uint8 or np.issubdtype(array.dtype, np.floating)):
        raise DataError(f"{where}: frames must be uint8 or float in [0, 1], got dtype {array.dtype}")
    frames = torch.from_numpy(np.ascontiguousarray(array))
    if frames.dtype == torch.uint8:
        return frames.float() / 255.0
    check_frames(frames, where)
    return frames.float()


def _load_array(path: Path) -> np.ndarray:
    """A ``.npy`` array read into memory, its header checked first (size, truncation, dtype)."""
    return load_npy(path)


def _open_npz(path: Path) -> NpzFile:
    z = NpzFile(path)
    if not z.files:
        z.close()
        raise DataError(f"{path}: the .npz archive holds no array")
    return z


def _member(z: NpzFile, key: str, path: Path) -> np.ndarray:
    return z.get(key)


def _read_images(folder: Path, files: list[Path]) -> np.ndarray:
    """Decode a folder's frame images into ``(T, H, W[, C])`` uint8, one size and mode for all.

    Raises:
        DataError: a file that is not a readable image, or frames whose size or channels differ
            from the first frame's (naming both files).
    """
    from PIL import Image, UnidentifiedImageError

    first: Path | None = None
    size = mode = None
    for p in files:  # headers first: cheap, and bounds the memory before anything is decoded
        try:
            with Image.open(p) as im:
                im_size, im_mode = im.size, ("L" if im.mode in ("L", "I", "1") else "RGB")
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            raise DataError(f"{p}: not a readable image ({type(e).__name__}); remove it from {folder} "
                            "or replace it") from None
        if first is None:
            first, size, mode = p, im_size, im_mode
        elif im_size != size:
            raise DataError(f"{p}: frame size {im_size[0]}x{im_size[1]} differs from {size[0]}x{size[1]} "
                            f"of {first.name}; all frames of a context must have one size")
        elif im_mode != mode:
            mode = "RGB"  # grey and colour frames mixed: read all as colour
    check_in_memory_size(len(files) * size[0] * size[1] * (1 if mode == "L" else 3) * 5, str(folder),
                         f"context of {len(files)} frames")
    images = []
    for p in files:
        try:
            with Image.open(p) as im:
                images.append(np.asarray(im.convert(mode), dtype=np.uint8))
        except (OSError, ValueError, SyntaxError) as e:  # a truncated file fails only when decoded
            raise DataError(f"{p}: not a readable image, truncated or corrupt ({e})") from None
    return np.stack(images)


def _describe_video_error(e: BaseException) -> str:
    """The first line of an imageio/ffmpeg error, at most 160 characters (ffmpeg dumps its banner)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = lines[0] if lines else type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def read_frames(path: str | os.PathLike) -> torch.Tensor:
    """Read a video file, a folder of frame images, or a ``.npy`` / ``.npz`` array.

    Returns:
        ``(T, C, H, W)`` float32 in [0, 1].
    """
    path = Path(path)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXT), key=lambda p: _natural(p.name))
        if not files:
            raise DataError(f"{path} holds no frame images ({'/'.join(IMAGE_EXT)})")
        return _array_frames(_read_images(path, files), str(path))
    if not path.is_file():
        raise DataError(f"context {path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _array_frames(_load_array(path), str(path))
    if suffix == ".npz":
        with _open_npz(path) as z:
            key = "frames" if "frames" in z.files else z.files[0]
            return _array_frames(_member(z, key, path), f"{path}[{key}]")
    if suffix in VIDEO_EXT:
        import imageio.v3 as iio

        try:
            video = iio.imread(path, index=None)
        except MemoryError:
            raise DataError(f"{path}: the decoded video does not fit in memory; cut it to the frames "
                            "you need (the context uses only its last K frames)") from None
        except Exception as e:  # noqa: BLE001 - imageio's plugins raise many types
            raise DataError(f"{path}: not a readable video ({_describe_video_error(e)}){_video_hint(suffix)}") from None
        if video.ndim == 4 and video.shape[-1] == 4:  # RGBA GIF frames
            video = video[..., :3]
        return _array_frames(video, str(path))
    raise DataError(f"context {path}: unknown format {suffix!r}; use a video ({', '.join(VIDEO_EXT)}), "
                    "a folder of frames, or .npy/.npz")


def _video_hint(suffix: str) -> str:
    """An install hint, only when the backend for ``suffix`` is really missing."""
    if suffix == ".gif":
        return ""
    import importlib.util

    if importlib.util.find_spec("imageio_ffmpeg") is None and importlib.util.find_spec("av") is None:
        return f"; reading {suffix} needs imageio-ffmpeg or PyAV (pip install imageio-ffmpeg)"
    return ""


def adapt_frames(frames: torch.Tensor, cfg: ModelConfig, grey: bool = False,
                 where: str = "context frames") -> torch.Tensor:
    """Match ``(T, C, H, W)`` frames to the model's channels and size.

    Grey frames given to a colour model are repeated to three channels. Colour frames given to a
    one-channel model are turned grey (luma) only with ``grey=True``, or when they hold grey
    content stored as RGB (all channels equal); otherwise they are refused.

    Raises:
        ShapeError: colour frames for a one-channel model without ``grey``, or channel counts
            that cannot be matched.
    """
    ch = frames.shape[1]
    if ch != cfg.img_channel:
        if ch == 3 and cfg.img_channel == 1:
            spread = float((frames.amax(1) - frames.amin(1)).max()) if frames.numel() else 0.0
            if spread > 1.0 / 255 and not grey:
                raise ShapeError(f"{where}: colour frames (3 channels) for the one-channel model {cfg.name}; "
                                 "pass --grey to turn them grey (luma), or give grey frames")
            if spread > 1.0 / 255:
                log.info("%s: colour frames turned grey (luma) for the one-channel model", where)
            frames = (frames * _LUMA[None, :, None, None]).sum(1, keepdim=True).clamp(0, 1)
        elif ch == 1 and cfg.img_channel == 3:
            frames = frames.expand(-1, 3, -1, -1)
        else:
            raise ShapeError(f"{where}: frames have {ch} channels, the model expects {cfg.img_channel}")
    size = (cfg.img_height, cfg.img_width)
    if tuple(frames.shape[-2:]) != size:
        log.warning("resizing context frames from %dx%d to the model's %dx%d",
                    frames.shape[-2], frames.shape[-1], size[0], size[1])
        mode = "area" if frames.shape[-2] >= size[0] else "bilinear"
        frames = F.interpolate(frames, size=size, mode=mode).clamp(0, 1)
    return frames.contiguous()


def read_context(path: str | os.PathLike, cfg: ModelConfig, length: int, grey: bool = False) -> torch.Tensor:
    """The last ``length`` frames of ``path``, adapted to the model: ``(1, length, C, H, W)``.

    Args:
        path: video, frame folder, ``.npy`` or ``.npz``.
        cfg: the model's config (channels and size).
        length: context frames K (>= 1).
        grey: allow colour frames to be turned grey for a one-channel model.
    """
    if length < 1:
        raise ConfigError(f"context length must be >= 1, got {length}")
    frames = read_frames(path)
    if frames.shape[0] < length:
        raise DataError(f"{path} has {frames.shape[0]} frames; the context needs {length}")
    return adapt_frames(frames[-length:], cfg, grey=grey, where=str(path))[None]


def read_actions(path: str | os.PathLike, cfg: ModelConfig, steps: int) -> torch.Tensor:
    """Actions ``(steps, A)`` from ``.npy``, ``.npz`` (``actions``) or text (one row per step).

    Returns:
        ``(1, steps, A)`` float32: the actions taken at the context frames, then at the
        predicted frames (BAIR's convention, see docs/architecture.md).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"actions {path}: no such file")
    if path.suffix == ".npy":
        actions = _load_array(path)
    elif path.suffix == ".npz":
        with _open_npz(path) as z:
            actions = _member(z, "actions" if "actions" in z.files else z.files[0], path)
    else:
        try:
            actions = np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)
        except ValueError as e:
            raise DataError(f"{path}: actions must be rows of numbers, one per step, no header row ({e})") from None
    try:
        actions = np.asarray(actions, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: actions must be numbers, got {e}") from None
    if actions.ndim != 2 or actions.shape[1] != cfg.num_action_ch:
        raise ShapeError(f"{path}: actions must be (steps, {cfg.num_action_ch}), got {actions.shape}")
    if actions.shape[0] < steps:
        raise ShapeError(f"{path}: {actions.shape[0]} actions; context and prediction need {steps} "
                         "(K - 1 at the context frames, then one per predicted frame)")
    check_finite(actions[:steps], str(path), "actions")
    return torch.from_numpy(actions[:steps])[None]


def write_predictions(out_dir: str | os.PathLike, context: torch.Tensor, predictions: torch.Tensor,
                      fps: float = 4.0) -> dict[str, Path]:
    """Write ``predictions.npy``, one PNG per predicted frame, a strip PNG and a GIF.

    Args:
        out_dir: output folder (created; only the files named here are written).
        context: ``(K, C, H, W)`` the frames given to the model.
        predictions: ``(N, C, H, W)`` predicted frames (clipped to [0, 1] here).

    Returns:
        Name -> path of the files written.
    """
    from mbvc.evaluation.strips import to_rgb_uint8, write_gif, write_png
    from mbvc.io import atomic_write, make_output_folder

    out = make_output_folder(out_dir)
    pred = predictions.detach().float().cpu().clamp(0, 1)
    with atomic_write(out / "predictions.npy", "wb") as f:
        np.save(f, pred.numpy())
    paths = {"npy": out / "predictions.npy"}
    images = to_rgb_uint8(pred)
    for i, img in enumerate(images):
        write_png(out / f"pred_{i:03d}.png", img)
    ctx = to_rgb_uint8(context.detach().float().cpu().clamp(0, 1))
    gap = np.full((ctx.shape[1], 2, 3), 255, np.uint8)
    row = [x for img in (*ctx, *images) for x in (img, gap)][:-1]
    paths["strip"] = write_png(out / "strip.png", np.concatenate(row, axis=1))
    paths["gif"] = write_gif(out / "predictions.gif", [*ctx, *images], fps)
    return paths
