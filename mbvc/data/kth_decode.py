"""Decoding and resizing of KTH videos, in worker processes when there are many.

Kept apart from :mod:`mbvc.data.kth` so that a spawned worker imports only NumPy and imageio,
not torch (seconds per worker on a busy machine).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mbvc.errors import DataError, DependencyNotInstalled

logger = logging.getLogger(__name__)

_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp")
#: Processes are spawned only with at least this many videos for each (a spawn costs ~0.5 s).
MIN_VIDEOS_PER_WORKER = 4
#: Frames resized per step: small enough for the float32 intermediates to stay in the CPU cache.
CHUNK = 16


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source index pairs and weights of each output pixel: ``out = (1 - f) * x[lo] + f * x[hi]``."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    lo = np.floor(src).astype(np.int64)
    frac = src - lo
    frac[lo < 0], lo[lo < 0] = 0.0, 0
    over = lo >= n_in - 1
    frac[over], lo[over] = 0.0, n_in - 1
    return lo, np.minimum(lo + 1, n_in - 1), frac


def _resize_chunk(x: np.ndarray, rows: tuple, cols: tuple) -> np.ndarray:
    lo, hi, f = rows
    f = f.astype(np.float32)[:, None]
    x = x[:, lo, :].astype(np.float32) * (1 - f) + x[:, hi, :].astype(np.float32) * f
    lo, hi, f = cols
    f = f.astype(np.float32)
    return x[..., lo] * (1 - f) + x[..., hi] * f


def _resized_chunks(frames: np.ndarray, height: int, width: int) -> Iterator[tuple[int, np.ndarray]]:
    stack = np.asarray(frames)
    rows, cols = _taps(stack.shape[-2], height), _taps(stack.shape[-1], width)
    for start in range(0, len(stack), CHUNK):
        yield start, _resize_chunk(stack[start:start + CHUNK], rows, cols)


def resize_bilinear(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize on pixel centres without antialiasing (``cv2.INTER_LINEAR``'s rule).

    Two taps per axis, gathered and weighted in float32 for :data:`CHUNK` frames at a time (the
    intermediates stay in the CPU cache): no matrix product, so no multi-threaded BLAS (which
    crawls on a busy machine), and no per-frame Python loop. For integer frames and sizes whose
    ratio is a short binary fraction (KTH's 160x120 to 128 or 64) every step is exact.

    Args:
        frames: ``(H, W)`` or a stack ``(T, H, W)``.

    Returns:
        float32 ``(height, width)`` or ``(T, height, width)``.
    """
    stack = np.asarray(frames)
    single = stack.ndim == 2
    stack = stack[None] if single else stack
    out = np.empty((len(stack), height, width), np.float32)
    for start, chunk in _resized_chunks(stack, height, width):
        out[start:start + len(chunk)] = chunk
    return out[0] if single else out


def resize_to_uint8(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """:func:`resize_bilinear` of a ``(T, H, W)`` stack, rounded to uint8 (what the cache stores)."""
    out = np.empty((len(frames), height, width), np.uint8)
    for start, chunk in _resized_chunks(frames, height, width):
        np.rint(chunk, out=chunk)
        out[start:start + len(chunk)] = np.clip(chunk, 0, 255, out=chunk)
    return out


def _grey(frame: np.ndarray) -> np.ndarray:
    # The reference keeps channel 0; KTH frames are grey, so all channels are equal anyway.
    return frame[..., 0] if frame.ndim == 3 else frame


def read_video(name: str, path: Path) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_number, grey uint8 (H, W))`` of one video (1-based numbers)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_EXT and p.name.startswith("image"))
        if not files:
            raise DataError(f"{path} holds no image_XXXX.png frames")
        from PIL import Image

        for p in files:
            digits = p.name[6:10]  # image_0001.png: the number sits at characters 6..9
            if not digits.isdigit():
                raise DataError(f"{p}: expected a name like image_0001.png (frame number at characters 6..9)")
            with Image.open(p) as im:
                yield int(digits), _grey(np.asarray(im))
        return
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401 - the plugin imageio needs for .avi
    except ImportError as exc:
        raise DependencyNotInstalled("decoding KTH .avi files needs imageio-ffmpeg: "
                                     "pip install imageio-ffmpeg") from exc
    try:
        reader = imageio.get_reader(path, format="FFMPEG")
    except Exception as exc:  # imageio raises several unrelated types for unreadable files
        raise DataError(f"cannot decode {path}: {exc}") from exc
    with reader:
        for k, frame in enumerate(reader, start=1):
            yield k, _grey(frame)


def _runs(numbered: list[tuple[int, np.ndarray]], name: str) -> list[tuple[int, list[np.ndarray]]]:
    """Split a video into runs of consecutive frame numbers: windows must not span a gap."""
    runs: list[tuple[int, list[np.ndarray]]] = []
    prev = None
    for number, frame in numbered:
        if prev is None or number != prev + 1:
            runs.append((number, []))
        runs[-1][1].append(frame)
        prev = number
    if len(runs) > 1:
        logger.warning("%s: frame numbers have %d gaps; windows will not span them", name, len(runs) - 1)
    return runs


def convert_video(vname: str, path: Path, image_size: int) -> tuple[str, list[tuple[int, np.ndarray]]]:
    """Decode and resize one video: ``(name, [(first frame number, uint8 (T, S, S)), ...])`` per run."""
    numbered = list(read_video(vname, path))
    shapes = {f.shape for _, f in numbered}
    if len(shapes) != 1:
        raise DataError(f"{path}: frames of mixed sizes {sorted(shapes)}; expected one size per video")
    return vname, [(first, resize_to_uint8(np.stack(frames), image_size, image_size))
                   for first, frames in _runs(numbered, vname)]


def ordered_map(fn: Any, items: list[tuple], workers: int) -> Iterator[Any]:
    """``fn(*item)`` for each item, in order; in ``workers`` spawned processes when > 1.

    Fewer processes are used when there are few items (see :data:`MIN_VIDEOS_PER_WORKER`).
    At most ``2 * workers`` results are in flight, so memory stays bounded however fast the
    workers are. Spawned, not forked: the parent may hold torch's thread pools.
    """
    workers = min(workers, len(items) // MIN_VIDEOS_PER_WORKER)
    if workers <= 1:
        yield from (fn(*item) for item in items)
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(min(workers, len(items)), mp_context=multiprocessing.get_context("spawn"))
    try:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, *item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # an error (or a consumer that stops): drop the queued videos instead of decoding them
        pool.shutdown(wait=True, cancel_futures=True)


def default_workers() -> int:
    """Conversion processes: half the usable CPUs (each decodes through its own ffmpeg process), 1 to 8.

    The output is the same for any number.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cpus // 2))
