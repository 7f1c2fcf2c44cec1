"""Composition root of a training run: the run folder, the datasets, the model and the trainer.

Run folder layout::

    <run>/config.yaml           resolved configuration (also inside every checkpoint)
    <run>/checkpoints/          ckpt-<N>.pt (last k) and best.pt, training state
    <run>/model.safetensors     the final model, an mbvc model file (``mbvc test/predict`` read it)
    <run>/best.safetensors      the best model by validation
    <run>/metrics.jsonl         every logged scalar
    <run>/tb/                   TensorBoard events
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from torch.utils.data import Dataset

from mbvc.errors import CheckpointError, ConfigError
from mbvc.io import atomic_write
from mbvc.training.checkpoint import CheckpointManager, checkpoint_iteration
from mbvc.training.distributed import DistInfo
from mbvc.training.logger import configure_logger
from mbvc.training.trainer import Trainer

if TYPE_CHECKING:  # mbvc.config composes the section configs, this package's among them
    from mbvc.config import RunConfig

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"


def set_threads(threads: int | None, option: str = "--threads") -> None:
    """Set torch's CPU threads (None leaves torch's default); a command-line process setting.

    On a busy machine one thread is often fastest for small models: more threads spin-wait
    on cores other processes hold.

    Raises:
        ConfigError: ``threads < 1``.
    """
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"{option} must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def load_resume_config(run_dir: str | os.PathLike, overrides: list[str] | None = None) -> RunConfig:
    """The stored configuration of a run folder, with overrides (e.g. more iterations)."""
    from mbvc.config import load_run_config  # the layer above: see mbvc/training/__init__.py

    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"--resume: {path} does not exist; {run_dir} is not an mbvc run folder")
    return load_run_config(path, overrides or [])


def check_same_run(stored: RunConfig, new: RunConfig, run_dir: str | os.PathLike) -> None:
    """Refuse to resume a run with another model or other data; allow train/eval changes."""
    for section, error in (("model", CheckpointError), ("data", ConfigError)):
        old, cur = stored.to_dict()[section], new.to_dict()[section]
        diff = [k for k in sorted(set(old) | set(cur)) if old.get(k) != cur.get(k)]
        if diff:
            details = ", ".join(f"{section}.{k}: run {old.get(k)!r}, now {cur.get(k)!r}" for k in diff[:6])
            raise error(f"cannot resume {run_dir}: it holds another {section} ({details})")
    for section in ("train", "eval"):
        old, cur = stored.to_dict()[section], new.to_dict()[section]
        for k in sorted(k for k in cur if old.get(k) != cur.get(k)):
            log.info("resume: %s.%s changed from %r to %r", section, k, old.get(k), cur.get(k))


def check_run_dir_free(run_dir: str | os.PathLike, resume: bool) -> None:
    """Refuse a fresh run aimed at a folder that already holds a run (mbvc never overwrites one).

    Raises:
        ConfigError: ``run_dir`` holds ``config.yaml`` or ``checkpoints/`` and ``resume`` is False.
    """
    run_dir = Path(run_dir)
    if not resume and ((run_dir / CONFIG_FILE).exists() or (run_dir / "checkpoints").exists()):
        raise ConfigError(f"{run_dir} already holds a run; continue it with --resume or choose another "
                          "--run-dir (mbvc never overwrites a run)")


def prepare_run_dir(run_dir: str | os.PathLike, cfg: RunConfig, resume: bool) -> Path:
    """Create the run folder and write ``config.yaml``; never overwrite another run.

    Raises:
        ConfigError: a fresh run aimed at a folder that already holds a run.
    """
    run_dir = Path(run_dir)
    check_run_dir_free(run_dir, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(run_dir / CONFIG_FILE, "w") as f:
        f.write(cfg.to_yaml())
    return run_dir


def build_datasets(cfg: RunConfig) -> tuple[Dataset, Dataset | None]:
    """The training set and the validation set (None when ``eval.val_split`` is empty).

    Raises:
        ConfigError, DataError: a setting is missing or the data is not where the config says.
    """
    from mbvc.data import build_dataset

    train_set = build_dataset(cfg.data_for("train"), "train")
    val_set = None
    if cfg.eval.val_split:
        val_set = build_dataset(cfg.data_for(cfg.eval.val_split), cfg.eval.val_split)
    return train_set, val_set


def build_trainer(cfg: RunConfig, run_dir: str | os.PathLike, info: DistInfo = DistInfo(),
                  resume: bool = False, datasets: tuple[Dataset, Dataset | None] | None = None) -> Trainer:
    """Seed, build the model (and datasets) of ``cfg`` and a :class:`Trainer` writing to ``run_dir``.

    Args:
        cfg: the run configuration.
        run_dir: the run folder (see :func:`prepare_run_dir`).
        info: rank and world size (``torchrun``).
        resume: the trainer will resume; TensorBoard then hides the interrupted run's later events.
        datasets: ``(train, val)`` already built by :func:`build_datasets`.
    """
    from mbvc.models import build_model
    from mbvc.seeding import seed_everything

    run_dir = Path(run_dir)
    train_set, val_set = datasets if datasets is not None else build_datasets(cfg)
    seed_everything(cfg.train.seed)  # the same initial weights on every process
    model = build_model(cfg.model)
    purge = None
    if resume:
        done = CheckpointManager(run_dir / "checkpoints").list()
        purge = (checkpoint_iteration(done[-1]) or 0) + 1 if done else None
    logger = configure_logger(run_dir if info.is_main else None, stdout=info.is_main,
                              tensorboard=cfg.train.tensorboard, purge_step=purge)
    return Trainer(model, cfg.train, train_set, run_dir, val_set=val_set, eval_settings=cfg.eval,
                   config_yaml=cfg.to_yaml(), info=info, logger=logger)
