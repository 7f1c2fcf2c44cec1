"""Metric logging: ``record`` values, ``dump`` them at a step to pluggable writers.

Keys are namespaced (``train/loss``, ``eval/ssim``, ``time/it_per_s``). Writers shipped here:
the Python logger (one line per dump), JSON lines (``metrics.jsonl``, the file benchmarks read)
and TensorBoard (scalars and sample images).

Example:
    >>> log = Logger([])
    >>> log.record_mean("train/loss", 1.0); log.record_mean("train/loss", 3.0)
    >>> log.dump(step=10)["train/loss"]
    2.0
"""
from __future__ import annotations

import io
import json
import logging
import math
import itertools
import os
import socket
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np

_log = logging.getLogger(__name__)
_FILE_IDS = itertools.count()


class KVWriter(Protocol):
    """Receives the values of one dump."""

    def write(self, step: int, scalars: dict[str, float], images: dict[str, np.ndarray]) -> None: ...

    def close(self) -> None: ...


class Logger:
    """Collects scalars and images between dumps and hands them to every writer.

    Args:
        writers: destinations; an empty list makes a logger that only returns the values.
    """

    def __init__(self, writers: list[KVWriter]) -> None:
        self.writers = list(writers)
        self._values: dict[str, float] = {}
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)
        self._images: dict[str, np.ndarray] = {}

    def record(self, key: str, value: float) -> None:
        """Set ``key`` to ``value`` for the next dump (the last call wins)."""
        self._values[key] = float(value)

    def record_mean(self, key: str, value: float) -> None:
        """Add ``value`` to the mean of ``key`` reported at the next dump."""
        self._sums[key] += float(value)
        self._counts[key] += 1

    def record_image(self, key: str, image: np.ndarray) -> None:
        """Attach an ``(H, W, 3)`` uint8 RGB image to the next dump."""
        self._images[key] = image

    def dump(self, step: int) -> dict[str, float]:
        """Write everything recorded since the last dump at ``step`` and clear it.

        Returns:
            The scalars written.
        """
        scalars = dict(self._values)
        scalars.update({k: self._sums[k] / self._counts[k] for k in self._sums})
        images = dict(self._images)
        if scalars or images:
            for writer in self.writers:
                writer.write(step, scalars, images)
        self._values.clear()
        self._sums.clear()
        self._counts.clear()
        self._images.clear()
        return scalars

    def close(self) -> None:
        """Close every writer."""
        for writer in self.writers:
            writer.close()


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.3e}"
    return f"{value:.4g}"


class LoggingWriter:
    """One ``logging`` line per dump: ``step 500 | train/loss 0.0123 | ...``."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.logger = logger or logging.getLogger("mbvc.training")
        self.level = level

    def write(self, step: int, scalars: dict[str, float], images: dict[str, np.ndarray]) -> None:
        parts = [f"{k} {_fmt(v)}" for k, v in sorted(scalars.items())]
        self.logger.log(self.level, "step %d | %s", step, " | ".join(parts))

    def close(self) -> None:
        pass


class JSONLinesWriter:
    """Appends ``{"step": N, key: value, ...}`` lines to a file (non-finite values as null).

    A resumed run appends too: steps redone after the last checkpoint appear twice, and the
    later line is the one that counts (:func:`read_jsonl` keeps it).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across dumps

    def write(self, step: int, scalars: dict[str, float], images: dict[str, np.ndarray]) -> None:
        if not scalars:
            return
        row: dict[str, Any] = {"step": step}
        row.update({k: (v if math.isfinite(v) else None) for k, v in scalars.items()})
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a :class:`JSONLinesWriter` file, later rows replacing earlier ones of the same step and keys."""
    rows: dict[tuple[int, tuple[str, ...]], dict[str, Any]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                rows[(row["step"], tuple(sorted(row)))] = row
    return sorted(rows.values(), key=lambda r: r["step"])


class TensorBoardWriter:
    """Scalars and images to TensorBoard event files.

    Written with TensorBoard's own event-file writer and protobufs, not
    ``torch.utils.tensorboard``: that module imports TensorFlow whenever it is installed
    (tens of seconds of start-up, and a crash next to Mesa's software OpenGL).

    Args:
        log_dir: event folder.
        purge_step: on resume, events at or after this step from the interrupted run are hidden.
    """

    def __init__(self, log_dir: str | os.PathLike, purge_step: int | None = None) -> None:
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event = Event
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        # TensorBoard's file name pattern; TensorBoard's EventFileWriter is not used because it
        # opens files through tf.io.gfile, which imports TensorFlow.
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_FILE_IDS)}"
        self.path = log_dir / name
        self.writer = RecordWriter(open(self.path, "wb"))  # noqa: SIM115 - RecordWriter closes it
        self._add(Event(wall_time=time.time(), file_version="brain.Event:2"))
        if purge_step is not None:
            # What torch's SummaryWriter writes for purge_step: TensorBoard then hides the old
            # run's events from this step on.
            self._add(Event(step=purge_step, file_version="brain.Event:2"))
            self._add(Event(step=purge_step, session_log=SessionLog(status=SessionLog.START)))

    def _add(self, event: Any) -> None:
        self.writer.write(event.SerializeToString())

    def write(self, step: int, scalars: dict[str, float], images: dict[str, np.ndarray]) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=key, simple_value=float(value)) for key, value in scalars.items()]
        values += [Summary.Value(tag=key, image=_png_summary(image)) for key, image in images.items()]
        if values:
            self._add(self._event(summary=Summary(value=values), step=step, wall_time=time.time()))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _png_summary(image: np.ndarray) -> Any:
    """An ``(H, W, 3)`` uint8 image as a TensorBoard image summary (PNG-encoded)."""
    from PIL import Image
    from tensorboard.compat.proto.summary_pb2 import Summary

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    h, w = image.shape[:2]
    return Summary.Image(height=h, width=w, colorspace=image.shape[2] if image.ndim == 3 else 1,
                         encoded_image_string=buffer.getvalue())


def configure_logger(run_dir: str | os.PathLike | None, *, stdout: bool = True, jsonl: bool = True,
                     tensorboard: bool = True, purge_step: int | None = None) -> Logger:
    """A :class:`Logger` writing to the log, ``run_dir/metrics.jsonl`` and ``run_dir/tb``.

    Args:
        run_dir: run folder; None disables the file writers.
        stdout: one log line per dump.
        jsonl: ``metrics.jsonl``.
        tensorboard: TensorBoard events (skipped with a warning if tensorboard is missing).
        purge_step: first step of a resumed run (TensorBoard hides later events of the old run).
    """
    writers: list[KVWriter] = [LoggingWriter()] if stdout else []
    if run_dir is not None:
        run_dir = Path(run_dir)
        if jsonl:
            writers.append(JSONLinesWriter(run_dir / "metrics.jsonl"))
        if tensorboard:
            try:
                writers.append(TensorBoardWriter(run_dir / "tb", purge_step))
            except ImportError as e:  # tensorboard is a dependency, but a broken install should not stop training
                _log.warning("TensorBoard disabled: %s (pip install tensorboard)", e)
    return Logger(writers)
