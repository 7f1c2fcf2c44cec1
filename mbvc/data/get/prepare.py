"""``get_dataset``: fetch, verify and prepare one dataset under the data root, once.

For each published file, in order: skip it when the manifest already holds it; else take it
from ``--from`` or from the dataset folder (put there by hand), else download it into
``<file>.partial``; check its content (unpacking archives as they are checked); then rename
it (the ``.npy``), or remove the downloaded archive (``keep_archives`` keeps it), and record
it in the manifest. Files a user gave are never moved or removed. Last, KTH videos are decoded
into the cache the KTH reader uses (:func:`mbvc.data.kth.convert_kth`), and the manifest is
marked complete. Every step resumes where an interrupted run stopped; a complete dataset is
answered from its manifest without any network access.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mbvc.data.get.fetch import Download, Unreachable, download
from mbvc.data.get.manifest import (
    dataset_folder,
    disk_bytes,
    folder_lock,
    human_size,
    missing_files,
    new_manifest,
    read_manifest,
    sha256_file,
    write_manifest,
)
from mbvc.data.get.sources import DatasetSource, RemoteFile, get_source, url_variable
from mbvc.data.get.verify import check_npy, copy_file, unpack_bair_tar, unpack_kth_zip
from mbvc.errors import ConfigError, DataError, OutputError
from mbvc.io import check_writable_place, make_output_folder

log = logging.getLogger(__name__)

#: KTH cache side(s) decoded by default: the reference's 128 (the kth-predrnn presets).
KTH_IMAGE_SIZES = (128,)
KTH_CACHE_DIR = "mbvc_cache"


@dataclass
class GetReport:
    """What :func:`get_dataset` did.

    Attributes:
        name: the dataset.
        folder: its folder (what ``data.root`` reads).
        already: it was complete before this call (nothing fetched or checked).
        fetched: bytes downloaded by this call.
        seconds: wall time per step (``download``, ``check and unpack``, ``decode``).
        wall: wall time of the whole call (the steps, imports, manifest writes...).
        disk: bytes of the files in ``folder`` afterwards.
        built_caches: caches decoded by this call (relative to ``folder``).
    """

    name: str
    folder: Path
    already: bool = False
    fetched: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0
    disk: int = 0
    built_caches: list[str] = field(default_factory=list)


def get_dataset(dataset: str | DatasetSource, root: str | os.PathLike | None = None,
                source_path: str | os.PathLike | None = None, image_sizes: tuple[int, ...] | None = None,
                keep_archives: bool = False, progress: bool | None = None, retries: int = 5,
                retry_wait: float = 2.0) -> GetReport:
    """Download (or take from ``source_path``), verify and prepare ``dataset`` under ``root``.

    Args:
        dataset: ``moving_mnist``, ``kth``, ``bair`` or a :class:`DatasetSource` (tests pass
            smaller specs).
        root: the data root (default ``$MBVC_DATA``, else ``~/.cache/mbvc/data``); the dataset
            goes to ``<root>/<name>``.
        source_path: a published file downloaded elsewhere, or a folder holding some of them
            (``--from``); files not found there are downloaded.
        image_sizes: KTH only: the cache sides to decode (missing ones are decoded, also on a
            complete dataset); None: :data:`KTH_IMAGE_SIZES` on a first run, none on a complete dataset.
        keep_archives: keep downloaded zip/tar archives after unpacking.
        progress: tqdm bars for downloads (None: only when stderr is a terminal).
        retries, retry_wait: resuming a broken connection (see :func:`~mbvc.data.get.fetch.download`).

    Returns:
        A :class:`GetReport` (time per step and disk used).

    Raises:
        ConfigError: an unknown dataset, or a ``--from`` path that is missing or holds none of its files.
        DataError: unreachable server (one line saying where to put the files by hand), HTTP
            error, or content that is not the published one; nothing is marked complete.
        OutputError: the root is read-only or the disk is full; what was downloaded stays.
    """
    start = time.perf_counter()
    src = get_source(dataset) if isinstance(dataset, str) else dataset
    folder = dataset_folder(src.name, root)
    report = GetReport(src.name, folder)
    local = _local_files(src, source_path)
    option = "--root" if root is not None else "the data root"  # else $MBVC_DATA or the default
    check_writable_place(folder, option)
    make_output_folder(folder, option)
    with folder_lock(folder):
        _remove_temporaries(folder)
        manifest = read_manifest(folder) or new_manifest(src.name)
        _forget_missing(folder, manifest)
        if manifest["complete"]:
            report.already = True
        for file in src.files:
            if file.name not in manifest["sources"]:
                _get_file(src, file, folder, local, manifest, report, keep_archives, progress, retries, retry_wait)
        if src.kind == "kth":
            sizes = image_sizes if image_sizes is not None else () if report.already else KTH_IMAGE_SIZES
            _decode_kth(folder, manifest, sizes, report)
        report.wall = time.perf_counter() - start
        if not report.already or report.built_caches:
            manifest["complete"] = True
            manifest["seconds"] = round(manifest.get("seconds", 0) + report.wall, 1)
            manifest["bytes"] = disk_bytes(folder)
            write_manifest(folder, manifest)
        report.disk = manifest.get("bytes") or disk_bytes(folder)
    return report


def _local_files(src: DatasetSource, source_path: str | os.PathLike | None) -> dict[str, Path]:
    """Published file name -> the local copy ``--from`` names."""
    if source_path is None:
        return {}
    path = Path(source_path).expanduser()
    names = ", ".join(f.name for f in src.files)
    if path.is_dir():
        found = {f.name: path / f.name for f in src.files if (path / f.name).is_file()}
        if not found:
            raise ConfigError(f"--from {path} holds none of the files of {src.name} (expected {names})")
        return found
    if not path.is_file():
        raise ConfigError(f"--from {path} does not exist (expected {names} or a folder holding them)")
    if len(src.files) == 1:  # a single published file may have been saved under another name
        return {src.files[0].name: path}
    if path.name not in {f.name for f in src.files}:
        raise ConfigError(f"--from {path}: expected one of {names} (or a folder holding them)")
    return {path.name: path}


def _remove_temporaries(folder: Path) -> None:
    """Remove the temporary files of unpacking that a killed run left (``.<name>.<random>.tmp*``).

    Not under the readers' cache, which a training run may be building now (it resumes its own).
    """
    for path in folder.rglob(".*.tmp*"):
        if path.is_file() and KTH_CACHE_DIR not in path.relative_to(folder).parts:
            path.unlink()


def _forget_missing(folder: Path, manifest: dict[str, Any]) -> None:
    """Drop the published files whose unpacked files are gone, so they are fetched again."""
    missing = set(missing_files(folder, manifest))
    if not missing:
        return
    for name, entry in list(manifest["sources"].items()):
        if missing & set(entry.get("outputs", [])):
            del manifest["sources"][name]
            for rel in entry["outputs"]:
                manifest["files"].pop(rel, None)
    manifest["caches"] = [c for c in manifest["caches"] if c not in missing]
    log.warning("%s: %d file(s) listed in the manifest are missing or changed (e.g. %s): fetching them again",
                folder, len(missing), sorted(missing)[0])
    manifest["complete"] = False


def _get_file(src: DatasetSource, file: RemoteFile, folder: Path, local: dict[str, Path], manifest: dict[str, Any],
              report: GetReport, keep_archives: bool, progress: bool | None, retries: int, retry_wait: float) -> None:
    """Obtain, check, put in place and record one published file."""
    report.already = False
    path, own, where, entry = _obtain(src, file, folder, local, report, progress, retries, retry_wait)
    start = time.perf_counter()
    try:
        outputs = _check(src, file, path, folder, where, manifest["files"])
    except DataError as e:
        if own:  # bad bytes cannot be resumed: the next run fetches the file anew
            path.unlink(missing_ok=True)
            raise DataError(f"{e}; the download was removed: run again to fetch it anew") from None
        raise
    final = folder / file.name
    if src.kind == "npy":  # the file is the dataset: it goes to its place under its published name
        if own:
            os.replace(path, final)
        elif path != final:
            entry["sha256"] = copy_file(path, final)["sha256"]
        entry.setdefault("sha256", sha256_file(final))
        outputs = {file.name: {"size": entry["size"], "sha256": entry["sha256"]}}
    else:  # an archive, unpacked: a downloaded one is removed unless asked to keep it
        entry.setdefault("sha256", sha256_file(path))
        if own and keep_archives:
            os.replace(path, final)
        elif own:
            path.unlink()
    entry["outputs"] = sorted(outputs)
    manifest["sources"][file.name] = entry
    manifest["files"].update(outputs)
    write_manifest(folder, manifest)
    _add_time(report, "check and unpack", start)
    log.info("%s: verified (sha256 %s), %d file(s) in place", file.name, entry["sha256"][:12], len(outputs))


def _obtain(src: DatasetSource, file: RemoteFile, folder: Path, local: dict[str, Path], report: GetReport,
            progress: bool | None, retries: int, retry_wait: float) -> tuple[Path, bool, str, dict[str, Any]]:
    """``(path, own, name for messages, manifest entry)`` of ``file``: a user's copy, else a download."""
    final = folder / file.name
    given = local.get(file.name) or (final if final.is_file() else None)
    if given is not None:  # a user's file: checked where it is, never moved or removed
        origin = "placed by hand" if given == final else str(given.resolve())
        return given, False, str(given), {"size": given.stat().st_size, "from": origin}
    start = time.perf_counter()
    path, got = _download(src, file, folder, progress, retries, retry_wait)
    report.fetched += got.fetched
    _add_time(report, "download", start)
    url = src.url(file)
    return path, True, f"{file.name} from {url}", {"size": got.size, "sha256": got.sha256, "from": url}


