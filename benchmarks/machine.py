"""Where a benchmark ran (:func:`mbvc.machine.machine_info`), and the start of a control benchmark's process."""
from __future__ import annotations

import logging
import os

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


__all__ = ["cpu_model", "machine_info", "start_control_process"]
