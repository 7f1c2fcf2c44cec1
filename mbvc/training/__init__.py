"""Training of any :class:`~mbvc.models.WorldModel`: configs, the trainer, checkpoints, logging, DDP.

Layering: ``mbvc.training.config`` (the ``train`` section) sits below
:mod:`mbvc.config`, which composes every section into a ``RunConfig``; the run-level helpers
here that read whole run configurations (``setup.load_resume_config``,
``artifacts.run_config_for``) import :mod:`mbvc.config` inside those functions, and nothing in
this package imports it at module level, so importing either first works.

Example (a few iterations of a tiny model on generated Moving MNIST):
    >>> from mbvc.config import load_run_config
    >>> from mbvc.training import build_trainer
    >>> cfg = load_run_config("mnist-predrnn-v2-small", [
    ...     "model.num_hidden=[4]", "model.img_width=32", "model.filter_size=3",
    ...     "model.input_length=2", "model.total_length=4", "data.image_size=32",
    ...     "data.train_size=8", "data.val_size=4", "train.iterations=2", "train.batch_size=4",
    ...     "train.progress=false", "train.tensorboard=false", "eval.lpips=false"])
    >>> import tempfile
    >>> trainer = build_trainer(cfg, tempfile.mkdtemp())
    >>> trainer.fit().iteration
    2
"""
from __future__ import annotations

import importlib
from typing import Any

# Lazy, so that `import mbvc.config` (which needs only mbvc.training.config) does not load the
# trainer, DataLoader and tqdm.
_EXPORTS = {
    "TrainConfig": "config",
    "Trainer": "trainer", "TrainResult": "trainer", "TrainingDivergedError": "trainer",
    "seconds_per_iteration": "trainer",
    "build_trainer": "setup", "prepare_run_dir": "setup",
    "CheckpointManager": "checkpoint", "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "BatchStream": "distributed", "DistInfo": "distributed", "dist_from_env": "distributed",
    "Logger": "logger", "LoggingWriter": "logger", "JSONLinesWriter": "logger", "TensorBoardWriter": "logger",
    "configure_logger": "logger", "read_jsonl": "logger",
    "load_trained": "artifacts",
    "learning_curves": "curves", "write_curves": "curves",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mbvc.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mbvc.training.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
