"""One process per run folder: an OS-level lock, fresh run-folder names, and run-process settings.

A run folder is owned by the process that holds ``<run>/.lock`` (``fcntl.flock``, released by
the kernel when the process ends, even on SIGKILL, so a crashed run never leaves a stale lock).
A second ``mbvc train`` into the same folder is refused with the holder's pid, before it
touches any file of the run. Under DDP only rank 0 takes the lock.

A fresh start that fails before doing any work (bad data, a model that does not fit the data...)
removes what it wrote (:meth:`RunLock.discard_failed_start`), so the corrected command is not
told that the folder "already holds a run"; files that were there before are never touched.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

from mbvc.errors import ConfigError, OutputError
from mbvc.io import write_json

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
PROCESS_FILE = "process.json"
#: What a training start writes into its run folder (besides the lock).
RUN_ENTRIES = ("config.yaml", PROCESS_FILE, "train.log", "metrics.jsonl", "tb", "checkpoints",
               "model.safetensors", "best.safetensors")
# Temporaries of an atomic write killed midway: ".model.safetensors.<random>.tmp.safetensors",
# ".config.yaml.<random>.tmp" (mbvc.io's names, for the run folder's own files only).
_STALE_MODEL = re.compile(
    r"^\.((model|best)\.safetensors\.[^/]+\.tmp\.safetensors|(config\.yaml|process\.json)\.[^/]+\.tmp)$")


class RunLock:
    """An exclusive, non-blocking lock on a run folder, held until :meth:`release` or exit.

    Args:
        run_dir: the run folder (created if missing).
        created: the caller has just created ``run_dir``. A folder made for this run is removed
            again on :meth:`release` if no run was written into it (a failed start, e.g. bad
            data, must not leave a folder behind).

    Raises:
        ConfigError: another live process holds the folder (its pid is named).
    """

    def __init__(self, run_dir: str | os.PathLike, created: bool = False) -> None:
        import fcntl

        self.run_dir = Path(run_dir)
        self.created = created or not self.run_dir.exists()
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ConfigError(f"{self.run_dir} is a file, not a folder: a run folder is needed there")
        #: Names in the folder before this process took it: never removed by this start.
        self.existed: set[str] = set() if created or not self.run_dir.is_dir() else set(os.listdir(self.run_dir))
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            culprit = f" ({e.filename})" if e.filename and str(e.filename) != str(self.run_dir) else ""
            raise OutputError(f"cannot create the folder {self.run_dir}: {e.strerror or e}{culprit}") from None
        self.path = self.run_dir / LOCK_FILE
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise ConfigError(f"{self.path}: cannot lock the run folder ({e.strerror})") from None
            who = f"process {holder}" if holder else "another process"
            raise ConfigError(f"{self.run_dir} is in use by {who} (mbvc train); one process trains a run "
                              "folder at a time: wait for it to finish or choose another --run-dir") from None
        self._discarded = False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd: int | None = fd

    def release(self) -> None:
        """Give the folder up; what a start that never wrote ``config.yaml`` made is removed.

        That is, for a folder this start created or after :meth:`discard_failed_start`, the lock
        file and ``process.json`` (unless they were there before), and the folder itself when this
        start created it and nothing else is in it.
        """
        if self._fd is None:
            return
        if (self.created or self._discarded) and not (self.run_dir / "config.yaml").exists():
            for name in (PROCESS_FILE, LOCK_FILE):  # still ours: the lock is held until the close below
                if name not in self.existed:
                    with contextlib.suppress(OSError):
                        (self.run_dir / name).unlink(missing_ok=True)
            if self.created:
                with contextlib.suppress(OSError):  # not empty: someone put files there; leave them
                    self.run_dir.rmdir()
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None

    def has_saved_work(self) -> bool:
        """Whether the folder holds a checkpoint or a model file (a run worth keeping)."""
        if any((self.run_dir / name).exists() for name in ("model.safetensors", "best.safetensors")):
            return True
        ckpts = self.run_dir / "checkpoints"
        return ckpts.is_dir() and any(p.suffix == ".pt" for p in ckpts.iterdir())

    def discard_failed_start(self) -> list[Path]:
        """Remove what a fresh start wrote, when it failed before saving anything (call before :meth:`release`).

        Only the run's own entries (:data:`RUN_ENTRIES` and interrupted temporaries of them) that
        were not in the folder when the lock was taken are removed; nothing is removed once a
        checkpoint or a model file exists.

        Returns:
            The paths removed.
        """
        if self._fd is None or not self.run_dir.is_dir() or self.has_saved_work():
            return []
        self._discarded = True  # release() then also takes back the lock file it made
        removed = []
        for entry in sorted(self.run_dir.iterdir()):
            name = entry.name
            if name in self.existed or not (name in RUN_ENTRIES or _STALE_MODEL.match(name)):
                continue
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            except OSError as e:
                log.warning("could not remove %s after the failed start: %s", entry, e)
                continue
            removed.append(entry)
        if removed:
            log.info("the start failed before its first checkpoint: removed what it wrote in %s (%s)",
                     self.run_dir, ", ".join(p.name for p in removed))
        return removed

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip() or "x")
    return None


def fresh_run_dir(parent: str | os.PathLike, name: str) -> Path:
    """Create and return ``<parent>/<name>-<time>``, adding ``-2``, ``-3``... if that exists.

    ``os.mkdir`` is exclusive, so runs started in the same second (a parallel sweep) each get
    their own folder.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    base = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 10_000):
        path = parent / (base if n == 1 else f"{base}-{n}")
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        return path
    raise ConfigError(f"{parent}: could not create a fresh run folder {base}-N; pass --run-dir")


def remove_stale_model_temps(run_dir: str | os.PathLike) -> None:
    """Remove temporaries of a run-folder write (model file, config) killed midway; mbvc's own names only."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    for stale in run_dir.iterdir():
        if _STALE_MODEL.match(stale.name):
            log.info("removing %s, left by a write that was interrupted", stale)
            stale.unlink(missing_ok=True)


def restore_threads(run_dir: str | os.PathLike, threads: int | None, resume: bool, record: bool = True) -> int:
    """Record the run's torch CPU thread count, or on resume restore the recorded one.

    CPU results depend on the thread count (reduction order), so a resumed run is bit-exact
    only with the threads it was trained with.

    Args:
        run_dir: the run folder (``process.json`` lives there).
        threads: ``--threads`` as given (None: not given).
        resume: continue a run: a recorded count is restored when ``threads`` is None, and a
            different ``threads`` gets a warning.
        record: write the count to ``process.json`` (rank 0 only).

    Returns:
        The thread count in effect.
    """
    import torch

    path = Path(run_dir) / PROCESS_FILE
    recorded = None
    if resume and path.is_file():
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            recorded = int(json.loads(path.read_text()).get("threads"))
    if recorded is not None and threads is None:
        torch.set_num_threads(recorded)
        log.info("resume: using the run's %d CPU thread(s) (--threads to change)", recorded)
    elif recorded is not None and threads != recorded:
        log.warning("resume: --threads %d differs from the run's %d; CPU results will not be bit-identical "
                    "to an uninterrupted run", threads, recorded)
    used = torch.get_num_threads()
    if record:
        write_json(path, {"threads": used})
    return used
