"""``DataConfig`` and ``build_dataset``: the single entry point from a preset to a torch Dataset.

Example:
    >>> cfg = DataConfig(name="moving_mnist", seq_len=20, test_size=4)
    >>> ds = build_dataset(cfg, "test")
    >>> len(ds), ds[0]["frames"].shape
    (4, torch.Size([20, 1, 64, 64]))
"""
from __future__ import annotations

import logging
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from mbvc.errors import ConfigError, DataError, did_you_mean

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DataConfig:
    """What to load and how to window it (the ``data`` section of a preset): the fields every
    dataset has; each dataset's own settings are the fields of its subclass, registered by name
    in :data:`DATASETS`.

    ``DataConfig(name="kth", root=...)`` (and :meth:`from_dict`) makes the config class of the
    dataset ``name`` (here :class:`KTHData`), so a preset's ``data`` section stays one flat
    mapping: ``name``, the common fields below and the chosen dataset's own fields. In Python a
    field of another dataset is an error. In a preset or a run's ``config.yaml`` (:meth:`from_dict`)
    it is ignored, as it always was: silently at its default (what mbvc wrote before the
    per-dataset classes, when one class held every dataset's fields), else with a warning (a
    Moving MNIST preset, which sets ``train_size``, switched by ``--set data.name=mnist_npz``).

    Attributes:
        name: one of :data:`DATASETS` (``moving_mnist``, ``mnist_npz``, ``mnist_seq``, ``kth``,
            ``bair``, ``rollouts``, ``folder``, ``arrays``).
        seq_len: training window length ``T`` (= the model's ``total_length``).
        eval_seq_len: window length for val/test; 0 = dataset default (KTH and BAIR 30, else
            ``seq_len``).
        stride: training window stride; None = dataset default (KTH per category, else 1).
        eval_stride: val/test stride; None = dataset default (KTH per category, BAIR / rollouts
            one window per episode, else ``seq_len``).
        uint8: yield uint8 frames (convert on the device with :func:`mbvc.data.to_float`).
    """

    name: str = "moving_mnist"
    seq_len: int = 20
    eval_seq_len: int = 0
    stride: int | None = None
    eval_stride: int | None = None
    uint8: bool = False

    def __new__(cls, *args: Any, **kwargs: Any) -> DataConfig:
        if cls is DataConfig:  # the config class of the dataset named
            name = args[0] if args else kwargs.get("name", DataConfig.name)
            cls = dataset_config(name)
            unknown = sorted(set(kwargs) - {f.name for f in fields(cls)})
            if unknown:
                raise ConfigError(f"data.{unknown[0]} is not a setting of the {name} data; its settings: "
                                  f"{', '.join(f.name for f in fields(cls))}.")
        return super().__new__(cls)

    def __post_init__(self) -> None:
        if self.name != type(self).name:
            raise ConfigError(f"data.name={self.name!r} but this is the config of {type(self).name!r}")
        if self.seq_len < 1:
            raise ConfigError(f"data.seq_len must be >= 1, got {self.seq_len}")
        if self.eval_seq_len < 0:
            raise ConfigError(f"data.eval_seq_len must be >= 0, got {self.eval_seq_len}")
        for name in ("stride", "eval_stride"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"data.{name} must be None or >= 1, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DataConfig:
        """The config of the dataset ``values["name"]`` from a flat mapping, rejecting unknown keys
        with a suggestion (a field of another dataset: ignored with a warning, see the class)."""
        name = values.get("name", DataConfig.name)
        target = dataset_config(name)
        own = {f.name for f in fields(target)}
        others = {f.name: f for c in DATASETS.values() for f in fields(c)}
        for key in values:
            if key not in own and key not in others:
                raise ConfigError(f"unknown data config key {key!r}." + did_you_mean(key, [*own, *others]))
        for key in sorted(set(values) - own):
            if values[key] != _default(others[key]):
                logger.warning("data.%s=%r is not a setting of the %s data: ignored", key, values[key], name)
        return target(**{k: v for k, v in values.items() if k in own})

    def build(self, split: str) -> Dataset:
        """The dataset of ``split`` (overridden by every dataset's config class)."""
        raise NotImplementedError


def _default(f: Any) -> Any:
    value = f.default_factory() if f.default_factory is not MISSING else f.default
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class _Paths:
    """Files or folders per split.

    Attributes:
        train_paths, val_paths, test_paths: files (``mnist_npz``, ``mnist_seq``, ``arrays``: one
            or more) or a folder (``rollouts``, ``folder``: one, else ``<root>/<split>``).
    """

    train_paths: tuple[str, ...] = ()
    val_paths: tuple[str, ...] = ()
    test_paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("train_paths", "val_paths", "test_paths"):  # YAML gives lists, users give str
            value = getattr(self, name)
            object.__setattr__(self, name, (str(value),) if isinstance(value, (str, Path)) else
                               tuple(str(v) for v in value))
        super().__post_init__()  # type: ignore[misc]

    def paths(self, split: str) -> tuple[str, ...]:
        """The configured files/folders of ``split``."""
        return {"train": self.train_paths, "val": self.val_paths, "test": self.test_paths}[split]


@dataclass(frozen=True)
class MovingMNISTData(DataConfig):
    """``moving_mnist``: Moving MNIST generated from the packaged digits.

    Attributes:
        image_size: frame side; 0 = 64.
        seed: seed of the generated sets.
        train_size: generated training sequences; 0 = an endless stream.
        val_size, test_size: generated val/test sequences.
        num_digits: digits per sequence.
    """

    name: str = "moving_mnist"
    image_size: int = 0
    seed: int = 0
    train_size: int = 0
    val_size: int = 2000
    test_size: int = 3000
    num_digits: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_digits < 1:
            raise ConfigError(f"data.num_digits must be >= 1, got {self.num_digits}")
        for name in ("image_size", "train_size", "val_size", "test_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"data.{name} must be >= 0, got {getattr(self, name)}")

    def build(self, split: str) -> Dataset:
        from mbvc.data.mnist import MovingMNIST, MovingMNISTStream

        seq_len, _ = _window(self, split)
        kw = {"seq_len": seq_len, "image_size": self.image_size or 64, "num_digits": self.num_digits}
        if split == "train" and self.train_size == 0:
            return MovingMNISTStream(self.seed, "train", self.uint8, **kw)
        size = {"train": self.train_size, "val": self.val_size, "test": self.test_size}[split]
        if size == 0:
            raise ConfigError(f"data.{split}_size must be >= 1 for a generated {split} set")
        return MovingMNIST(size, self.seed, split, self.uint8, **kw)


@dataclass(frozen=True)
class MnistNpzData(_Paths, DataConfig):
    """``mnist_npz``: the reference's Moving MNIST ``.npz`` files (``<split>_paths``)."""

    name: str = "mnist_npz"

    def build(self, split: str) -> Dataset:
        from mbvc.data.mnist_files import MnistNpzDataset

        paths = _split_paths(self, split, "reference .npz files")
        return TrimFrames(MnistNpzDataset(paths, self.uint8), _window(self, split)[0], ", ".join(paths))


@dataclass(frozen=True)
class MnistSeqData(_Paths, DataConfig):
    """``mnist_seq``: one ``mnist_test_seq.npy`` file per split (``<split>_paths``).

    An empty ``val_paths`` / ``test_paths`` reads the standard test set that ``mbvc data get
    moving_mnist`` put under the data root (val and test are then the same file: a checkpoint
    chosen on val is chosen on the test set); training needs its own ``train_paths``.
    """

    name: str = "mnist_seq"

    def build(self, split: str) -> Dataset:
        from mbvc.data.mnist_files import MnistSeqDataset

        if not self.paths(split) and split != "train":  # the standard test set, fetched by `mbvc data get`
            path = str(downloaded(self.name, f"data.{split}_paths", "an mnist_test_seq.npy file")
                       / "mnist_test_seq.npy")
        else:
            (path, *rest) = _split_paths(self, split, "an mnist_test_seq.npy file")
            if rest:
                raise ConfigError(f"mnist_seq reads one file per split, got {len(rest) + 1} for {split}")
        return TrimFrames(MnistSeqDataset(path, self.uint8), _window(self, split)[0], path)


@dataclass(frozen=True)
class KTHData(DataConfig):
    """``kth``: the KTH actions (avi files or extracted frames), cached.

    Attributes:
        root: the KTH folder; empty: the one ``mbvc data get kth`` prepared under the data root
            (``$MBVC_DATA``, else ``~/.cache/mbvc/data``), filled in when the config is made if it
            is complete then, else looked up when the dataset is built (an error if still absent).
        image_size: frame side; 0 = 128.
        cache_dir: where the cache goes (default ``<root>/mbvc_cache``).
        kth_source: ``auto``, ``avi`` or ``frames``.
        skip_short: skip (count and log) sequences shorter than the window instead of raising.
    """

    name: str = "kth"
    root: str = ""
    image_size: int = 0
    cache_dir: str = ""
    kth_source: str = "auto"
    skip_short: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _root_and_size(self)
        if self.kth_source not in ("auto", "avi", "frames"):
            raise ConfigError(f"data.kth_source must be 'auto', 'avi' or 'frames', got {self.kth_source!r}")

    def build(self, split: str) -> Dataset:
        from mbvc.data.kth import kth_dataset

        seq_len, stride = _window(self, split, eval_len=30)
        return kth_dataset(_root(self), "train" if split == "train" else "test", seq_len,
                           stride if stride is not None else "category", self.uint8, self.image_size or 128,
                           self.cache_dir or None, self.kth_source, self.skip_short)


@dataclass(frozen=True)
class BAIRData(DataConfig):
    """``bair``: BAIR robot pushing (softmotion30_44k tfrecords), cached.

    Attributes:
        root: the dataset folder with ``train/`` and ``test/``; empty: the one ``mbvc data get
            bair`` prepared under the data root (as for ``kth``).
        image_size: frame side; 0 = 64.
        cache_dir: where the cache goes (default ``<root>/mbvc_cache``).
        image_key: camera, ``image_aux1`` (the reference) or ``image_main``.
    """

    name: str = "bair"
    root: str = ""
    image_size: int = 0
    cache_dir: str = ""
    image_key: str = "image_aux1"

    def __post_init__(self) -> None:
        super().__post_init__()
        _root_and_size(self)
        if self.image_key not in ("image_aux1", "image_main"):
            raise ConfigError(f"data.image_key must be 'image_aux1' or 'image_main', got {self.image_key!r}")

    def build(self, split: str) -> Dataset:
        from mbvc.data.bair import bair_dataset

        seq_len, stride = _window(self, split, eval_len=30)
        if stride is None:
            stride = 1 if split == "train" else None  # eval: one window per trajectory, from step 0
        return bair_dataset(_root(self), "train" if split == "train" else "test", seq_len, stride, self.uint8,
                            self.cache_dir or None, self.image_key, self.image_size or 64)


@dataclass(frozen=True)
class RolloutsData(_Paths, DataConfig):
    """``rollouts``: episodes written by ``mbvc collect`` (:mod:`mbvc.data.rollouts`).

    Attributes:
        root: read ``<root>/<split>`` where no ``<split>_paths`` folder is given.
        skip_short: skip (count and log) episodes shorter than the window instead of raising.
    """

    name: str = "rollouts"
    root: str = ""
    skip_short: bool = False

    def build(self, split: str) -> Dataset:
        from mbvc.data.rollouts import RolloutDataset

        seq_len, stride = _window(self, split)
        if stride is None:
            stride = 1 if split == "train" else None
        return RolloutDataset(_split_folder(self, split), seq_len, stride, self.uint8, skip_short=self.skip_short)


@dataclass(frozen=True)
class FolderData(_Paths, DataConfig):
    """``folder``: a folder of sequences of image files (:class:`mbvc.data.FolderDataset`).

    Attributes:
        root: read ``<root>/<split>`` where no ``<split>_paths`` folder is given.
        grey: convert frames to one channel.
        skip_short: skip (count and log) sequences shorter than the window instead of raising.
    """

    name: str = "folder"
    root: str = ""
    grey: bool = False
    skip_short: bool = False

    def build(self, split: str) -> Dataset:
        from mbvc.data.folder import FolderDataset

        seq_len, stride = _window(self, split)
        stride = stride or (1 if split == "train" else seq_len)
        return FolderDataset(_split_folder(self, split), seq_len, stride, self.uint8, self.grey, self.skip_short)


@dataclass(frozen=True)
class ArraysData(_Paths, DataConfig):
    """``arrays``: ``.npy`` / ``.npz`` files of sequences (:class:`mbvc.data.ArrayDataset`).

    Attributes:
        array_key: the array inside ``.npz`` files ("" = the only one or ``frames``).
        skip_short: skip (count and log) sequences shorter than the window instead of raising.
    """

    name: str = "arrays"
    array_key: str = ""
    skip_short: bool = False

    def build(self, split: str) -> Dataset:
        from mbvc.data.folder import ArrayDataset

        seq_len, stride = _window(self, split)
        stride = stride or (1 if split == "train" else seq_len)
        return ArrayDataset(_split_paths(self, split, ".npy/.npz files"), seq_len, stride, self.uint8,
                            self.array_key or None, self.skip_short)


#: Dataset name -> its config class (whose ``build(split)`` makes the Dataset).
DATASETS: dict[str, type[DataConfig]] = {
    "moving_mnist": MovingMNISTData, "mnist_npz": MnistNpzData, "mnist_seq": MnistSeqData, "kth": KTHData,
    "bair": BAIRData, "rollouts": RolloutsData, "folder": FolderData, "arrays": ArraysData,
}


def dataset_config(name: Any) -> type[DataConfig]:
    """The config class of the dataset ``name``.

    Raises:
        ConfigError: an unknown name, with a "did you mean".
    """
    if name not in DATASETS:
        raise ConfigError(f"data.name must be one of {sorted(DATASETS)}, got {name!r}."
                          + did_you_mean(str(name), DATASETS))
    return DATASETS[name]


#: ``data.name`` -> the dataset ``mbvc data get NAME`` prepares for it under the data root.
DOWNLOADS = {"kth": "kth", "bair": "bair", "mnist_seq": "moving_mnist"}


def downloaded(name: str, setting: str, what: str = "the dataset folder") -> Path:
    """The complete download of ``data.name=name`` under the data root (``mbvc data get``).

    Raises:
        ConfigError: none there; the message names ``setting`` and the command that fetches it.
    """
    from mbvc.data.get.manifest import complete_folder, dataset_folder, status

    folder = complete_folder(DOWNLOADS[name])
    if folder is None:
        where = dataset_folder(DOWNLOADS[name])
        state = status(where)[0]
        hint = " (an unfinished download is there: the same command resumes it)" if state == "incomplete" else ""
        raise ConfigError(f"{setting} is required for {name} ({what}): set {setting}=/path, or run "
                          f"`mbvc data get {DOWNLOADS[name]}` to download it into {where}{hint}")
    return folder


def _root_and_size(cfg: Any) -> None:
    if not cfg.root:  # the folder `mbvc data get` prepared, so a preset needs no --set data.root
        from mbvc.data.get.manifest import complete_folder

        folder = complete_folder(DOWNLOADS[cfg.name])  # recorded in config.yaml; none yet: see _root
        object.__setattr__(cfg, "root", "" if folder is None else str(folder))  # `--set data.root=` gives None
    if cfg.image_size < 0:
        raise ConfigError(f"data.image_size must be >= 0, got {cfg.image_size}")


def _root(cfg: Any) -> str:
    """``data.root``, else the complete download under the data root (else a one-line ConfigError)."""
    return cfg.root or str(downloaded(cfg.name, "data.root"))


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
    dataset = cfg.build(split)
    logger.info("data: %s %s, %s samples", cfg.name, split,
                len(dataset) if hasattr(dataset, "__len__") else "endless")
    return dataset
