"""Small file-system helpers shared by checkpoints, datasets and reports.

Everything mbvc writes goes through :func:`atomic_write`: the data lands in a temporary file in
the destination folder and is renamed over the target only once complete, so a run killed
mid-write never leaves a truncated file where a good one was.
"""
from __future__ import annotations

import contextlib
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _fresh_temp(path, ".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for libraries that write by file name.

    The temporary file is renamed to ``path`` when the block succeeds and removed otherwise.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _fresh_temp(path, ".tmp" + path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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


def check_output_folder(path: str | os.PathLike | None, option: str = "-o") -> None:
    """Refuse an output folder argument that names an existing file (before any work is done).

    Raises:
        ConfigError: ``path`` exists and is not a folder.
    """
    from mbvc.errors import ConfigError

    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise ConfigError(f"{option} {path} is a file; this command writes a folder of files there: give a folder path")


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
