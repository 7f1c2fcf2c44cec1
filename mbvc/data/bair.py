"""BAIR robot pushing (``softmotion30_44k``): TFRecords read once into a memory-mapped cache.

The reference re-scans a TFRecord file from its start for every sample it draws. mbvc reads
every file once, checking CRCs, into a :mod:`~mbvc.data.store` cache (uint8 frames, float32
actions and end-effector positions); training then reads windows straight from memory maps.

Example record (one trajectory of 30 steps): ``<t>/image_aux1/encoded`` (raw 64x64x3 uint8
bytes, not PNG), ``<t>/image_main/encoded``, ``<t>/action`` (4 floats),
``<t>/endeffector_pos`` (3 floats).
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mbvc.data.cache import partial_build, resolve_cache_dir
from mbvc.data.store import SequenceStore, SequenceWriter, read_manifest
from mbvc.data.example_proto import Example
from mbvc.data.tfrecord_io import iter_records
from mbvc.data.windows import StoreWindows
from mbvc.errors import DataError

logger = logging.getLogger(__name__)

IMAGE_KEYS = ("image_aux1", "image_main")


def _natural_key(path: Path) -> list[Any]:
    # traj_256_to_511 must sort after traj_0_to_255, not between traj_25... and traj_3...
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", path.name)]


def list_tfrecords(src: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Resolve a TFRecord file, a folder of ``*.tfrecords`` or a list of files, in natural order.

    Raises:
        DataError: a path does not exist or a folder holds no ``*.tfrecords``.
    """
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if path.is_dir():
            files = sorted(path.glob("*.tfrecords"), key=_natural_key)
            if not files:
                raise DataError(f"{path} holds no *.tfrecords files (expected BAIR's traj_<a>_to_<b>.tfrecords)")
            return files
        if not path.exists():
            raise DataError(f"TFRecord path {path} does not exist")
        return [path]
    files = [Path(p) for p in src]
    if not files:
        raise DataError("empty list of TFRecord files")
    for p in files:
        if not p.is_file():
            raise DataError(f"TFRecord file {p} does not exist")
    return files


def read_bair_file(path: str | os.PathLike, image_key: str = "image_aux1", image_size: int = 64,
                   states: bool | None = True) -> Iterator[dict[str, np.ndarray]]:
    """Yield the trajectories of one BAIR TFRecord file, CRC-checked.

    Args:
        path: a ``.tfrecords`` file.
        image_key: ``image_aux1`` (the reference's camera) or ``image_main``.
        image_size: frame side; frames are ``image_size**2 * 3`` raw bytes.
        states: also read ``endeffector_pos`` (None: where the record has it).

    Yields:
        ``{"frames": uint8 (T, S, S, 3), "actions": float32 (T, A)[, "states": float32 (T, 3)]}``.

    Raises:
        DataError: truncated file, CRC mismatch, missing feature key or wrongly sized image,
            naming the file, record and key.
    """
    side = int(image_size)
    for idx, data in iter_records(path):
        ex = Example(data, f"{path} record {idx}")
        steps = 0
        while f"{steps}/action" in ex:
            steps += 1
        if steps == 0:
            ex.floats("0/action")  # raises with the feature names that are there
        frames = np.empty((steps, side, side, 3), dtype=np.uint8)
        for t in range(steps):
            key = f"{t}/{image_key}/encoded"
            raw = ex.bytes(key)
            if len(raw) != frames[t].size:
                raise DataError(f"{ex.where}: feature {key!r} has {len(raw)} bytes, expected "
                                f"{frames[t].size} (raw uint8 {side}x{side}x3; set image_size?)")
            frames[t] = np.frombuffer(raw, dtype=np.uint8).reshape(side, side, 3)
        episode = {"frames": frames, "actions": _stack(ex, "action", steps)}
        if states or (states is None and "0/endeffector_pos" in ex):
            episode["states"] = _stack(ex, "endeffector_pos", steps)
        yield episode


def _stack(ex: Example, name: str, steps: int) -> np.ndarray:
    first = ex.floats(f"0/{name}")
    return np.stack([first] + [ex.floats(f"{t}/{name}", first.size) for t in range(1, steps)])


def find_split_dir(root: str | os.PathLike, split: str) -> Path:
    """``<root>/<split>`` or ``<root>/softmotion30_44k/<split>``, which must exist."""
    root = Path(root)
    for cand in (root / split, root / "softmotion30_44k" / split):
        if cand.is_dir():
            return cand
    raise DataError(f"BAIR split folder not found: expected {root / split} or "
                    f"{root / 'softmotion30_44k' / split} holding *.tfrecords")


