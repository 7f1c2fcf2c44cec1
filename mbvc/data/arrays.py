"""Bounded readers of ``.npy`` / ``.npz`` files: sizes are checked before anything is allocated.

A ``.npy`` header states the array's shape and dtype; ``np.load`` trusts it and allocates that
many bytes before it reads one. A 192-byte file whose header declares 745 GiB would make mbvc
ask the allocator for 745 GiB. Every reader here parses the header first and refuses

* a header promising more data than the file (or the zip member) holds: a truncated or corrupt
  file;
* an array that would be read into memory and is larger than :func:`max_array_bytes`
  (``MBVC_MAX_ARRAY_GIB``, default 16 GiB; memory-mapped arrays are not bounded by it, since
  they are not read into memory, but must fit in their file).

All errors are :class:`~mbvc.errors.DataError` naming the file (and the member of an ``.npz``).
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from mbvc.errors import DataError

#: Environment variable holding the largest array (GiB) mbvc reads into memory.
MAX_ARRAY_ENV = "MBVC_MAX_ARRAY_GIB"
DEFAULT_MAX_ARRAY_GIB = 16.0
#: deflate cannot expand data by more than about 1032:1; a member claiming more is corrupt.
_MAX_DEFLATE_RATIO = 1100


def max_array_bytes() -> int:
    """The largest array (bytes) mbvc reads into memory: ``$MBVC_MAX_ARRAY_GIB`` GiB, default 16.

    Raises:
        DataError: the variable is set to something that is not a positive number.
    """
    raw = os.environ.get(MAX_ARRAY_ENV, "").strip()
    if not raw:
        return int(DEFAULT_MAX_ARRAY_GIB * 2**30)
    try:
        gib = float(raw)
    except ValueError:
        gib = float("nan")
    if not (gib > 0 and np.isfinite(gib)):
        raise DataError(f"environment variable {MAX_ARRAY_ENV}={raw!r}: expected a positive number of GiB")
    return int(gib * 2**30)


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**20 else f"{int(n)} bytes"


def check_in_memory_size(nbytes: int, where: str, what: str = "array") -> None:
    """Refuse to allocate ``nbytes`` for ``what`` of ``where`` above :func:`max_array_bytes`.

    Raises:
        DataError: naming ``where``, the size and how to raise the limit.
    """
    limit = max_array_bytes()
    if nbytes > limit:
        raise DataError(f"{where}: the {what} would take {_gib(nbytes)} of memory, above the limit of "
                        f"{_gib(limit)}; if that is intended, raise it with the environment variable "
                        f"{MAX_ARRAY_ENV} (e.g. {MAX_ARRAY_ENV}={max(1, int(np.ceil(nbytes / 2**30)) + 1)})")


def read_header(f: IO[bytes], where: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """Parse a ``.npy`` header at the current position of ``f``.

    Returns:
        ``(shape, fortran_order, dtype, nbytes)`` where ``nbytes`` is the data size it declares.

    Raises:
        DataError: not a ``.npy`` header, or an object dtype.
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f, max_header_size=2**16)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(f, max_header_size=2**16)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        raise DataError(f"{where}: not a readable .npy array (bad header: {e})") from None
    if dtype.hasobject:
        raise DataError(f"{where}: the array holds Python objects (dtype {dtype}); expected numbers")
    if any(int(s) < 0 for s in shape):
        raise DataError(f"{where}: corrupt .npy header: negative size in shape {tuple(shape)}")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    return tuple(int(s) for s in shape), bool(fortran), dtype, nbytes


