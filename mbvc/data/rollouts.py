"""The on-disk format of environment rollouts, and converters to and from BAIR TFRecords.

A rollout folder is a :mod:`~mbvc.data.store` sequence store with the fields ``frames``
(uint8 ``(T, H, W, C)``), ``actions`` (float32 ``(T, A)``) and optionally ``states``
(float32 ``(T, S)``) and ``rewards`` (float32 ``(T,)``). ``actions[t]`` is the action taken at
frame ``t``; the last one is padding when the episode ended there (BAIR's convention).

Example:
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> with RolloutWriter(root, {"env": "demo"}, shard_size=2) as w:
    ...     w.add_episode(np.zeros((5, 8, 8, 3), np.uint8), np.zeros((5, 2), np.float32))
    >>> RolloutDataset(root, seq_len=3)[0]["frames"].shape
    torch.Size([3, 3, 8, 8])
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mbvc.data.store import SequenceStore, SequenceWriter
from mbvc.data.windows import StoreWindows
from mbvc.errors import DataError, ShapeError

logger = logging.getLogger(__name__)


def _as_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


class RolloutWriter:
    """Append episodes to a rollout folder; reopening a folder resumes after its last shard.

    Args:
        root: rollout folder (created if missing).
        spec: env description (id, kwargs, image size...); stored in the manifest and checked on
            resume so rollouts of different envs never mix.
        shard_size: episodes per shard; a crash loses at most the unfinished shard.

    Example:
        >>> import tempfile
        >>> w = RolloutWriter(tempfile.mkdtemp(), {"env": "demo"})
        >>> w.num_episodes
        0
    """

    def __init__(self, root: str | os.PathLike, spec: dict[str, Any], shard_size: int = 256) -> None:
        self._writer = SequenceWriter(root, spec, shard_size)
        self.root = Path(root)
        if self._writer.num_episodes:
            logger.info("resuming %s with %d episodes on disk", self.root, self._writer.num_episodes)

    @property
    def num_episodes(self) -> int:
        """Episodes on disk plus those added since (the index the next episode gets)."""
        return self._writer.num_episodes

    def add_episode(self, frames: np.ndarray, actions: np.ndarray, states: np.ndarray | None = None,
                    rewards: np.ndarray | None = None) -> None:
        """Append one episode of ``T`` steps.

        Args:
            frames: uint8 ``(T, H, W, C)``.
            actions: ``(T, A)`` (cast to float32); ``actions[t]`` is taken at frame ``t``.
            states: optional ``(T, S)`` (cast to float32).
            rewards: optional ``(T,)`` (cast to float32).

        Raises:
            ShapeError: wrong rank/dtype or lengths that disagree.
            DataError: fields, shapes or dtypes differ from the episodes already stored.
            OutputError: the file system refused the write (the folder stays resumable).
        """
        frames = _as_array(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4:
            raise ShapeError(f"add_episode: frames must be uint8 (T, H, W, C), got {frames.dtype} "
                             f"{frames.shape}")
        arrays = {"frames": frames, "actions": self._float(actions, "actions", 2, len(frames))}
        if states is not None:
            arrays["states"] = self._float(states, "states", 2, len(frames))
        if rewards is not None:
            arrays["rewards"] = self._float(rewards, "rewards", 1, len(frames))
        self._writer.add(arrays)

    @staticmethod
    def _float(value: Any, name: str, ndim: int, length: int) -> np.ndarray:
        arr = _as_array(value)
        if arr.ndim != ndim or arr.shape[0] != length or not np.issubdtype(arr.dtype, np.number):
            want = "(T, A)" if ndim == 2 else "(T,)"
            raise ShapeError(f"add_episode: {name} must be numeric {want} with T = {length} "
                             f"(the number of frames), got {arr.dtype} {arr.shape}")
        return arr.astype(np.float32, copy=False)

    def flush(self) -> None:
        """Finish the open shard now (e.g. before a long pause)."""
        self._writer.flush()

    def close(self) -> None:
        """Finish the open shard and release the folder."""
        self._writer.close()

    def __enter__(self) -> RolloutWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # Episodes added before an exception are complete, so they are kept when the file
        # system allows; finishing them must not hide the exception (e.g. a full disk).
        if exc_type is None:
            self._writer.close()
        else:
            self._writer.close_after_error()


class RolloutDataset(StoreWindows):
    """Windows of ``seq_len`` steps over the episodes of a rollout folder (memory-mapped).

    Samples: ``{"frames": (T, C, H, W) float32 in [0, 1] (uint8 if uint8), "actions": (T, A),
    "states": (T, S) and "rewards": (T,) where stored}``.

    Args:
        root: rollout folder written by :class:`RolloutWriter`.
        seq_len: window length ``T``.
        stride: steps between window starts in an episode; None: one window per episode at step 0.
        uint8: yield uint8 frames (convert on the device with :func:`mbvc.data.to_float`).
        episodes: only these episode indices.
        skip_short: skip (count and log) episodes shorter than ``seq_len`` instead of raising.
    """

    def __init__(self, root: str | os.PathLike, seq_len: int, stride: int | None = 1, uint8: bool = False,
                 episodes: Sequence[int] | None = None, skip_short: bool = False) -> None:
        store = SequenceStore(root)
        if not len(store):
            raise DataError(f"rollout folder {root} holds no episodes yet (its manifest lists none): collect "
                            "some into it first (mbvc collect)")
        super().__init__(store, seq_len, stride, uint8, episodes, skip_short=skip_short)
        self.spec = self.store.spec


def rollouts_to_tfrecords(root: str | os.PathLike, out_dir: str | os.PathLike, records_per_file: int = 256,
                          image_keys: Sequence[str] = ("image_aux1", "image_main")) -> list[Path]:
    """Write a rollout folder as BAIR-schema TFRecords (``traj_<a>_to_<b>.tfrecords``).

    Each episode becomes one ``tf.train.Example`` with ``<i>/<image_key>/encoded`` (raw uint8
    bytes of the ``(H, W, C)`` frame), ``<i>/action`` and, if stored, ``<i>/endeffector_pos``
    (the states).

    Returns:
        The files written.
    """
    from mbvc.data.example_proto import encode_example
    from mbvc.data.tfrecord_io import write_records

    store = SequenceStore(root)
    out_dir = Path(out_dir)
    paths = []
    for first in range(0, len(store), records_per_file):
        last = min(first + records_per_file, len(store)) - 1

        def examples(first: int = first, last: int = last):  # noqa: ANN202 - generator
            for ep in range(first, last + 1):
                feats: dict[str, Any] = {}
                frames, actions = store.read(ep, "frames"), store.read(ep, "actions")
                states = store.read(ep, "states") if "states" in store.fields else None
                for t in range(len(frames)):
                    for key in image_keys:
                        feats[f"{t}/{key}/encoded"] = np.ascontiguousarray(frames[t]).tobytes()
                    feats[f"{t}/action"] = actions[t]
                    if states is not None:
                        feats[f"{t}/endeffector_pos"] = states[t]
                yield encode_example(feats)

        path = out_dir / f"traj_{first}_to_{last}.tfrecords"
        write_records(path, examples())
        paths.append(path)
    logger.info("wrote %d episodes of %s to %d TFRecord files in %s", len(store), root, len(paths), out_dir)
    return paths


def tfrecords_to_rollouts(src: str | os.PathLike | Sequence[str | os.PathLike], root: str | os.PathLike,
                          image_key: str = "image_aux1", image_size: int = 64, states: bool | None = None,
                          spec: dict[str, Any] | None = None, shard_size: int = 256) -> int:
    """Read BAIR-schema TFRecords (a file, a folder of ``*.tfrecords`` or a list) into a rollout folder.

    Args:
        src: TFRecord file(s) or folder.
        root: rollout folder to write (resumes if it exists with the same spec).
        image_key: ``image_aux1`` (the reference's camera) or ``image_main``.
        image_size: frame side (frames are ``image_size x image_size x 3`` raw bytes).
        states: read ``endeffector_pos`` into ``states``: True (required), False (ignored) or
            None (where present).
        spec: stored spec (default: ``{"source": "bair-tfrecords", "image_key": ...}``).
        shard_size: episodes per shard.

    Returns:
        The number of episodes in ``root`` afterwards.
    """
    from mbvc.data.bair import list_tfrecords, read_bair_file

    files = list_tfrecords(src)
    spec = spec if spec is not None else {"source": "bair-tfrecords", "image_key": image_key,
                                          "image_size": image_size}
    with RolloutWriter(root, spec, shard_size) as writer:
        done, seen = writer.num_episodes, 0  # resume: episodes already converted are skipped
        for path in files:
            for ep in read_bair_file(path, image_key, image_size, states):
                if seen >= done:
                    writer.add_episode(ep["frames"], ep["actions"], ep.get("states"))
                seen += 1
        return writer.num_episodes
