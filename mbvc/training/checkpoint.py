"""Training checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is a ``torch.save`` of plain tensors, numbers, strings, lists and dicts, so it
loads with ``torch.load(..., weights_only=True)`` (no code runs from the file). It holds the
model, optimiser and scheduler states, the iteration, the data position, every random-number
generator state and the resolved run configuration as YAML text.

Files in ``<run>/checkpoints``: ``ckpt-<iteration>.pt`` (the last ``keep_last`` are kept) and
``best.pt`` (the best validation score so far). Only files of these names are ever removed.
"""
from __future__ import annotations

import logging
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mbvc import __version__
from mbvc.errors import CheckpointError
from mbvc.io import atomic_write

log = logging.getLogger(__name__)

FORMAT = "mbvc-train/1"
_CKPT = re.compile(r"^ckpt-(\d+)\.pt$")
# Temporaries left by atomic_write when a process is killed mid-save: ".ckpt-000100.pt.<random>.tmp".
_STALE = re.compile(r"^\.(ckpt-\d+|best)\.pt\.[^/]+\.tmp$")


def rng_states() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators, as plain data."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore generator states saved by :func:`rng_states`."""
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    npy = states["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["gauss"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        cuda = states["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            log.warning("checkpoint has CUDA RNG states of %d devices, this machine has %d: not restored",
                        len(cuda), torch.cuda.device_count())


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write a training state atomically (temp file, fsync, rename).

    Args:
        path: destination; a kill at any moment leaves either the old file or the new one.
        state: plain data (tensors, numbers, strings, lists, tuples, dicts).
    """
    payload = {"format": FORMAT, "mbvc_version": __version__, **state}
    with atomic_write(path, "wb") as f:
        torch.save(payload, f)
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True``.

    Raises:
        CheckpointError: the file is missing, truncated, not a training checkpoint, or unsafe.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file; all mean "unreadable"
        raise CheckpointError(f"{path}: not a readable training checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        hint = (" (a reference checkpoint: import it with `mbvc convert`)"
                if isinstance(state, dict) and "net_param" in state else "")
        raise CheckpointError(f"{path}: not an mbvc training checkpoint (format {found!r}, expected {FORMAT!r}){hint}")
    return state


def checkpoint_iteration(path: str | os.PathLike) -> int | None:
    """The iteration in a ``ckpt-<N>.pt`` name, else None."""
    m = _CKPT.match(Path(path).name)
    return int(m.group(1)) if m else None


@dataclass
class CheckpointManager:
    """Names, rotation and discovery of the checkpoints of one run.

    Attributes:
        folder: ``<run>/checkpoints``.
        keep_last: ``ckpt-*.pt`` files kept (older ones are removed after each save).
    """

    folder: Path
    keep_last: int = 2

    def path(self, iteration: int) -> Path:
        """``ckpt-<iteration>.pt``, zero-padded so names sort by iteration."""
        return self.folder / f"ckpt-{iteration:08d}.pt"

    @property
    def best_path(self) -> Path:
        """``best.pt``."""
        return self.folder / "best.pt"

    def list(self) -> list[Path]:
        """Training checkpoints by increasing iteration."""
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir() if _CKPT.match(p.name)]
        return sorted(found, key=lambda p: checkpoint_iteration(p) or 0)

    def save(self, iteration: int, state: dict[str, Any]) -> Path:
        """Write ``ckpt-<iteration>.pt`` and drop the oldest beyond ``keep_last``.

        Only checkpoints older than the one just written are candidates: a higher-numbered file
        (e.g. left unreadable, resumed from an earlier one) never pushes the new one out.
        """
        path = save_checkpoint(self.path(iteration), state)
        older = [p for p in self.list() if (checkpoint_iteration(p) or 0) <= iteration]
        for old in older[: -self.keep_last]:
            old.unlink(missing_ok=True)
        log.info("checkpoint %s", path)
        return path

    def save_best(self, state: dict[str, Any]) -> Path:
        """Write ``best.pt``."""
        return save_checkpoint(self.best_path, state)

    def latest(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest checkpoint that loads, with its state (None if there is none).

        Leftover temporaries of a save killed midway are removed first (they are mbvc's own
        files: ``.ckpt-<N>.pt.*.tmp``). An unreadable checkpoint, which atomic saving should make
        impossible, is skipped with a warning in favour of the one before.

        Raises:
            CheckpointError: there are checkpoints and none of them loads (each file and the
                reason are named): training from iteration 0 would silently discard the run.
        """
        if self.folder.is_dir():
            for stale in self.folder.iterdir():
                if _STALE.match(stale.name):
                    log.info("removing %s, left by a save that was interrupted", stale)
                    stale.unlink(missing_ok=True)
        failures: list[str] = []
        for path in reversed(self.list()):
            try:
                return path, load_checkpoint(path)
            except CheckpointError as e:
                log.warning("skipping %s", e)
                failures.append(str(e))
        if failures:
            raise CheckpointError(f"cannot resume: none of the {len(failures)} checkpoint(s) in {self.folder} "
                                  f"is readable ({'; '.join(failures[:3])}); move them away to restart the run "
                                  "from iteration 0")
        return None