def _add_time(report: GetReport, step: str, start: float) -> None:
    report.seconds[step] = report.seconds.get(step, 0.0) + time.perf_counter() - start


def _download(src: DatasetSource, file: RemoteFile, folder: Path, progress: bool | None, retries: int,
              retry_wait: float) -> tuple[Path, Download]:
    """Download ``file`` into ``<folder>/<file>.partial``, turning failures into one-line errors."""
    partial = folder / f"{file.name}.partial"
    url = src.url(file)
    log.info("downloading %s (about %s) from %s", file.name, human_size(file.size), url)
    try:
        return partial, download(url, partial, retries=retries, retry_wait=retry_wait, progress=progress)
    except Unreachable as e:
        have = partial.stat().st_size if partial.is_file() else 0
        kept = f"; the {human_size(have)} already downloaded stay in {partial}" if have else ""
        missing = [f.name for f in src.files if not (folder / f.name).is_file()]
        raise DataError(f"{e}. Without a network: download {', '.join(missing)} from {src.page} on another machine "
                        f"and put {'it' if len(missing) == 1 else 'them'} in {folder} (then run `mbvc data get {src.name}` again), or pass "
                        f"--from FILE_OR_DIR{kept} (a mirror: set {url_variable(src.name)})") from None
    except OutputError as e:
        have = partial.stat().st_size if partial.is_file() else 0
        err = OutputError(f"{e}; the {human_size(have)} downloaded so far stay in {partial}: the same command "
                          "resumes once there is room (or use --root on another disk)")
        err.errno = e.errno
        raise err from None


