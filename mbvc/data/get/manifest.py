"""The manifest of a fetched dataset: what was verified, its sha256, and whether it is complete.

A dataset lives in ``<root>/<name>/`` with ``mbvc-data.json`` next to its files::

    {"format": "mbvc-data", "version": 1, "dataset": "kth", "complete": true,
     "sources": {"walking.zip": {"size": ..., "sha256": ..., "from": "<address or path>"}},
     "files": {"walking/person01_walking_d1_uncomp.avi": {"size": ..., "sha256": ...}, ...},
     "caches": ["mbvc_cache/kth_train_128", ...], "seconds": ..., "bytes": ...}

``sources`` are the published files as verified (archives may be gone once unpacked),
``files`` what the readers use. The manifest is rewritten atomically after each published file
is done, so an interrupted ``mbvc data get`` resumes after it; ``complete`` is set last. A
dataset counts as present when its manifest is complete and every file it lists is there with
its size (a stat per file, no reading), which is what a training run checks.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mbvc.data.get.sources import default_root
from mbvc.errors import DataError
from mbvc.io import write_json

try:  # advisory lock: two processes filling one folder would interleave their files
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

MANIFEST = "mbvc-data.json"
FORMAT = "mbvc-data"
VERSION = 1
_CHUNK = 1 << 20


def new_manifest(name: str) -> dict[str, Any]:
    """An empty, incomplete manifest of dataset ``name``."""
    return {"format": FORMAT, "version": VERSION, "dataset": name, "complete": False,
            "sources": {}, "files": {}, "caches": []}


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest in ``folder``, or None when there is none (or it is not mbvc's)."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        return None
    for key, empty in (("sources", {}), ("files", {}), ("caches", [])):
        if not isinstance(manifest.get(key), type(empty)):
            return None
    return manifest


def write_manifest(folder: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` into ``folder`` atomically (a kill leaves the old one or the new one)."""
    write_json(Path(folder) / MANIFEST, manifest)


def missing_files(folder: str | os.PathLike, manifest: dict[str, Any]) -> list[str]:
    """The files (and caches) the manifest lists that are absent or changed in size."""
    folder = Path(folder)
    bad = []
    for rel, entry in manifest["files"].items():
        try:
            if (folder / rel).stat().st_size != entry["size"]:
                bad.append(rel)
        except OSError:
            bad.append(rel)
    bad += [c for c in manifest["caches"] if not (folder / c / "manifest.json").is_file()]
    return bad


def status(folder: str | os.PathLike) -> tuple[str, str]:
    """``(state, detail)`` of the dataset folder ``folder``.

    States: ``present`` (complete manifest, every file there with its size), ``damaged``
    (complete manifest, but files missing or changed), ``incomplete`` (an interrupted
    ``mbvc data get``), ``absent``.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        try:
            started = folder.is_dir() and any(not p.name.startswith(".") for p in folder.iterdir())  # not .lock
        except OSError:  # unreadable: nothing mbvc can use is there
            started = False
        return ("incomplete", "files there but no manifest yet") if started else ("absent", "")
    if not manifest["complete"]:
        done = len(manifest["sources"])
        return "incomplete", f"{done} published file(s) done"
    missing = missing_files(folder, manifest)
    if missing:
        return "damaged", f"{len(missing)} file(s) missing or changed, e.g. {missing[0]}"
    return "present", f"{len(manifest['files'])} file(s), {human_size(manifest.get('bytes', 0))}"


def dataset_folder(name: str, root: str | os.PathLike | None = None) -> Path:
    """``<root>/<name>``; ``root`` defaults to :func:`~mbvc.data.get.sources.default_root`."""
    return Path(default_root() if root is None else root).expanduser().absolute() / name


def complete_folder(name: str, root: str | os.PathLike | None = None) -> Path | None:
    """The folder of dataset ``name`` under ``root`` when it is present (complete), else None."""
    folder = dataset_folder(name, root)
    return folder if status(folder)[0] == "present" else None


def sha256_file(path: str | os.PathLike, hasher: Any = None) -> Any:
    """Hex sha256 of a file, read in 1 MiB chunks; with ``hasher``, that hasher fed with the file."""
    h = hashlib.sha256() if hasher is None else hasher
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest() if hasher is None else h


def disk_bytes(folder: str | os.PathLike) -> int:
    """Bytes of the regular files under ``folder`` (what ``data get`` reports as disk used)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and not p.is_symlink())


def human_size(n: float) -> str:
    """``n`` bytes as ``781 MiB`` / ``30.1 GiB``."""
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder/.lock`` (one process fills a dataset folder at a time); the kernel frees it on exit."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    handle = open(folder / ".lock", "a+")  # noqa: SIM115 - held for the block
    locked = False
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except OSError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            raise DataError(f"{folder} is being filled by another mbvc data get (pid {pid}); wait for it "
                            "or stop it, then run again") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        with contextlib.suppress(OSError):  # only the holder tidies: the lock file is another process's otherwise
            if locked and [p.name for p in folder.iterdir()] == [".lock"]:  # a start that stored nothing
                (folder / ".lock").unlink()
                folder.rmdir()
        handle.close()
