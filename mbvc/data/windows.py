"""Fixed-length windows over episodes, and the torch Dataset that serves them.

Every mbvc dataset is "a list of episodes, each cut into windows of ``seq_len`` steps";
only the source of the episodes differs. :func:`window_starts` holds the cutting rules and
:class:`StoreWindows` serves windows out of a memory-mapped :class:`~mbvc.data.store.SequenceStore`.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mbvc.data.checks import check_frames
from mbvc.data.store import SequenceStore
from mbvc.errors import DataError

logger = logging.getLogger(__name__)


def to_float(frames: torch.Tensor) -> torch.Tensor:
    """Convert uint8 frames to float32 in ``[0, 1]`` (on whatever device they are).

    Args:
        frames: uint8 tensor of any shape, e.g. ``(B, T, C, H, W)``.

    Returns:
        float32 tensor of the same shape; float input is returned unchanged.

    Example:
        >>> to_float(torch.tensor([0, 255], dtype=torch.uint8))
        tensor([0., 1.])
    """
    if frames.dtype == torch.uint8:
        return frames.to(torch.float32).div_(255.0)
    return frames


def frames_tensor(frames: np.ndarray, uint8: bool = False, name: str = "frames") -> torch.Tensor:
    """A sample's ``(T, C, H, W)`` frames as a tensor, always a fresh copy.

    uint8 data becomes float32 ``x / 255`` (unless ``uint8``); float data is kept as stored (or,
    with ``uint8``, rounded from ``x * 255``). The conversion runs in NumPy on purpose: tiny
    torch ops in a busy process pay for intra-op thread start-up, often 100x the work itself.

    Raises:
        DataError: float data that is not finite or not in ``[0, 1]`` (e.g. ``0..255`` floats,
            which would otherwise train on saturated or huge values); ``name`` says where from.
    """
    if frames.dtype == np.uint8:
        arr = np.array(frames, order="C") if uint8 else frames.astype(np.float32) / np.float32(255)
    else:
        check_frames(np.asarray(frames), name)
        if uint8:
            arr = np.clip(np.rint(np.asarray(frames, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
        else:
            arr = np.array(frames, dtype=np.float32, order="C")
    return torch.from_numpy(arr)


def hwc_to_chw(frames: np.ndarray) -> np.ndarray:
    """``(T, H, W[, C])`` -> ``(T, C, H, W)`` (a grey frame without channel axis gets C = 1)."""
    if frames.ndim == 3:
        return frames[:, None]
    return frames.transpose(0, 3, 1, 2)


def window_starts(length: int, seq_len: int, stride: int | None = 1, anchor: str = "start") -> list[int]:
    """First step of every window of ``seq_len`` steps inside an episode of ``length`` steps.

    Args:
        length: episode length.
        seq_len: window length.
        stride: steps between consecutive window starts; ``None`` gives one window at step 0.
        anchor: ``"start"`` lays windows from the first step forward; ``"end"`` lays them from
            the last step backward (the reference's KTH rule), so the video's end is always used.

    Returns:
        Sorted window starts; empty when ``length < seq_len``.

    Example:
        >>> window_starts(10, 4, stride=3)
        [0, 3, 6]
        >>> window_starts(10, 4, stride=4, anchor="end")
        [2, 6]
    """
    if length < seq_len:
        return []
    if stride is None:
        return [0]
    if anchor == "start":
        return list(range(0, length - seq_len + 1, stride))
    if anchor == "end":
        return sorted(range(length - seq_len, -1, -stride))
    raise DataError(f"anchor must be 'start' or 'end', got {anchor!r}")


def check_window_args(seq_len: int, stride: int | None) -> None:
    """Raise DataError unless ``seq_len >= 1`` and ``stride`` is None or ``>= 1``."""
    if not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise DataError(f"seq_len must be an int >= 1, got {seq_len!r}")
    if stride is not None and (not isinstance(stride, (int, np.integer)) or stride < 1):
        raise DataError(f"stride must be None or an int >= 1, got {stride!r}")


def build_index(lengths: Sequence[int], seq_len: int, strides: Sequence[int | None] | int | None,
                names: Sequence[str], anchor: str = "start", skip_short: bool = False,
                what: str = "dataset") -> np.ndarray:
    """Window index ``(N, 2)`` of (episode, start) rows over many episodes.

    Args:
        lengths: length of each episode.
        seq_len: window length.
        strides: one stride for all episodes or one per episode (see :func:`window_starts`).
        names: a name per episode, for error messages (file, video...).
        anchor: see :func:`window_starts`.
        skip_short: drop episodes shorter than ``seq_len`` (counted and logged) instead of raising.
        what: what the episodes come from, for messages.

    Raises:
        DataError: an episode is shorter than the window (unless ``skip_short``), or no windows.
    """
    if not isinstance(strides, Sequence):
        strides = [strides] * len(lengths)
    if len(lengths) and max(int(n) for n in lengths) < seq_len:
        raise DataError(f"{what}: {names[0]} has {lengths[0]} steps, shorter than the window of {seq_len} steps, "
                        f"and so is every episode (the longest of {len(lengths)} has {max(int(n) for n in lengths)}); "
                        "shorten the window (the data's sequence length, or context + horizon when evaluating: "
                        "e.g. a smaller `mbvc test --horizon` / eval.horizon) or use longer sequences")
    rows, short = [], []
    for ep, (length, stride) in enumerate(zip(lengths, strides)):
        starts = window_starts(int(length), seq_len, stride, anchor)
        if not starts:
            if not skip_short:
                raise DataError(f"{what}: {names[ep]} has {length} steps, shorter than the window of "
                                f"{seq_len} steps; to leave such episodes out set data.skip_short=true "
                                "(on the command line: --set data.skip_short=true; in Python: skip_short=True)")
            short.append(names[ep])
        rows.extend((ep, s) for s in starts)
    if short:
        logger.warning("%s: skipped %d of %d episodes shorter than %d steps (e.g. %s)",
                       what, len(short), len(lengths), seq_len, short[0])
    if not rows:
        raise DataError(f"{what}: no window of {seq_len} steps in {len(lengths)} episodes")
    return np.asarray(rows, dtype=np.int64)


class StoreWindows(Dataset):
    """Windows of ``seq_len`` steps over the episodes of a sequence store.

    Samples are dicts: ``"frames"`` ``(T, C, H, W)`` float32 in ``[0, 1]`` (uint8 if ``uint8``),
    and every other stored field (``"actions"`` ``(T, A)``, ``"states"``, ``"rewards"`` ``(T,)``)
    as float32 tensors.

    Args:
        store: an open :class:`SequenceStore`.
        seq_len: window length.
        stride: window stride (None: one window per episode, from step 0).
        uint8: yield uint8 frames; convert on the device with :func:`to_float`.
        episodes: restrict to these episode indices (e.g. a validation subset).
        anchor: see :func:`window_starts`.
        skip_short: skip (count and log) episodes shorter than ``seq_len`` instead of raising.
        strides: per-episode strides overriding ``stride`` (used for KTH's per-category rule).
    """

    def __init__(self, store: SequenceStore, seq_len: int, stride: int | None = 1, uint8: bool = False,
                 episodes: Sequence[int] | None = None, anchor: str = "start", skip_short: bool = False,
                 strides: Sequence[int | None] | None = None) -> None:
        check_window_args(seq_len, stride)
        if "frames" not in store.fields:
            raise DataError(f"{store.root}: no 'frames' field; the store has {sorted(store.fields)}")
        self.store, self.seq_len, self.uint8 = store, seq_len, uint8
        self.episodes = np.arange(len(store)) if episodes is None else np.asarray(episodes, dtype=np.int64)
        if len(self.episodes) == 0:
            raise DataError(f"{store.root}: no episodes to read (empty store or empty split)")
        lengths = store.lengths[self.episodes]
        names = [f"episode {e}" + (f" ({store.meta[e]['video']})" if "video" in store.meta[e] else "")
                 for e in self.episodes]
        per_ep = stride if strides is None else [strides[e] for e in self.episodes]
        index = build_index(lengths, seq_len, per_ep, names, anchor, skip_short, str(store.root))
        index[:, 0] = self.episodes[index[:, 0]]
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ep, start = (int(v) for v in self.index[i])
        stop = start + self.seq_len
        frames = self.store.read(ep, "frames", start, stop)
        if self.uint8 and frames.ndim == 4:
            # Copy HWC bytes contiguously, then let torch transpose: faster than NumPy's strided gather.
            frames_t = torch.from_numpy(np.array(frames)).permute(0, 3, 1, 2).contiguous()
        else:
            frames_t = frames_tensor(hwc_to_chw(frames), self.uint8)
        out: dict[str, Any] = {"frames": frames_t}
        for name in self.store.fields:
            if name != "frames":
                arr = np.asarray(self.store.read(ep, name, start, stop), dtype=np.float32)
                out[name] = torch.from_numpy(arr.copy())
        return out