def _check_fits(nbytes: int, available: int, where: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if nbytes > available:
        raise DataError(f"{where}: truncated or corrupt: its header declares a {dtype} array of shape "
                        f"{shape} ({_gib(nbytes)}) but only {_gib(available)} of data follow")


def npy_info(path: str | os.PathLike) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """``(shape, fortran, dtype, data_offset)`` of a ``.npy`` file, checked against its size."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            shape, fortran, dtype, nbytes = read_header(f, str(path))
            offset = f.tell()
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
    _check_fits(nbytes, size - offset, str(path), shape, dtype)
    return shape, fortran, dtype, offset


def load_npy(path: str | os.PathLike, mmap: bool = False) -> np.ndarray:
    """A ``.npy`` array, its header checked first: memory-mapped (``mmap``) or read into memory.

    Raises:
        DataError: unreadable, truncated, object dtype, or (read into memory) above the limit.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such .npy file")
    shape, fortran, dtype, offset = npy_info(path)
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes == 0:
        return np.zeros(shape, dtype, order="F" if fortran else "C")
    order = "F" if fortran else "C"
    try:
        if mmap:
            return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)
        check_in_memory_size(nbytes, str(path))
        with open(path, "rb") as f:
            f.seek(offset)
            data = np.fromfile(f, dtype=dtype, count=int(np.prod(shape)))
        return data.reshape(shape, order=order)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npy array ({e})") from None


class NpzFile:
    """An ``.npz`` archive opened for bounded reads of its members (use as a context manager).

    Raises (on open):
        DataError: not a zip archive (e.g. truncated), or unreadable.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such .npz file")
        try:
            self._zip = zipfile.ZipFile(self.path)
            self._infos = {i.filename[:-4]: i for i in self._zip.infolist() if i.filename.endswith(".npy")}
        except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as e:
            raise DataError(f"{self.path}: not a readable .npz archive, truncated or corrupt "
                            f"({type(e).__name__}: {e})") from None

    @property
    def files(self) -> list[str]:
        """Names of the arrays in the archive."""
        return list(self._infos)

    def __enter__(self) -> NpzFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def _where(self, key: str) -> str:
        return f"{self.path}[{key}]"

    def get(self, key: str, mmap: bool = False) -> np.ndarray:
        """Array ``key``: memory-mapped when stored uncompressed and ``mmap``, else read (bounded).

        Raises:
            DataError: no such member, a corrupt member, or (read into memory) above the limit.
        """
        info = self._infos.get(key)
        if info is None:
            raise DataError(f"{self.path} has no array {key!r} (it holds {self.files})")
        where = self._where(key)
        try:
            with self._zip.open(info) as f:
                shape, fortran, dtype, nbytes = read_header(f, where)
                header_len = f.tell()
                if info.compress_type == zipfile.ZIP_STORED:
                    _check_fits(nbytes, info.file_size - header_len, where, shape, dtype)
                else:
                    _check_fits(nbytes, max(info.file_size - header_len, 0), where, shape, dtype)
                    _check_fits(nbytes, info.compress_size * _MAX_DEFLATE_RATIO, where, shape, dtype)
                order = "F" if fortran else "C"
                count = int(np.prod(shape))
                if count == 0:
                    return np.zeros(shape, dtype, order=order)
                if mmap and info.compress_type == zipfile.ZIP_STORED:
                    offset = self._data_offset(info) + header_len
                    return np.memmap(self.path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)
                check_in_memory_size(nbytes, where)
                raw = f.read(nbytes)
        except DataError:
            raise
        except Exception as e:  # noqa: BLE001 - OSError, EOFError, BadZipFile (CRC), zlib.error...
            raise DataError(f"{where}: truncated or corrupt array ({type(e).__name__}: {e})") from None
        if len(raw) != nbytes:
            raise DataError(f"{where}: truncated: {len(raw)} of {nbytes} bytes of data")
        return np.frombuffer(raw, dtype=dtype).reshape(shape, order=order).copy()

    def _data_offset(self, info: zipfile.ZipInfo) -> int:
        """File offset of a stored member's first byte (after its local file header)."""
        with open(self.path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)  # local file header: name and extra lengths at bytes 26..29
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise DataError(f"{self._where(info.filename[:-4])}: corrupt zip local header")
        return info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")


def load_npz_member(path: str | os.PathLike, key: str, mmap: bool = False) -> np.ndarray:
    """One array of an ``.npz`` file, bounded (see :class:`NpzFile`)."""
    with NpzFile(path) as z:
        return z.get(key, mmap=mmap)
