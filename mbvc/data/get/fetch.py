"""HTTP downloads that resume: ``urllib`` with range requests into a ``.partial`` file.

A download appends to ``<file>.partial`` from where the last one stopped (``Range:
bytes=N-``). A server that ignores the range and answers 200 with the whole file is read from
the start again, never appended. A connection that breaks (reset, timeout, closed before the
promised length) is retried with a range request a few times, then reported with the bytes
kept for the next run. Writes the file system refuses (full disk, read-only) raise
:class:`~mbvc.errors.OutputError` naming the file and leave the bytes already written in place.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mbvc.data.get.manifest import sha256_file
from mbvc.errors import DataError
from mbvc.io import output_error

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
#: Exceptions of a connection that broke after it was made (reset, timeout, TLS error, garbled reply).
_BROKEN = (OSError, http.client.HTTPException)


class Unreachable(DataError):
    """The server could not be reached at all (no network, a name that does not resolve, refused)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach {url} ({reason})")
        self.url, self.reason = url, reason


class _Broken(Exception):
    """The connection broke mid-body; the bytes written so far are kept."""


@dataclass(frozen=True)
class Download:
    """What :func:`download` fetched.

    Attributes:
        sha256: hex sha256 of the whole file.
        size: bytes of the whole file.
        fetched: bytes received in this call (a resumed download fetches only the rest).
    """

    sha256: str
    size: int
    fetched: int


def download(url: str, partial: str | Path, retries: int = 5, retry_wait: float = 2.0, progress: bool | None = None,
             timeout: float = 60.0) -> Download:
    """Fetch ``url`` into ``partial``, resuming from the bytes already there.

    Args:
        url: the address.
        partial: the ``.partial`` file (created with its folder if missing).
        retries: how often a broken connection is resumed before giving up.
        retry_wait: seconds before the first retry (doubled each time).
        progress: show a tqdm bar on stderr (None: only when stderr is a terminal).
        timeout: seconds a connect or read may wait.

    Returns:
        The file's sha256, size and the bytes fetched.

    Raises:
        Unreachable: no connection could be made (the caller says where to put the file by hand).
        DataError: an HTTP error (404...), naming the address; or the connection broke more than
            ``retries`` times (the bytes stay for the next run).
        OutputError: the file system refused a write (the bytes written before stay).
    """
    partial = Path(partial)
    fetched = 0
    attempt = 0
    while True:
        try:
            result = _attempt(url, partial, progress, timeout)
            return Download(result.sha256, result.size, fetched + result.fetched)
        except Unreachable as e:
            if not (fetched or _size(partial)):  # never connected: offline, said in one line by the caller
                raise
            # reached before, lost now (a dropped route mid-download): as worth a retry as a broken reply
            error: _Broken = _Broken(f"cannot reconnect ({e.reason})", 0)
        except _Broken as e:
            error = e
        fetched += error.args[1]
        attempt = 0 if error.args[1] else attempt + 1  # the budget counts attempts that made no progress
        if attempt > retries:
            raise DataError(f"{url}: the connection broke {retries + 1} times without progress, last at byte "
                            f"{_size(partial):,} ({error.args[0]}); the bytes are kept in {partial}: run "
                            "the same command again to resume") from None
        wait = retry_wait * 2 ** max(attempt - 1, 0)
        log.warning("%s: %s; resuming at byte %d in %.0f s", url, error.args[0], _size(partial), wait)
        time.sleep(wait)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _open(url: str, partial: Path, have: int, timeout: float) -> http.client.HTTPResponse | None:
    """The response to a (ranged) GET, or None when the ``have`` bytes in ``partial`` are the whole file."""
    headers = {"User-Agent": "mbvc-data-get", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing after byte ``have``: complete, or longer than the file
            total = _total(e.headers.get("Content-Range", ""))
            if total == have:
                return None
            _truncate(partial)  # the file changed on the server: what is here is not a prefix of it
            raise _Broken(f"the server has {total if total is not None else 'fewer'} bytes, {have} were here: "
                          "starting again", 0) from None
        hint = ("; the address may have moved: see the dataset's page (mbvc data list), or download the file "
                "by hand and pass --from FILE") if e.code in (403, 404, 410) else ""
        if e.code in (429, 500, 502, 503, 504):  # the server is busy or restarting: worth a retry
            raise _Broken(f"HTTP {e.code} {e.reason}", 0) from None
        raise DataError(f"{url}: HTTP {e.code} {e.reason}{hint}") from None
    except (ValueError, http.client.InvalidURL) as e:  # a malformed address (a mirror variable's typo)
        raise DataError(f"{url}: not a usable address ({e})") from None
    except urllib.error.URLError as e:  # the request could not be sent: no connection at all
        raise Unreachable(url, str(getattr(e.reason, "strerror", None) or e.reason)) from None
    except _BROKEN as e:  # connected, but the reply broke off (server restart, timeout): worth a retry
        raise _Broken(str(e) or type(e).__name__, 0) from None


def _total(content_range: str) -> int | None:
    m = re.search(r"/(\d+)\s*$", content_range)
    return int(m.group(1)) if m else None


def _attempt(url: str, partial: Path, progress: bool | None, timeout: float) -> Download:
    have = _size(partial)
    response = _open(url, partial, have, timeout)
    if response is None:
        return Download(sha256_file(partial), have, 0)
    with response:
        total = None
        if response.status == 206:
            m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:  # a range we did not ask for: start again
                log.warning("%s answered another range than bytes=%d-: downloading from the start", url, have)
                _truncate(partial)
                raise _Broken("unexpected Content-Range", 0)
            total = None if m.group(2) == "*" else int(m.group(2))
        else:
            if have:
                log.warning("%s ignores range requests: downloading %s from the start", url, partial.name)
            have = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        return _stream(response, partial, have, total, progress)


def _truncate(path: Path) -> None:
    try:
        with open(path, "wb"):
            pass
    except OSError as e:
        raise output_error(path, e) from None


def _stream(response: http.client.HTTPResponse, partial: Path, have: int, total: int | None,
            progress: bool | None) -> Download:
    from tqdm.auto import tqdm

    hasher = sha256_file(partial, hashlib.sha256()) if have else hashlib.sha256()
    size, fetched = have, 0
    try:
        partial.parent.mkdir(parents=True, exist_ok=True)
        # unbuffered: a refused write leaves exactly the bytes the disk took, nothing pending in a buffer
        f = open(partial, "ab" if have else "wb", buffering=0)  # noqa: SIM115 - closed below
    except OSError as e:
        raise output_error(partial, e) from None
    bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=partial.name,
               disable=None if progress is None else not progress, dynamic_ncols=True)
    with f, bar:
        while True:
            try:
                chunk = response.read(_CHUNK)
            except _BROKEN as e:
                raise _Broken(str(e) or type(e).__name__, fetched) from None
            if not chunk:
                break
            view = memoryview(chunk)
            try:
                while view:
                    view = view[f.write(view):]
            except OSError as e:  # full disk, file-size limit...: what was written stays for the next run
                raise output_error(partial, e) from None
            hasher.update(chunk)
            size += len(chunk)
            fetched += len(chunk)
            bar.update(len(chunk))
    if total is not None and size != total:
        raise _Broken(f"the connection closed at byte {size:,} of {total:,}", fetched)
    return Download(hasher.hexdigest(), size, fetched)
