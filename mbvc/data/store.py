"""Sharded, append-safe, memory-mapped storage of variable-length sequences.

One store is a folder::

    root/manifest.json          # the source of truth, rewritten atomically
    root/shard_00000/<field>.bin  # raw little-endian arrays, episodes concatenated in time
    root/shard_00001/...

Each field (``frames``, ``actions``...) is stored as one raw array per shard of shape
``(sum of episode lengths, *field_shape)``; the manifest records every field's dtype and
per-step shape, the episode lengths of every finished shard and a free-form ``spec``.

Crash safety: episodes are appended to the files of the *open* shard and flushed, but a shard
only counts once the manifest lists it, and the manifest is replaced atomically after the
shard's files are fsynced. A process killed mid-shard therefore loses at most the episodes of
that unfinished shard; a writer opened later ignores (and overwrites) the leftover files.
Raw ``.bin`` files instead of ``.npy`` so that a shard can grow without rewriting a header.

A write the file system refuses (full disk, file size limit, read-only folder...) raises
:class:`~mbvc.errors.OutputError` naming the file; the episode being written is cut off the open
shard's files again, so the store stays resumable: its finished shards are kept and a writer
opened later continues after them.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from mbvc.errors import DataError, MbvcError, OutputError
from mbvc.io import write_json

try:  # advisory lock: two writers on one store would interleave shards
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

FORMAT = "mbvc-sequences"
VERSION = 1
MANIFEST = "manifest.json"


def _shard_name(index: int) -> str:
    return f"shard_{index:05d}"


def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """Load and check ``root/manifest.json``.

    Raises:
        DataError: the folder or manifest is missing or not an mbvc sequence store.
    """
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise DataError(f"sequence store {root} does not exist (expected a folder with {MANIFEST})")
    if not path.is_file():
        raise DataError(f"{path} not found: {root} is not an mbvc sequence store "
                        "(write one with RolloutWriter or a convert_* function)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not valid JSON: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise DataError(f"{path}: expected format {FORMAT!r}, got {manifest.get('format')!r}")
    if manifest.get("version") != VERSION:
        raise DataError(f"{path}: expected version {VERSION}, got {manifest.get('version')!r}")
    return manifest


class SequenceWriter:
    """Append episodes (dicts of per-step arrays) to a sequence store, resuming an existing one.

    Args:
        root: store folder (created if missing).
        spec: free-form JSON-serialisable description of the source (env id, dataset name...).
            Resuming a store with a different spec raises, so two sources never mix.
        shard_size: episodes per shard; a crash loses at most this many episodes.
    """

    def __init__(self, root: str | os.PathLike, spec: dict[str, Any] | None = None,
                 shard_size: int = 256) -> None:
        if not isinstance(shard_size, int) or shard_size < 1:
            raise DataError(f"shard_size must be a positive int, got {shard_size!r}")
        self.root = Path(root)
        self.spec = self.normalise(spec or {})
        self.shard_size = shard_size
        self._files: dict[str, Any] = {}
        self._open_lengths: list[int] = []
        self._open_meta: list[dict[str, Any]] = []
        self._closed = False
        self._broken = False  # a failed write left bytes in the open shard that could not be cut off
        if self.root.exists() and not self.root.is_dir():
            raise OutputError(f"cannot write the sequence store {self.root}: it is a file, not a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._write_error(self.root, exc) from None
        self._lock = self._acquire_lock()
        if (self.root / MANIFEST).exists():
            try:
                self._manifest = read_manifest(self.root)
                if self._manifest["spec"] != self.spec:
                    raise DataError(f"{self.root / MANIFEST} was written with spec {self._manifest['spec']}, "
                                    f"got {self.spec}; write to a new folder instead of mixing sources")
            except DataError:
                self._release()
                raise
        else:
            self._manifest = {"format": FORMAT, "version": VERSION, "spec": self.spec,
                              "fields": None, "num_episodes": 0, "num_steps": 0, "shards": []}
            try:
                write_json(self.root / MANIFEST, self._manifest)
            except OSError as exc:
                self._release()
                raise self._write_error(self.root / MANIFEST, exc) from None

    @staticmethod
    def normalise(spec: dict[str, Any]) -> dict[str, Any]:
        """``spec`` as it reads back from JSON (tuples become lists), for comparisons."""
        return json.loads(json.dumps(spec))

    def _write_error(self, path: Path, exc: OSError) -> OutputError:
        """One :class:`OutputError` naming ``path``, what the system said and that the store is resumable."""
        if isinstance(exc, MbvcError):
            head = str(exc)  # already names the file (mbvc.io's atomic writes)
        else:
            head = f"cannot write {path}: {exc.strerror or str(exc) or type(exc).__name__}"
        err = OutputError(f"{head}; the episodes already finished in {self.root} are kept, and the same command "
                          "run again (once there is room / the folder is writable) resumes after them")
        err.errno = exc.errno
        return err

    def _acquire_lock(self) -> Any:
        if fcntl is None:
            return None
        try:
            handle = open(self.root / ".lock", "w")  # noqa: SIM115 - held for the writer's life
        except OSError as exc:
            raise self._write_error(self.root / ".lock", exc) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            raise DataError(f"{self.root} is being written by another process") from exc
        return handle

    @property
    def num_episodes(self) -> int:
        """Episodes already on disk in finished shards plus those added to the open shard."""
        return self._manifest["num_episodes"] + len(self._open_lengths)

    @property
    def fields(self) -> dict[str, dict[str, Any]] | None:
        """Per-field ``{"dtype", "shape"}`` (per step), or None before the first episode."""
        return self._manifest["fields"]

    def add(self, arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> None:
        """Append one episode.

        Args:
            arrays: field name -> array ``(T, *field_shape)``; every field has the same ``T``.
            meta: optional JSON-serialisable per-episode information kept in the manifest.

        Raises:
            DataError: the writer is closed, or fields/dtypes/shapes differ from the store's.
            OutputError: the file system refused the write (full disk, read-only...); the episode
                is not added and the episodes of finished shards stay readable.
        """
        if self._closed:
            raise DataError(f"writer for {self.root} is closed")
        if self._broken:
            raise DataError(f"writer for {self.root} failed to write an earlier episode; open a new writer "
                            "(it resumes after the finished shards)")
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        length = self._check(arrays)
        if not self._files:
            self._open_shard()
        ends = {name: f.tell() for name, f in self._files.items()}
        name = next(iter(arrays))
        try:
            for name, arr in arrays.items():
                _write_all(self._files[name], arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
        except BaseException as exc:  # also Ctrl-C between two fields: never seal half an episode
            self._cut(ends)
            if isinstance(exc, OSError):
                raise self._write_error(Path(self._files[name].name), exc) from None
            raise
        self._open_lengths.append(length)
        self._open_meta.append(meta or {})
        if len(self._open_lengths) >= self.shard_size:
            self.flush()

    def _check(self, arrays: dict[str, np.ndarray]) -> int:
        lengths = {name: a.shape[0] if a.ndim else -1 for name, a in arrays.items()}
        if len(set(lengths.values())) != 1 or min(lengths.values()) < 1:
            raise DataError(f"{self.root}: every field of an episode needs the same length T >= 1, "
                            f"got lengths {lengths}")
        got = {n: {"dtype": a.dtype.str.lstrip("<>|="), "shape": list(a.shape[1:])} for n, a in arrays.items()}
        if self._manifest["fields"] is None:
            self._manifest["fields"] = got
        elif got != self._manifest["fields"]:
            raise DataError(f"{self.root}: episode fields {got} differ from the store's "
                            f"{self._manifest['fields']}")
        return next(iter(lengths.values()))

    def _cut(self, ends: dict[str, int]) -> None:
        """Cut the open shard's files back to ``ends`` (before a failed episode); else mark the shard broken."""
        try:
            for name, f in self._files.items():
                f.truncate(ends[name])
                f.seek(ends[name])
        except OSError as exc:
            logger.warning("could not cut the failed episode off the open shard of %s (%s): its episodes "
                           "will be dropped", self.root, exc)
            self._broken = True

    def _open_shard(self) -> None:
        shard_dir = self.root / _shard_name(len(self._manifest["shards"]))
        path = shard_dir
        try:
            if shard_dir.exists():
                logger.warning("discarding unfinished shard %s left by an interrupted writer", shard_dir)
            shard_dir.mkdir(exist_ok=True)
            # "wb" truncates leftovers of a crashed writer: they were never listed in the manifest.
            # Unbuffered: a failed write is seen at once, and _cut can take its bytes back.
            for name in self._manifest["fields"]:
                path = shard_dir / f"{name}.bin"
                self._files[name] = open(path, "wb", buffering=0)  # noqa: SIM115
        except OSError as exc:
            self._drop_open_shard()
            raise self._write_error(path, exc) from None

    def _drop_open_shard(self) -> None:
        """Close the open shard's files and forget its episodes (finished shards are untouched)."""
        for f in self._files.values():
            with contextlib.suppress(OSError):
                f.close()
        self._files, self._open_lengths, self._open_meta = {}, [], []
        self._broken = False

    def flush(self) -> None:
        """Finish the open shard (fsync its files, then list it in the manifest atomically).

        Raises:
            OutputError: the file system refused; the open shard's episodes are dropped, the
                finished shards and the manifest stay as they were.
        """
        if not self._files:
            return
        name = _shard_name(len(self._manifest["shards"]))
        if self._broken:
            logger.warning("dropping the %d episode(s) of the unfinished shard %s of %s after a failed write",
                           len(self._open_lengths), name, self.root)
            self._drop_open_shard()
            return
        path = self.root / name
        try:
            for f in self._files.values():
                path = Path(f.name)
                os.fsync(f.fileno())
                f.close()
            self._files = {}
            m = self._manifest
            entry = {"name": name, "lengths": self._open_lengths}
            if any(self._open_meta):
                entry["meta"] = self._open_meta
            new = {**m, "shards": [*m["shards"], entry], "num_episodes": m["num_episodes"] + len(self._open_lengths),
                   "num_steps": m["num_steps"] + sum(self._open_lengths)}
            path = self.root / MANIFEST
            write_json(path, new)
        except OSError as exc:
            self._drop_open_shard()
            raise self._write_error(path, exc) from None
        self._manifest = new
        self._open_lengths, self._open_meta = [], []
        logger.debug("finished %s (%d episodes in store)", entry["name"], new["num_episodes"])

    def close(self) -> None:
        """Finish the open shard (even if short) and release the store (also when finishing fails)."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._release()

    def close_after_error(self) -> None:
        """:meth:`close` while another error propagates: keep what can be kept, raise nothing.

        The open shard's complete episodes are finished if the file system lets us; otherwise
        they are dropped (the finished shards stay) and the reason is logged.
        """
        try:
            self.close()
        except (OSError, DataError) as exc:
            logger.warning("%s: the unfinished shard was not kept: %s", self.root, exc)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def abort(self) -> None:
        """Close without finishing the open shard (its episodes are dropped, finished ones kept)."""
        self._drop_open_shard()
        self.close()

    def __enter__(self) -> SequenceWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # On an exception keep the finished shards but do not seal a possibly half-built episode set.
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _write_all(f: Any, data: bytes) -> None:
    """Write all of ``data`` to the unbuffered file ``f`` (a raw write may take only part of it)."""
    view = memoryview(data)
    while view:
        n = f.write(view)
        if not n:  # pragma: no cover - regular files write something or raise
            raise OSError(f"short write to {f.name}")
        view = view[n:]


class SequenceStore:
    """Read-only, memory-mapped view of a sequence store; safe to pickle into DataLoader workers.

    Args:
        root: store folder written by :class:`SequenceWriter`.

    Attributes:
        lengths: ``(E,)`` int64 episode lengths, in writing order.
        fields: per-field ``{"dtype", "shape"}``.
        spec: the writer's spec.
        meta: per-episode metadata dicts (empty dicts where none was given).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        manifest = read_manifest(self.root)
        self.spec: dict[str, Any] = manifest["spec"]
        self.fields: dict[str, dict[str, Any]] = manifest["fields"] or {}
        shards = manifest["shards"]
        self.lengths = np.array([n for s in shards for n in s["lengths"]], dtype=np.int64)
        self.meta: list[dict[str, Any]] = [m for s in shards for m in s.get("meta", [{}] * len(s["lengths"]))]
        self._shard_names = [s["name"] for s in shards]
        self._episode_shard = np.repeat(np.arange(len(shards)), [len(s["lengths"]) for s in shards])
        # Row offset of each episode inside its shard's arrays.
        self._episode_row = np.concatenate(
            [np.concatenate([[0], np.cumsum(s["lengths"])[:-1]]) for s in shards] or [np.zeros(0)]
        ).astype(np.int64)
        self._shard_rows = [int(sum(s["lengths"])) for s in shards]
        self._maps: dict[tuple[int, str], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.lengths)

    def __getstate__(self) -> dict[str, Any]:
        # Memory maps are reopened lazily in each worker instead of being pickled (copied).
        state = self.__dict__.copy()
        state["_maps"] = {}
        return state

    def _map(self, shard: int, field: str) -> np.ndarray:
        key = (shard, field)
        arr = self._maps.get(key)
        if arr is None:
            info = self.fields[field]
            path = self.root / self._shard_names[shard] / f"{field}.bin"
            shape = (self._shard_rows[shard], *info["shape"])
            dtype = np.dtype(info["dtype"]).newbyteorder("<")
            expected = int(np.prod(shape)) * dtype.itemsize
            size = path.stat().st_size if path.exists() else -1
            if size != expected:
                raise DataError(f"{path}: expected {expected} bytes for {field} {shape} {dtype.name}, "
                                f"found {'no file' if size < 0 else f'{size} bytes'} (store damaged?)")
            # A plain ndarray view of the map: slicing an np.memmap subclass costs a Python hook per slice.
            arr = np.asarray(np.memmap(path, dtype=dtype, mode="r", shape=shape)) if expected else np.zeros(shape, dtype)
            self._maps[key] = arr
        return arr

    def read(self, episode: int, field: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Return steps ``[start, stop)`` of ``field`` for one episode as a (read-only) view.

        Returns:
            ``(stop - start, *field_shape)`` array backed by the memory map.
        """
        if not self.fields:
            raise DataError(f"{self.root} holds no episodes yet (its {MANIFEST} lists none): write some into it "
                            "first (e.g. mbvc collect)")
        if field not in self.fields:
            raise DataError(f"{self.root}: no field {field!r}; the store has {sorted(self.fields)}")
        length = int(self.lengths[episode])
        stop = length if stop is None else stop
        if not 0 <= start <= stop <= length:
            raise DataError(f"{self.root}: steps [{start}, {stop}) out of range for episode "
                            f"{episode} of length {length}")
        row = int(self._episode_row[episode])
        return self._map(int(self._episode_shard[episode]), field)[row + start:row + stop]

    def close(self) -> None:
        """Drop the memory maps (they are reopened on the next read)."""
        with contextlib.suppress(Exception):
            self._maps.clear()
