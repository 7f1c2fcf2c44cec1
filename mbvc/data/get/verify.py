"""Check published files by their content, unpacking archives as they are checked.

* ``.npy``: the header's shape and dtype are the published ones and the file holds exactly the
  bytes the header promises.
* KTH zip: every member is read to its end, so :mod:`zipfile` checks its CRC-32; the videos
  (``person01_walking_d1_uncomp.avi``) go to ``<folder>/<action>/``.
* BAIR tar: member names (``softmotion30_44k/{train,test}/traj_<a>_to_<b>.tfrecords``), types and
  sizes against the file (a truncated tar is refused before anything is unpacked); each TFRecord
  is unpacked and its record CRCs read once by :func:`mbvc.data.tfrecord_io.iter_records`.

Every unpacked file is written to a temporary name, checked and renamed, so a file under its
real name is whole and checked; a resumed run skips those whose size matches. Each function
returns ``{relative path: {"size", "sha256"}}`` of the files it put in place.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from mbvc.errors import DataError
from mbvc.io import atomic_path

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
FileRecords = dict[str, dict[str, Any]]


def check_npy(path: str | os.PathLike, shape: tuple[int, ...], dtype: str, name: str = "") -> None:
    """Refuse an ``.npy`` file whose header is not ``shape`` / ``dtype`` or whose size is not the header's.

    Args:
        path: the file (e.g. ``mnist_test_seq.npy.partial``).
        shape, dtype: as published.
        name: the published file name, for the message (default: ``path``).

    Raises:
        DataError: not an ``.npy`` file, another shape or dtype, or a size that is not the header's.
    """
    import numpy as np

    from mbvc.data.arrays import read_header

    where = name or str(path)
    with open(path, "rb") as f:
        got_shape, fortran, got_dtype, nbytes = read_header(f, where)
        offset = f.tell()
    if got_shape != tuple(shape) or got_dtype != np.dtype(dtype) or fortran:
        order = ", Fortran order" if fortran else ""
        raise DataError(f"{where}: expected {dtype} {tuple(shape)} as published, got {got_dtype} "
                        f"{got_shape}{order}")
    have, want = Path(path).stat().st_size, offset + nbytes
    if have != want:
        what = "truncated" if have < want else "extra bytes after the array"
        raise DataError(f"{where}: the header promises {want:,} bytes ({dtype} {tuple(shape)}), the file has "
                        f"{have:,} ({what})")


def _copy_checked(src: IO[bytes], dest: Path, check: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """Stream ``src`` into ``dest`` through a temporary file, hashing; ``check(tmp)`` before the rename."""
    h, size = hashlib.sha256(), 0
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
                h.update(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())  # on disk before the manifest lists it
        if check is not None:
            check(tmp)
    return {"size": size, "sha256": h.hexdigest()}


def copy_file(src: str | os.PathLike, dest: str | os.PathLike) -> dict[str, Any]:
    """Copy ``src`` to ``dest`` atomically; returns its size and sha256."""
    with open(src, "rb") as f:
        return _copy_checked(f, Path(dest))


def _done(dest: Path, size: int, done: FileRecords, rel: str) -> bool:
    """Whether ``dest`` was put in place by an earlier run (its size matches): keep its record."""
    try:
        if dest.stat().st_size != size:
            return False
    except OSError:
        return False
    if rel not in done:
        from mbvc.data.get.manifest import sha256_file

        done[rel] = {"size": size, "sha256": sha256_file(dest)}
    return True


# ---------------------------------------------------------------- KTH zip archives
_KTH_VIDEO = re.compile(r"(?:.*/)?(person\d\d_([a-z]+)_d\d_uncomp\.avi)")


def unpack_kth_zip(path: str | os.PathLike, action: str, folder: str | os.PathLike, name: str = "",
                   done: FileRecords | None = None) -> FileRecords:
    """Check every member's CRC of one KTH archive and put its videos in ``<folder>/<action>/``.

    Args:
        path: the zip (``walking.zip`` or its ``.partial``).
        action: the archive's action (``walking``): each video must be one of it.
        folder: the dataset folder.
        name: the published file name, for messages.
        done: records of files already in place (from the manifest of an interrupted run).

    Raises:
        DataError: not a zip, a bad CRC or damaged member (named), a video of another action,
            or no video at all.
    """
    where, folder, done = name or str(path), Path(folder), dict(done or {})
    out: FileRecords = {}
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{where}: not a readable zip archive ({e}); a damaged or truncated download?") from None
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            m = _KTH_VIDEO.fullmatch(info.filename)
            if m and m.group(2) != action:
                raise DataError(f"{where}: member {info.filename} is a {m.group(2)} video, expected only "
                                f"{action} videos (person<NN>_{action}_d<N>_uncomp.avi)")
            rel = f"{action}/{m.group(1)}" if m else None
            if rel and _done(folder / rel, info.file_size, done, rel):
                out[rel] = done[rel]
                continue
            try:
                with archive.open(info) as src:  # read to the end: zipfile checks the CRC-32 there
                    if rel:
                        out[rel] = _copy_checked(src, folder / rel)
                    else:
                        log.warning("%s: member %s is not a KTH video: checked, not unpacked", where, info.filename)
                        while src.read(_CHUNK):
                            pass
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError, RuntimeError) as e:
                raise DataError(f"{where}: member {info.filename}: {e} (the archive is damaged)") from None
    if not out:
        raise DataError(f"{where}: holds no KTH videos (expected person<NN>_{action}_d<N>_uncomp.avi)")
    return out


# ---------------------------------------------------------------- BAIR tar archive
BAIR_DIR = "softmotion30_44k"
_BAIR_RECORD = re.compile(rf"{BAIR_DIR}/(train|test)/traj_\d+_to_\d+\.tfrecords")
_BAIR_SPLIT = re.compile(rf"^{BAIR_DIR}/(train|test)/")
_BLOCK = 512


def bair_members(tar: tarfile.TarFile, path: Path, where: str) -> list[tarfile.TarInfo]:
    """The TFRecord members of the BAIR tar, checked against the file before anything is unpacked.

    Raises:
        DataError: an unexpected member type or name, a member that reaches past the end of the
            file (truncated), a missing end-of-archive marker, or a split without TFRecords.
    """
    records, end, size = [], 0, path.stat().st_size
    for info in tar:
        name = info.name.removeprefix("./")
        end = info.offset_data + -(-info.size // _BLOCK) * _BLOCK
        if info.offset_data + info.size > size:
            raise DataError(f"{where}: truncated: member {name} needs bytes up to {info.offset_data + info.size:,}, "
                            f"the file has {size:,}")
        if name.startswith("/") or ".." in name.split("/"):
            raise DataError(f"{where}: member {name!r} points outside the archive's folder; refused")
        if info.isdir():
            continue
        if info.isfile() and _BAIR_RECORD.fullmatch(name):
            records.append(info)
        elif not info.isfile() or _BAIR_SPLIT.match(name):
            kind = "a file" if info.isfile() else "not a regular file"
            raise DataError(f"{where}: unexpected member {name!r} ({kind}); expected "
                            f"{BAIR_DIR}/{{train,test}}/traj_<a>_to_<b>.tfrecords")
        else:  # outside the split folders the readers use: left out, not a reason to refuse 30 GB
            log.warning("%s: member %s is not a BAIR TFRecord: not unpacked", where, name)
    with open(path, "rb") as f:  # a tar ends with two zero blocks: a file cut between members lacks them
        f.seek(end)
        marker = f.read(2 * _BLOCK)
    if marker != bytes(2 * _BLOCK):  # (tarfile stops quietly at a damaged header: this catches it too)
        raise DataError(f"{where}: truncated or damaged: no end-of-archive marker after the last member it "
                        f"could read (byte {end:,} of {size:,})")
    for split in ("train", "test"):
        if not any(f"/{split}/" in m.name for m in records):
            raise DataError(f"{where}: holds no {BAIR_DIR}/{split}/*.tfrecords")
    return records


def unpack_bair_tar(path: str | os.PathLike, folder: str | os.PathLike, name: str = "",
                    done: FileRecords | None = None) -> FileRecords:
    """Check the BAIR tar's members and unpack them into ``<folder>/softmotion30_44k/{train,test}/``.

    Each TFRecord's record CRCs are read once (:func:`~mbvc.data.tfrecord_io.iter_records`)
    before it gets its real name.

    Raises:
        DataError: not a tar, an unexpected member, a truncated tar, or a record whose CRC or
            length is wrong (naming the member and record).
    """
    from mbvc.data.tfrecord_io import iter_records

    where, folder, done = name or str(path), Path(folder), dict(done or {})
    out: FileRecords = {}
    try:
        tar = tarfile.open(path, "r:")
    except (tarfile.TarError, OSError) as e:
        raise DataError(f"{where}: not a readable (uncompressed) tar archive ({e})") from None
    with tar:
        try:
            records = bair_members(tar, Path(path), where)
        except tarfile.TarError as e:
            raise DataError(f"{where}: damaged tar archive ({e})") from None
        for info in records:
            rel = info.name.removeprefix("./")
            if _done(folder / rel, info.size, done, rel):
                out[rel] = done[rel]
                continue

            def crc(tmp: Path, rel: str = rel, want: int = info.size) -> None:
                if tmp.stat().st_size != want:
                    raise DataError(f"{where}: member {rel}: {tmp.stat().st_size:,} bytes, the header says {want:,}")
                try:
                    for _ in iter_records(tmp, check_crc=True):
                        pass
                except DataError as e:
                    raise DataError(f"{where}: member {rel}: {str(e).replace(str(tmp), rel)}") from None

            src = tar.extractfile(info)
            if src is None:  # pragma: no cover - isfile() members always have data
                raise DataError(f"{where}: member {rel} has no data")
            try:
                with src:
                    out[rel] = _copy_checked(src, folder / rel, crc)
            except (tarfile.TarError, EOFError) as e:  # the archive ends inside a member
                raise DataError(f"{where}: member {rel}: {e} (the archive is damaged or truncated)") from None
    return out
