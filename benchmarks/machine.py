"""Where a benchmark ran (:func:`mbvc.machine.machine_info`); the start and the results files of a control benchmark."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from mbvc.io import atomic_write, write_json
from mbvc.machine import cpu_model, machine_info


def start_control_process(threads: int) -> None:
    """Logging with times, quiet TensorFlow, ``threads`` torch threads and the headless GL setup.

    Call first in a benchmark that renders MuJoCo scenes: :func:`envs.setup_gl` must run before
    MuJoCo is imported (it also keeps TensorFlow out of a process that renders on Mesa).
    """
    import torch

    import envs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    torch.set_num_threads(threads)
    envs.setup_gl()


def save_results(out: Path, report: dict[str, Any], markdown: str) -> None:
    """Write ``report`` to ``out`` (JSON) and ``markdown`` next to it (``.md``), both atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, report)
    with atomic_write(out.with_suffix(".md"), "w") as f:
        f.write(markdown)


__all__ = ["cpu_model", "machine_info", "save_results", "start_control_process"]