def _check(src: DatasetSource, file: RemoteFile, path: Path, folder: Path, where: str,
           done: dict[str, Any]) -> dict[str, Any]:
    """Content checks (unpacking archives); the files put in place, ``{rel: {size, sha256}}``."""
    if src.kind == "npy":
        check_npy(path, src.npy_shape, src.npy_dtype, where)
        return {}
    if src.kind == "kth":
        return unpack_kth_zip(path, file.name.removesuffix(".zip"), folder, where, done)
    return unpack_bair_tar(path, folder, where, done)


def _decode_kth(folder: Path, manifest: dict[str, Any], image_sizes: tuple[int, ...], report: GetReport) -> None:
    """Decode the KTH videos into the reader's cache ``<folder>/mbvc_cache/kth_<split>_<size>`` (once)."""
    from mbvc.data.kth import cache_name, convert_kth

    start = time.perf_counter()
    for size in image_sizes:
        for split in ("train", "test"):
            rel = f"{KTH_CACHE_DIR}/{cache_name(split, size)}"
            if rel in manifest["caches"] and (folder / rel / "manifest.json").is_file():
                continue
            convert_kth(folder, folder / KTH_CACHE_DIR, split, size, source="avi")
            manifest["caches"].append(rel)
            report.built_caches.append(rel)
            write_manifest(folder, manifest)
    if report.built_caches:
        report.seconds["decode"] = time.perf_counter() - start
