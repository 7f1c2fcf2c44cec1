"""``DataConfig`` and ``build_dataset``: the single entry point from a preset to a torch Dataset.

Example:
    >>> cfg = DataConfig(name="moving_mnist", seq_len=20, test_size=4)
    >>> ds = build_dataset(cfg, "test")
    >>> len(ds), ds[0]["frames"].shape
    (4, torch.Size([20, 1, 64, 64]))
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from mbvc.errors import ConfigError, DataError, did_you_mean

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DataConfig:
    """What to load and how to window it (the ``data`` section of a preset).

    Attributes:
        name: one of :data:`DATASETS` (``moving_mnist``, ``mnist_npz``, ``mnist_seq``, ``kth``,
            ``bair``, ``rollouts``, ``folder``, ``arrays``).
        root: dataset folder (``kth``, ``bair``; ``rollouts`` / ``folder`` read ``<root>/<split>``
            when no per-split path is given).
        train_paths, val_paths, test_paths: files or folders per split (``mnist_npz``,
            ``mnist_seq``, ``arrays``: one or more files; ``rollouts``, ``folder``: one folder).
        seq_len: training window length ``T`` (= the model's ``total_length``).
        eval_seq_len: window length for val/test; 0 = dataset default (KTH and BAIR 30, else
            ``seq_len``).
        stride: training window stride; None = dataset default (KTH per category, else 1).
        eval_stride: val/test stride; None = dataset default (KTH per category, BAIR / rollouts
            one window per episode, else ``seq_len``).
        image_size: frame side; 0 = dataset default (Moving MNIST 64, KTH 128, BAIR 64).
        uint8: yield uint8 frames (convert on the device with :func:`mbvc.data.to_float`).
        cache_dir: where KTH/BAIR caches go (default ``<root>/mbvc_cache``).
        seed: Moving MNIST set seed.
        train_size: generated Moving MNIST training sequences; 0 = an endless stream.
        val_size, test_size: generated Moving MNIST val/test sequences.
        num_digits: digits per Moving MNIST sequence.
        image_key: BAIR camera, ``image_aux1`` (reference) or ``image_main``.
        kth_source: ``auto``, ``avi`` or ``frames``.
        grey: ``folder``: convert frames to one channel.
        array_key: ``arrays``: array name inside ``.npz`` files ("" = the only one or ``frames``).
        skip_short: skip (count and log) sequences shorter than the window instead of raising.
    """

    name: str = "moving_mnist"
    root: str = ""
    train_paths: tuple[str, ...] = ()
    val_paths: tuple[str, ...] = ()
    test_paths: tuple[str, ...] = ()
    seq_len: int = 20
    eval_seq_len: int = 0
    stride: int | None = None
    eval_stride: int | None = None
    image_size: int = 0
    uint8: bool = False
    cache_dir: str = ""
    seed: int = 0
    train_size: int = 0
    val_size: int = 2000
    test_size: int = 3000
    num_digits: int = 2
    image_key: str = "image_aux1"
    kth_source: str = "auto"
    grey: bool = False
    array_key: str = ""
    skip_short: bool = False

    def __post_init__(self) -> None:
        for name in ("train_paths", "val_paths", "test_paths"):  # YAML gives lists, users give str
            value = getattr(self, name)
            object.__setattr__(self, name, (str(value),) if isinstance(value, (str, Path)) else
                               tuple(str(v) for v in value))
        if self.name not in DATASETS:
            raise ConfigError(f"data.name must be one of {sorted(DATASETS)}, got {self.name!r}."
                              + did_you_mean(self.name, DATASETS))
        for name in ("seq_len", "num_digits"):
            if getattr(self, name) < 1:
                raise ConfigError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_seq_len", "image_size", "train_size", "val_size", "test_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"data.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("stride", "eval_stride"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"data.{name} must be None or >= 1, got {getattr(self, name)}")
        if self.image_key not in ("image_aux1", "image_main"):
            raise ConfigError(f"data.image_key must be 'image_aux1' or 'image_main', got {self.image_key!r}")
        if self.kth_source not in ("auto", "avi", "frames"):
            raise ConfigError(f"data.kth_source must be 'auto', 'avi' or 'frames', got {self.kth_source!r}")
        if self.name in ("kth", "bair") and not self.root:
            raise ConfigError(f"data.root is required for {self.name} (the dataset folder)")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DataConfig:
        """Build from a plain dict, rejecting unknown keys with a suggestion."""
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(f"unknown data config key {key!r}." + did_you_mean(key, known))
        return cls(**values)

    def paths(self, split: str) -> tuple[str, ...]:
        """The configured files/folders of ``split``."""
        return {"train": self.train_paths, "val": self.val_paths, "test": self.test_paths}[split]


def _split_paths(cfg: DataConfig, split: str, what: str) -> tuple[str, ...]:
    paths = cfg.paths(split)
    if not paths:
        raise ConfigError(f"data.{split}_paths is empty; {cfg.name} needs {what} for the {split} split")
    return paths


def _split_folder(cfg: DataConfig, split: str) -> Path:
    if cfg.paths(split):
        return Path(cfg.paths(split)[0])
    if not cfg.root:
        raise ConfigError(f"{cfg.name} needs data.{split}_paths or data.root (reading <root>/{split})")
    return Path(cfg.root) / split


def _window(cfg: DataConfig, split: str, eval_len: int = 0) -> tuple[int, int | None]:
    """(seq_len, stride) for ``split``; stride None means the dataset's default."""
    if split == "train":
        return cfg.seq_len, cfg.stride
    return cfg.eval_seq_len or eval_len or cfg.seq_len, cfg.eval_stride


class TrimFrames(Dataset):
    """First ``seq_len`` frames of each sample of fixed-length sets (Moving MNIST files)."""

    def __init__(self, base: Dataset, seq_len: int, where: str) -> None:
        got = base[0]["frames"].shape[0]
        if got < seq_len:
            raise DataError(f"{where}: sequences have {got} frames, shorter than the window of {seq_len}")
        self.base, self.seq_len = base, seq_len

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[: self.seq_len] for k, v in self.base[i].items()}


