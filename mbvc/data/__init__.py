"""Datasets for PredRNN world models: Moving MNIST, KTH, BAIR, env rollouts, user folders/arrays.

Every dataset is a torch ``Dataset`` of dicts: ``"frames"`` ``(T, C, H, W)`` float32 in
``[0, 1]`` (uint8 with ``uint8=True``; convert on the device with :func:`to_float`), plus
``"actions"`` ``(T, A)`` (and ``"states"``) where the data has them. The trainer builds them
through :func:`build_dataset` from a :class:`DataConfig`.

Names are imported lazily so that ``import mbvc.data`` stays cheap; nothing here imports
TensorFlow.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # config / entry point
    "DataConfig": "mbvc.data.config",
    "build_dataset": "mbvc.data.config",
    "DATASETS": "mbvc.data.config",
    "dataset_config": "mbvc.data.config",
    **{name: "mbvc.data.config" for name in ("MovingMNISTData", "MnistNpzData", "MnistSeqData", "KTHData", "BAIRData",
                                              "RolloutsData", "FolderData", "ArraysData")},
    # shared
    "to_float": "mbvc.data.windows",
    "window_starts": "mbvc.data.windows",
    "SequenceStore": "mbvc.data.store",
    "SequenceWriter": "mbvc.data.store",
    # rollouts
    "RolloutWriter": "mbvc.data.rollouts",
    "RolloutDataset": "mbvc.data.rollouts",
    "rollouts_to_tfrecords": "mbvc.data.rollouts",
    "tfrecords_to_rollouts": "mbvc.data.rollouts",
    # BAIR
    "BAIRDataset": "mbvc.data.bair",
    "bair_dataset": "mbvc.data.bair",
    "convert_bair": "mbvc.data.bair",
    "read_bair_file": "mbvc.data.bair",
    # Moving MNIST
    "MovingMNIST": "mbvc.data.mnist",
    "MovingMNISTStream": "mbvc.data.mnist",
    "MovingMNISTGenerator": "mbvc.data.mnist",
    "generate_moving_mnist": "mbvc.data.mnist",
    "write_moving_mnist": "mbvc.data.mnist",
    "load_mnist_digits": "mbvc.data.mnist",
    "MnistNpzDataset": "mbvc.data.mnist_files",
    "MnistSeqDataset": "mbvc.data.mnist_files",
    "read_reference_npz": "mbvc.data.mnist_files",
    "write_reference_npz": "mbvc.data.mnist_files",
    # KTH
    "KTHDataset": "mbvc.data.kth",
    "kth_dataset": "mbvc.data.kth",
    "convert_kth": "mbvc.data.kth",
    # the published datasets, fetched once (`mbvc data get`)
    "get_dataset": "mbvc.data.get",
    # user data
    "FolderDataset": "mbvc.data.folder",
    "ArrayDataset": "mbvc.data.folder",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mbvc.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