def convert_bair(root: str | os.PathLike, cache_dir: str | os.PathLike, split: str,
                 image_key: str = "image_aux1", image_size: int = 64, states: bool = True) -> Path:
    """Convert one BAIR split to a memory-mapped cache once; later calls reuse it.

    The cache is built in ``<cache_dir>/.<name>.partial`` (resumable after a crash) and renamed
    to ``<cache_dir>/<name>`` when complete, so a half-built cache is never read.

    Args:
        root: folder holding ``train/`` and ``test/`` (or ``softmotion30_44k/``).
        cache_dir: where caches live.
        split: ``train`` or ``test``.
        image_key: camera, ``image_aux1`` or ``image_main``.
        image_size: frame side.
        states: keep end-effector positions.

    Returns:
        The cache folder (a sequence store).

    Raises:
        DataError: bad input files, or an existing cache built from different files.
    """
    if image_key not in IMAGE_KEYS:
        logger.warning("BAIR image_key %r is neither of %s", image_key, IMAGE_KEYS)
    files = list_tfrecords(find_split_dir(root, split))
    spec = {"source": "bair", "split": split, "image_key": image_key, "image_size": image_size,
            "states": states, "files": [[f.name, f.stat().st_size] for f in files]}
    name = cache_name(split, image_key, image_size)
    final, partial = Path(cache_dir) / name, Path(cache_dir) / f".{name}.partial"
    if final.exists():
        found = read_manifest(final)["spec"]
        if found != SequenceWriter.normalise(spec):
            raise DataError(f"cache {final} was built from other files or options ({found.get('files', [])[:2]}"
                            f"...); move it away or pass another cache_dir")
        return final
    logger.info("converting BAIR %s (%d files) to %s: a one-time step", split, len(files), final)
    with partial_build(partial, spec):
        empty = [f.name for f in files if f.stat().st_size == 0]
        if empty:
            logger.warning("BAIR %s: %d empty file(s) hold no records (an interrupted download?): %s",
                           split, len(empty), ", ".join(empty[:5]))
        with SequenceWriter(partial, spec) as writer:
            done, seen = writer.num_episodes, 0
            for path in files:
                for episode in read_bair_file(path, image_key, image_size, states):
                    if seen >= done:
                        writer.add(episode)
                    seen += 1
            count = writer.num_episodes
        if count == 0:
            raise DataError(f"BAIR split {split} under {root} holds no records"
                            + (f" (empty files: {', '.join(empty[:5])})" if empty else ""))
    os.replace(partial, final)
    logger.info("BAIR %s cache ready: %d trajectories in %s", split, count, final)
    return final


class BAIRDataset(StoreWindows):
    """BAIR trajectories from a cache made by :func:`convert_bair`.

    Samples: ``{"frames": (T, 3, S, S) float32 in [0, 1] (uint8 if uint8), "actions": (T, 4),
    "states": (T, 3)}``. Training uses ``seq_len = 12`` (2 -> 10), evaluation ``seq_len = 30``
    (2 -> 28, the full trajectory).

    Args:
        cache: cache folder.
        seq_len: window length.
        stride: steps between window starts; 1 (default) takes every window of every
            trajectory, as the reference does; None takes each trajectory's first window only.
        uint8: yield uint8 frames.
    """

    def __init__(self, cache: str | os.PathLike, seq_len: int, stride: int | None = 1,
                 uint8: bool = False) -> None:
        super().__init__(SequenceStore(cache), seq_len, stride, uint8)


def cache_name(split: str, image_key: str = "image_aux1", image_size: int = 64) -> str:
    """Folder name of a BAIR cache."""
    return f"bair_{split}_{image_key}_{image_size}"


def bair_dataset(root: str | os.PathLike, split: str, seq_len: int, stride: int | None = 1,
                 uint8: bool = False, cache_dir: str | os.PathLike | None = None,
                 image_key: str = "image_aux1", image_size: int = 64) -> BAIRDataset:
    """Convert ``split`` if needed and open it.

    The cache goes to ``cache_dir``, by default ``<root>/mbvc_cache``, or a user cache folder
    when ``root`` is read-only (see :func:`mbvc.data.cache.resolve_cache_dir`).
    """
    cache_dir = resolve_cache_dir(root, cache_dir, cache_name(split, image_key, image_size))
    return BAIRDataset(convert_bair(root, cache_dir, split, image_key, image_size), seq_len, stride, uint8)