def _moving_mnist(cfg: DataConfig, split: str) -> Dataset:
    from mbvc.data.mnist import MovingMNIST, MovingMNISTStream

    seq_len, _ = _window(cfg, split)
    kw = {"seq_len": seq_len, "image_size": cfg.image_size or 64, "num_digits": cfg.num_digits}
    if split == "train" and cfg.train_size == 0:
        return MovingMNISTStream(cfg.seed, "train", cfg.uint8, **kw)
    size = {"train": cfg.train_size, "val": cfg.val_size, "test": cfg.test_size}[split]
    if size == 0:
        raise ConfigError(f"data.{split}_size must be >= 1 for a generated {split} set")
    return MovingMNIST(size, cfg.seed, split, cfg.uint8, **kw)


def _mnist_npz(cfg: DataConfig, split: str) -> Dataset:
    from mbvc.data.mnist_files import MnistNpzDataset

    paths = _split_paths(cfg, split, "reference .npz files")
    return TrimFrames(MnistNpzDataset(paths, cfg.uint8), _window(cfg, split)[0], ", ".join(paths))


def _mnist_seq(cfg: DataConfig, split: str) -> Dataset:
    from mbvc.data.mnist_files import MnistSeqDataset

    (path, *rest) = _split_paths(cfg, split, "an mnist_test_seq.npy file")
    if rest:
        raise ConfigError(f"mnist_seq reads one file per split, got {len(rest) + 1} for {split}")
    return TrimFrames(MnistSeqDataset(path, cfg.uint8), _window(cfg, split)[0], path)


def _kth(cfg: DataConfig, split: str) -> Dataset:
    from mbvc.data.kth import kth_dataset

    seq_len, stride = _window(cfg, split, eval_len=30)
    return kth_dataset(cfg.root, "train" if split == "train" else "test", seq_len,
                       stride if stride is not None else "category", cfg.uint8, cfg.image_size or 128,
                       cfg.cache_dir or None, cfg.kth_source, cfg.skip_short)


def _bair(cfg: DataConfig, split: str) -> Dataset:
    from mbvc.data.bair import bair_dataset

    seq_len, stride = _window(cfg, split, eval_len=30)
    if stride is None:
        stride = 1 if split == "train" else None  # eval: one window per trajectory, from step 0
    return bair_dataset(cfg.root, "train" if split == "train" else "test", seq_len, stride, cfg.uint8,
                        cfg.cache_dir or None, cfg.image_key, cfg.image_size or 64)


def _rollouts(cfg: DataConfig, split: str) -> Dataset:
    from mbvc.data.rollouts import RolloutDataset

    seq_len, stride = _window(cfg, split)
    if stride is None:
        stride = 1 if split == "train" else None
    return RolloutDataset(_split_folder(cfg, split), seq_len, stride, cfg.uint8, skip_short=cfg.skip_short)


def _folder(cfg: DataConfig, split: str) -> Dataset:
    from mbvc.data.folder import FolderDataset

    seq_len, stride = _window(cfg, split)
    stride = stride or (1 if split == "train" else seq_len)
    return FolderDataset(_split_folder(cfg, split), seq_len, stride, cfg.uint8, cfg.grey, cfg.skip_short)


def _arrays(cfg: DataConfig, split: str) -> Dataset:
    from mbvc.data.folder import ArrayDataset

    seq_len, stride = _window(cfg, split)
    stride = stride or (1 if split == "train" else seq_len)
    return ArrayDataset(_split_paths(cfg, split, ".npy/.npz files"), seq_len, stride, cfg.uint8,
                        cfg.array_key or None, cfg.skip_short)


#: Dataset name -> builder ``(cfg, split) -> Dataset``.
DATASETS: dict[str, Callable[[DataConfig, str], Dataset]] = {
    "moving_mnist": _moving_mnist, "mnist_npz": _mnist_npz, "mnist_seq": _mnist_seq, "kth": _kth,
    "bair": _bair, "rollouts": _rollouts, "folder": _folder, "arrays": _arrays,
}


def build_dataset(cfg: DataConfig, split: str) -> Dataset:
    """The Dataset of ``split`` (``train``, ``val`` or ``test``) described by ``cfg``.

    KTH and BAIR have no validation split: ``val`` reads their test split (as the reference
    evaluates on it during training).

    Raises:
        ConfigError: unknown split or a setting the dataset needs is missing.
        DataError: the data on disk is missing or malformed.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}." + did_you_mean(split, SPLITS))
    dataset = DATASETS[cfg.name](cfg, split)
    logger.info("data: %s %s, %s samples", cfg.name, split,
                len(dataset) if hasattr(dataset, "__len__") else "endless")
    return dataset
