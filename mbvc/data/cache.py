"""Where dataset caches go, and how a cache build starts and ends cleanly.

KTH and BAIR are converted once into a cache, by default ``<root>/mbvc_cache`` next to the
data. A shared download is often read-only: then a complete cache already there is used, and a
missing one is built in the user's cache folder (``$XDG_CACHE_HOME/mbvc``, else
``~/.cache/mbvc``) instead, with a log line saying where.

A cache is built in ``<cache_dir>/.<name>.partial`` (mbvc's own folder) and renamed when
complete. :func:`partial_build` keeps that folder from turning into debris: a partial build of
other source files (a file was deleted or replaced since) is discarded and started again, and
one that failed before storing anything is removed.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mbvc.data.store import MANIFEST, read_manifest
from mbvc.errors import DataError

log = logging.getLogger(__name__)

DEFAULT_NAME = "mbvc_cache"


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/mbvc``, else ``~/.cache/mbvc``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mbvc"


def _writable(folder: Path) -> bool:
    """Whether ``folder`` (or, if missing, its nearest existing parent) accepts new files."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.access(folder, os.W_OK | os.X_OK)


def resolve_cache_dir(root: str | os.PathLike, cache_dir: str | os.PathLike | None, name: str) -> Path:
    """The folder for cache ``name`` of the dataset at ``root``.

    Args:
        root: the dataset folder.
        cache_dir: ``data.cache_dir`` (used as given when set).
        name: the cache's folder name, e.g. ``kth_train_128``.

    Returns:
        ``cache_dir``; else ``<root>/mbvc_cache`` when it holds ``name`` or can be written; else a
        folder of :func:`user_cache_dir` named after ``root`` (one per dataset folder).
    """
    if cache_dir:
        return Path(cache_dir)
    default = Path(root) / DEFAULT_NAME
    if (default / name).is_dir() or _writable(default):
        return default
    resolved = Path(root).resolve()
    tag = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    fallback = user_cache_dir() / f"{resolved.name or 'data'}-{tag}"
    log.info("%s is read-only: building the %s cache in %s (set data.cache_dir to choose)", root, name, fallback)
    return fallback


@contextlib.contextmanager
def partial_build(partial: Path, spec: dict[str, Any]) -> Iterator[None]:
    """Guard the build of a cache in its ``.partial`` folder.

    Before: a partial folder written for another spec (other source files or options) is
    removed, so the build starts again instead of failing on a stale manifest. After a failure:
    a partial folder that stored nothing is removed (with its parent, if that is left empty), so
    a bad source (e.g. an empty TFRecord) leaves no debris. A write refused by the file system
    becomes a :class:`DataError` naming the folder and ``data.cache_dir``.
    """
    from mbvc.data.store import SequenceWriter

    if (partial / MANIFEST).is_file():
        try:
            stale = read_manifest(partial)["spec"] != SequenceWriter.normalise(spec)
        except DataError:
            stale = True
        if stale:
            log.warning("discarding %s: an unfinished cache build of other source files or options", partial)
            shutil.rmtree(partial)
    try:
        yield
    except OSError as e:
        _discard_if_empty(partial)
        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise DataError(f"cannot write the dataset cache {partial.parent} ({e.strerror}); set data.cache_dir "
                        "to a writable folder") from None
    except BaseException:
        _discard_if_empty(partial)
        raise


def _discard_if_empty(partial: Path) -> None:
    with contextlib.suppress(OSError, DataError):
        if partial.is_dir() and read_manifest(partial)["num_episodes"] == 0:
            shutil.rmtree(partial)
    with contextlib.suppress(OSError):
        partial.parent.rmdir()  # only succeeds when empty: a folder made for this build
