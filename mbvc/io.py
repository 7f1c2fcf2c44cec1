"""Small file-system helpers shared by checkpoints, datasets and reports.

Everything mbvc writes goes through :func:`atomic_write`: the data lands in a temporary file in
the destination folder and is renamed over the target only once complete, so a run killed
mid-write never leaves a truncated file where a good one was.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def _read_umask() -> int:
    # os.umask can only be read by setting it; do it once, at import, before any threads write files.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()


def _fresh_temp(path: Path, suffix: str) -> tuple[int, str]:
    """``mkstemp`` next to ``path``, given the mode a plain ``open`` would (mkstemp makes 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.fchmod(fd, _FILE_MODE)
    return fd, tmp


#: errno values of a write that failed because of where it writes, not what it writes.
_WRITE_ERRNOS = {errno.EFBIG, errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
                 errno.EISDIR, errno.EIO, errno.EEXIST, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _is_write_error(exc: OSError) -> bool:
    """A failed write (full disk, file-size limit, read-only...), not e.g. a missing input file.

    numpy reports a short write as a bare ``OSError("N requested and M written")`` without errno.
    """
    return exc.errno in _WRITE_ERRNOS or (exc.errno is None and exc.filename is None)


def output_error(path: str | os.PathLike, exc: OSError, option: str | None = None) -> Exception:
    """An :class:`~mbvc.errors.OutputError` naming ``path`` (and the option that gave it) for ``exc``."""
    from mbvc.errors import MbvcError, OutputError

    if isinstance(exc, MbvcError):
        return exc
    what = f"{option} {path}" if option else str(path)
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno is None:  # numpy's short write: "N requested and M written"
        reason = f"{reason} (the disk is full or a file-size limit was reached)"
    culprit = f" ({exc.filename})" if exc.filename and Path(exc.filename) != Path(path) else ""
    err = OutputError(f"cannot write {what}: {reason}{culprit}")
    err.errno = exc.errno
    return err


def _mkdir_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(path, e) from None


def make_output_folder(path: str | os.PathLike, option: str = "-o") -> Path:
    """Create the output folder ``path`` (and its parents), naming it on failure.

    Raises:
        OutputError: a parent is a file, the place is read-only, the disk is full...
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(path, e, option) from None
    return path


@contextlib.contextmanager
def _replacing(tmp: str, path: Path) -> Iterator[None]:
    """Rename ``tmp`` to ``path`` when the block succeeds; remove it when it fails (a write error: ``OutputError``)."""
    try:
        yield
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and _is_write_error(e):
            raise output_error(path, e) from None
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file next to ``path``; on success fsync it and rename it to ``path``.

    Args:
        path: destination file.
        mode: ``"wb"`` or ``"w"``.

    Yields:
        The open file object. If the block raises, the temporary file is removed and ``path``
        is left untouched.
    """
    path = Path(path)
    _mkdir_parent(path)
    try:
        fd, tmp = _fresh_temp(path, ".tmp")
    except OSError as e:
        raise output_error(path, e) from None
    with _replacing(tmp, path):
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for libraries that write by file name.

    The temporary file is renamed to ``path`` when the block succeeds and removed otherwise.
    """
    path = Path(path)
    _mkdir_parent(path)
    try:
        fd, tmp = _fresh_temp(path, ".tmp" + path.suffix)
        os.close(fd)
    except OSError as e:
        raise output_error(path, e) from None
    with _replacing(tmp, path):
        yield Path(tmp)


def check_output_file(path: str | os.PathLike, overwrite: bool, inputs: Iterable[str | os.PathLike] = (),
                      option: str = "-o") -> None:
    """Refuse to write ``path`` over an input, over a folder, or (without ``overwrite``) over any file.

    Raises:
        ConfigError: ``path`` is one of ``inputs``, a folder, or an existing file and not ``overwrite``.
    """
    from mbvc.errors import ConfigError

    path = Path(path)
    for src in inputs:
        if path.exists() and Path(src).exists() and os.path.samefile(path, src):
            raise ConfigError(f"{option} {path} is the input file; write the output to another path")
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise ConfigError(f"{option} {path} already exists; pass --overwrite to replace it")
    check_writable_place(path, option)


def check_output_folder(path: str | os.PathLike | None, option: str = "-o") -> None:
    """Refuse an output folder argument that names an existing file (before any work is done).

    Raises:
        ConfigError: ``path`` exists and is not a folder.
    """
    from mbvc.errors import ConfigError

    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file; this command writes a folder of files there: give a folder path")
    check_writable_place(path, option)


def check_writable_place(path: str | os.PathLike, option: str = "-o") -> None:
    """Refuse, before any work, an output path that cannot be created or written.

    Walks up from ``path`` (a folder to fill or a file to write) to the nearest thing that
    exists: it must be a folder this process may write into (a regular file there means the
    path lies under a file).

    Raises:
        OutputError: a parent of ``path`` is a file, or the nearest existing folder is read-only.
    """
    from mbvc.errors import OutputError

    path = Path(path)
    here = path if path.is_dir() else path.parent  # a file at ``path`` itself is the caller's to judge
    while not here.exists() and here != here.parent:
        here = here.parent
    if here.exists() and not here.is_dir():
        raise OutputError(f"cannot write {option} {path}: {here} is a file, not a folder")
    if here.is_dir() and not os.access(here, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {option} {path}: {here} is read-only for this user")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=_json_default)
        f.write("\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
