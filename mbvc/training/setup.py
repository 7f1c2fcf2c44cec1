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

from mbvc.errors import CheckpointError, ConfigError, DataError
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
    """Refuse to resume a run with another model or other data; allow train/eval changes.

    A run folder without any checkpoint or model file (a start that died before saving) has
    trained nothing: resuming it starts from iteration 0, so there any change is allowed.
    """
    run_path = Path(run_dir)
    ckpts = run_path / "checkpoints"
    saved = (any((run_path / n).exists() for n in ("model.safetensors", "best.safetensors"))
             or (ckpts.is_dir() and any(p.suffix == ".pt" for p in ckpts.iterdir())))
    for section, error in (("model", CheckpointError), ("data", ConfigError)):
        old, cur = stored.to_dict()[section], new.to_dict()[section]
        diff = [k for k in sorted(set(old) | set(cur)) if old.get(k) != cur.get(k)]
        if diff:
            details = ", ".join(f"{section}.{k}: run {old.get(k)!r}, now {cur.get(k)!r}" for k in diff[:6])
            if not saved:
                log.info("resume: %s has no checkpoint yet, so it starts over with the new %s (%s)",
                         run_dir, section, details)
                continue
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
    check_data_fits_model(cfg, train_set, val_set)
    return train_set, val_set


def _data_source(cfg: RunConfig, split: str) -> str:
    """The setting that says where ``split`` comes from, for messages (``data.root=...``)."""
    d = cfg.data  # one config class per dataset: not every one has root or <split>_paths
    paths = getattr(d, f"{split}_paths", ())
    if paths:
        return f"data.{split}_paths={list(paths)}"
    if getattr(d, "root", ""):
        return f"data.root={d.root} ({split} split)"
    return f"data.name={d.name} ({split} split)"


def check_data_fits_model(cfg: RunConfig, train_set: Dataset, val_set: Dataset | None = None) -> None:
    """Refuse data whose first sample does not fit the model, before a run is written.

    Checks the frames ``(T, C, H, W)`` of the first training (and validation) sample against
    ``model.img_channel`` / ``img_height`` / ``img_width``, ``T`` against ``model.total_length``
    and, for action-conditioned models, the actions ``(T, A)`` against ``model.num_action_ch``.

    Raises:
        ConfigError: the data and the model disagree; the message names both settings.
        DataError: the training split is empty or its samples hold no ``(T, C, H, W)`` frames.
    """
    m = cfg.model
    want = (m.img_channel, getattr(m, "img_height", None) or m.img_width, m.img_width)
    sets = [("train", train_set)] + ([(cfg.eval.val_split, val_set)] if val_set is not None else [])
    for split, dataset in sets:
        where = _data_source(cfg, split)
        try:
            n = len(dataset)  # type: ignore[arg-type]
        except TypeError:
            continue  # an iterable dataset: nothing to look at without consuming it
        if n == 0:
            if split != "train":
                continue
            raise DataError(f"{where}: the training split holds no sequences of {cfg.data.seq_len} frames")
        sample = dataset[0]
        frames = sample.get("frames") if isinstance(sample, dict) else None
        shape = tuple(getattr(frames, "shape", ()))
        if len(shape) != 4:
            raise DataError(f"{where}: a sample must hold frames (T, C, H, W), got "
                            f"{type(frames).__name__} {list(shape)}")
        t, c, h, w = shape
        if (c, h, w) != want:
            fixes = [f"model.img_channel={c}"] if c != want[0] else []
            fixes += [f"model.img_width={w}"] if w != want[2] else []
            if h != want[1] and not (h == w and want[1] == want[2]):  # a square model follows img_width
                fixes.append(f"model.img_height={h}")
            fix = " ".join(fixes)
            raise ConfigError(
                f"{where} holds frames of {c}x{h}x{w} (C x H x W), but the model is configured for "
                f"{want[0]}x{want[1]}x{want[2]} (model.img_channel x model.img_height x model.img_width): "
                f"set {fix} or give data of the model's size")
        if split == "train" and t < m.total_length:
            raise ConfigError(f"{where} gives training windows of {t} frames, shorter than model.total_length="
                              f"{m.total_length}: set data.seq_len >= {m.total_length} (or leave it at "
                              "${model.total_length})")
        if getattr(m, "is_action", False):
            actions = sample.get("actions")
            if actions is None:
                raise ConfigError(f"model.name={m.name} is action-conditioned, but {where} holds no actions: "
                                  "use a model without actions or data with actions (e.g. rollouts)")
            a = tuple(getattr(actions, "shape", ()))
            if len(a) != 2 or a[-1] != m.num_action_ch:
                raise ConfigError(f"{where} holds actions of shape {list(a)} (T, A), but model.num_action_ch="
                                  f"{m.num_action_ch}: set model.num_action_ch={a[-1] if a else '?'}")


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
    if datasets is None:
        train_set, val_set = build_datasets(cfg)  # checked against the model there
    else:
        train_set, val_set = datasets
        check_data_fits_model(cfg, train_set, val_set)
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
