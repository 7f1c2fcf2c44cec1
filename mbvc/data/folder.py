"""A user's own sequences: a folder of videos-as-frame-folders, or ``.npy`` / ``.npz`` arrays.

* :class:`FolderDataset`: ``<root>/<video>/<frame>.png|jpg`` (frames in natural name order),
  decoded on access.
* :class:`ArrayDataset`: arrays ``(N, T, H, W)`` or ``(N, T, H, W, C)`` in ``.npy`` (memory-mapped)
  or ``.npz`` files (memory-mapped when stored uncompressed), e.g. radar echo maps.

Both cut every sequence into windows of ``seq_len`` frames at ``stride`` (windows never cross
sequences) and yield ``{"frames": (T, C, H, W)}``: uint8 data scaled to ``[0, 1]``, float data as
stored.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mbvc.data.arrays import NpzFile, load_npy
from mbvc.data.windows import build_index, check_window_args, frames_tensor, hwc_to_chw
from mbvc.errors import DataError

logger = logging.getLogger(__name__)

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _natural(name: str) -> list[Any]:
    # frame_10.png after frame_9.png
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _paths(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    return [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]


class FolderDataset(Dataset):
    """Windows over videos stored as folders of image files.

    Args:
        root: folder with one sub-folder per video.
        seq_len: window length.
        stride: steps between window starts (None: one window per video, from its first frame).
        uint8: yield uint8 frames.
        grey: convert to one channel (default: keep the files' channels; grey files give C = 1).
        skip_short: skip (count and log) videos shorter than ``seq_len`` instead of raising.

    Raises:
        DataError: missing/empty folder, or frames whose size differs from the first frame's.
    """

    def __init__(self, root: str | os.PathLike, seq_len: int, stride: int | None = 1, uint8: bool = False,
                 grey: bool = False, skip_short: bool = False) -> None:
        check_window_args(seq_len, stride)
        from PIL import Image

        self.root, self.seq_len, self.uint8, self.grey = Path(root), seq_len, uint8, grey
        if not self.root.is_dir():
            raise DataError(f"frame folder {self.root} does not exist")
        self.videos = []
        for d in sorted((d for d in self.root.iterdir() if d.is_dir()), key=lambda d: _natural(d.name)):
            files = sorted((p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXT), key=lambda p: _natural(p.name))
            if files:
                self.videos.append(files)
        if not self.videos:
            raise DataError(f"{self.root} holds no video folders of {'/'.join(IMAGE_EXT)} frames "
                            "(expected <root>/<video>/<frame>.png)")
        with Image.open(self.videos[0][0]) as im:  # the first frame fixes size and mode
            self.size, self.mode = im.size, ("L" if grey or im.mode in ("L", "I", "I;16", "1") else "RGB")
        for files in self.videos:  # headers only: cheap, and catches mixed sizes before training
            for p in files:
                with Image.open(p) as im:
                    if im.size != self.size:
                        raise DataError(f"{p}: frame size {im.size[0]}x{im.size[1]} differs from "
                                        f"{self.size[0]}x{self.size[1]} of {self.videos[0][0]}")
        self.index = build_index([len(v) for v in self.videos], seq_len, stride,
                                 [str(v[0].parent) for v in self.videos], skip_short=skip_short, what=str(root))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        from PIL import Image

        video, start = (int(v) for v in self.index[i])
        frames = []
        for p in self.videos[video][start:start + self.seq_len]:
            with Image.open(p) as im:
                frames.append(np.asarray(im.convert(self.mode), dtype=np.uint8))
        return {"frames": frames_tensor(hwc_to_chw(np.stack(frames)), self.uint8)}


class ArrayDataset(Dataset):
    """Windows over sequences stored as arrays ``(N, T, H, W[, C])`` in ``.npy`` / ``.npz`` files.

    Args:
        paths: one file or a list (sequences are concatenated; frame sizes must agree).
        seq_len: window length.
        stride: steps between window starts (None: one window per sequence, from frame 0).
        uint8: yield uint8 frames (float data is rounded from ``x * 255``).
        key: array name inside ``.npz`` files (default: the only array, or ``frames``).
        skip_short: accepted for symmetry; all sequences of an array share one length.

    Raises:
        DataError: missing file, npz without the key, wrong rank, or mixed frame sizes.
    """

    def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike], seq_len: int,
                 stride: int | None = 1, uint8: bool = False, key: str | None = None,
                 skip_short: bool = False) -> None:
        check_window_args(seq_len, stride)
        self.paths, self.seq_len, self.uint8, self.key = _paths(paths), seq_len, uint8, key
        if not self.paths:
            raise DataError("ArrayDataset needs at least one .npy/.npz path")
        self.arrays = [self._load(p, key) for p in self.paths]
        frame_shapes = {a.shape[2:] for a in self.arrays}
        if len(frame_shapes) != 1:
            shown = ", ".join(f"{p.name}: {a.shape[2:]}" for p, a in zip(self.paths, self.arrays))
            raise DataError(f"arrays have mixed frame sizes ({shown}); expected one (H, W[, C])")
        lengths, names, owner = [], [], []
        for k, (p, a) in enumerate(zip(self.paths, self.arrays)):
            lengths += [a.shape[1]] * a.shape[0]
            names += [f"{p} sequence {j}" for j in range(a.shape[0])]
            owner += [(k, j) for j in range(a.shape[0])]
        self._owner = np.asarray(owner, dtype=np.int64).reshape(-1, 2)
        self.index = build_index(lengths, seq_len, stride, names, skip_short=skip_short,
                                 what=", ".join(map(str, self.paths)))

    @staticmethod
    def _load(path: Path, key: str | None) -> np.ndarray:
        if not path.is_file():
            raise DataError(f"array file {path} not found")
        if path.suffix == ".npy":
            arr = load_npy(path, mmap=True)
        elif path.suffix == ".npz":
            with NpzFile(path) as z:
                if key is None:
                    key = z.files[0] if len(z.files) == 1 else "frames"
                arr = z.get(key, mmap=True)
        else:
            raise DataError(f"{path}: expected a .npy or .npz file")
        if arr.ndim not in (4, 5) or (arr.ndim == 5 and arr.shape[-1] not in (1, 3, 4)):
            raise DataError(f"{path}: expected frames (N, T, H, W) or (N, T, H, W, C) with C in 1/3/4, "
                            f"got shape {arr.shape}")
        if not (arr.dtype == np.uint8 or np.issubdtype(arr.dtype, np.floating)):
            raise DataError(f"{path}: expected uint8 or float frames, got {arr.dtype}")
        return arr

    def __getstate__(self) -> dict[str, Any]:
        # Reopen the memory maps in each worker rather than pickling (copying) the data.
        state = self.__dict__.copy()
        state["arrays"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.arrays = [self._load(p, self.key) for p in self.paths]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        seq, start = (int(v) for v in self.index[i])
        k, j = self._owner[seq]
        frames = self.arrays[k][j, start:start + self.seq_len]
        return {"frames": frames_tensor(hwc_to_chw(frames), self.uint8, f"{self.paths[k]} sequence {j}")}
