"""Moving MNIST files users already hold: the reference npz and the classic ``mnist_test_seq.npy``.

Reference npz: ``clips`` int ``(2, N, 2)`` (input/output x sequence x [start, length]),
``dims`` (``[[C, H, W]]``; a second row means outputs live in ``output_raw_data``) and
``input_raw_data`` ``(frames, C, H, W)`` (float32 in [0, 1] in the released files). A sample is
the input clip followed by the output clip, values exactly as stored (what the reference's
loader feeds); uint8 data is scaled by 1/255. Arrays stored uncompressed (``np.savez``) are
memory-mapped straight out of the zip, so a 3 GB training file is not read into RAM.

Classic file: uint8 ``(T, N, H, W)``, time first; sample ``i`` is ``data[:, i] / 255``.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mbvc.data.arrays import NpzFile, load_npy
from mbvc.data.windows import frames_tensor
from mbvc.errors import DataError
from mbvc.io import atomic_write

NPZ_KEYS = ("clips", "dims", "input_raw_data")


def npz_member(path: Path, key: str) -> np.ndarray:
    """Array ``key`` of an npz: memory-mapped if stored uncompressed, else loaded (bounded).

    Raises:
        DataError: not a zip/npz (e.g. truncated), ``key`` absent (naming the keys that are
            there), a header promising more than the member holds, or an array read into
            memory above ``MBVC_MAX_ARRAY_GIB`` (see :mod:`mbvc.data.arrays`).
    """
    with NpzFile(path) as z:
        if key not in z.files:
            raise DataError(f"{path} has no array {key!r} (expected keys {list(NPZ_KEYS)}, found {z.files})")
        return z.get(key, mmap=True)


class MnistNpzDataset(Dataset):
    """Sequences of one or more reference-format npz files (each file keeps its own offsets).

    Samples: ``{"frames": (T_in + T_out, C, H, W)}`` float32 (uint8 if ``uint8``).

    Args:
        paths: one npz or a list (concatenated; the reference cannot load two at once).
        uint8: yield uint8 frames (float files are rounded from ``x * 255``).
    """

    def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike], uint8: bool = False) -> None:
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if not paths:
            raise DataError("MnistNpzDataset needs at least one .npz path")
        self.paths = [Path(p) for p in paths]
        self.files = [self._open(p) for p in self.paths]
        self.uint8 = uint8
        self._index = np.concatenate([np.stack([np.full(f["clips"].shape[1], k), np.arange(f["clips"].shape[1])], 1)
                                      for k, f in enumerate(self.files)])

    @staticmethod
    def _open(path: Path) -> dict[str, np.ndarray]:
        if not path.is_file():
            raise DataError(f"Moving MNIST file {path} not found")
        arrays = {k: npz_member(path, k) for k in NPZ_KEYS}
        clips, dims = np.asarray(arrays["clips"]), np.asarray(arrays["dims"])
        if clips.ndim != 3 or clips.shape[0] != 2 or clips.shape[2] != 2:
            raise DataError(f"{path}: 'clips' must have shape (2, N, 2), got {clips.shape}")
        if dims.ndim != 2 or dims.shape[1] != 3 or dims.shape[0] not in (1, 2):
            raise DataError(f"{path}: 'dims' must have shape (1, 3) or (2, 3), got {dims.shape}")
        arrays["output"] = npz_member(path, "output_raw_data") if dims.shape[0] == 2 else arrays["input_raw_data"]
        for name, key, row in (("input_raw_data", "input_raw_data", 0), ("output_raw_data", "output", -1)):
            data = arrays[key]
            if data.ndim != 4 or tuple(data.shape[1:]) != tuple(dims[row]):
                raise DataError(f"{path}: {name!r} must be (frames, {', '.join(map(str, dims[row]))}), "
                                f"got {data.shape}")
        for side, data in ((0, arrays["input_raw_data"]), (1, arrays["output"])):
            ends = clips[side, :, 0] + clips[side, :, 1]
            if len(ends) and (clips[side, :, 0].min() < 0 or ends.max() > len(data)):
                raise DataError(f"{path}: 'clips'[{side}] points past the {len(data)} stored frames")
        arrays["clips"], arrays["path"] = clips, path  # type: ignore[assignment]
        return arrays

    def __getstate__(self) -> dict:
        # Reopen the memory maps in each worker rather than pickling (copying) gigabytes.
        return {**self.__dict__, "files": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.files = [self._open(p) for p in self.paths]

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        k, j = (int(v) for v in self._index[i])
        f = self.files[k]
        (s_in, n_in), (s_out, n_out) = f["clips"][0, j], f["clips"][1, j]
        frames = np.concatenate([f["input_raw_data"][s_in:s_in + n_in], f["output"][s_out:s_out + n_out]])
        return {"frames": frames_tensor(frames, self.uint8)}


class MnistSeqDataset(Dataset):
    """The classic ``mnist_test_seq.npy``: uint8 ``(T, N, H, W)``, time first (memory-mapped).

    Samples: ``{"frames": (T, 1, H, W)}`` float32 ``data[:, i] / 255`` (uint8 if ``uint8``).
    """

    def __init__(self, path: str | os.PathLike, uint8: bool = False) -> None:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"Moving MNIST file {path} not found")
        self.data = load_npy(path, mmap=True)
        if self.data.ndim != 4 or self.data.dtype != np.uint8:
            raise DataError(f"{path}: expected uint8 (T, N, H, W) like mnist_test_seq.npy "
                            f"(20, 10000, 64, 64), got {self.data.dtype} {self.data.shape}")
        self.path, self.uint8 = path, uint8

    def __getstate__(self) -> dict:
        return {**self.__dict__, "data": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.data = load_npy(self.path, mmap=True)

    def __len__(self) -> int:
        return self.data.shape[1]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"frames": frames_tensor(self.data[:, i, None], self.uint8)}


def write_reference_npz(path: str | os.PathLike, frames: np.ndarray, context: int = 10) -> None:
    """Write uint8 ``(N, T, H, W)`` sequences in the reference npz layout (float32 in [0, 1])."""
    n, t, h, w = frames.shape
    if not 0 < context < t:
        raise DataError(f"context must be in (0, {t}), got {context}")
    starts = np.arange(n) * t
    clips = np.stack([np.stack([starts, np.full(n, context)], 1),
                      np.stack([starts + context, np.full(n, t - context)], 1)]).astype(np.int32)
    raw = (frames.reshape(n * t, 1, h, w).astype(np.float32) / 255.0)
    with atomic_write(path, "wb") as f:
        np.savez(f, clips=clips, dims=np.array([[1, h, w]], dtype=np.int32), input_raw_data=raw)


def write_mnist_seq(path: str | os.PathLike, frames: np.ndarray) -> None:
    """Write uint8 ``(N, T, H, W)`` sequences time-first, like ``mnist_test_seq.npy``."""
    with atomic_write(path, "wb") as f:
        np.save(f, np.ascontiguousarray(frames.transpose(1, 0, 2, 3)))


def read_reference_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The checked arrays of a reference npz: ``clips``, ``dims``, ``input_raw_data`` (+ ``output``)."""
    return MnistNpzDataset._open(Path(path))
