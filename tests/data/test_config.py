"""DataConfig validation and build_dataset dispatch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mbvc.data import DataConfig, build_dataset, to_float
from mbvc.data.rollouts import RolloutWriter
from mbvc.errors import ConfigError, DataError


def test_unknown_name():
    with pytest.raises(ConfigError, match="Did you mean 'moving_mnist'"):
        DataConfig(name="moving_minst")


def test_bad_seq_len():
    with pytest.raises(ConfigError, match="seq_len"):
        DataConfig(seq_len=0)


def test_bad_stride():
    with pytest.raises(ConfigError, match="stride"):
        DataConfig(stride=0)


def test_bad_image_key():
    with pytest.raises(ConfigError, match="image_key"):
        DataConfig(name="bair", root="/x", image_key="image_aux")


def test_root_required(monkeypatch, tmp_path):
    """An empty root reads the download under the data root; none there: one line naming both ways."""
    monkeypatch.setenv("MBVC_DATA", str(tmp_path))
    with pytest.raises(ConfigError, match="data.root is required for kth.*mbvc data get kth") as info:
        build_dataset(DataConfig(name="kth"), "train")
    assert "\n" not in str(info.value)


def test_unknown_key():
    with pytest.raises(ConfigError, match="Did you mean 'seq_len'"):
        DataConfig.from_dict({"seqlen": 3})


def test_bad_split():
    with pytest.raises(ConfigError, match="Did you mean 'val'"):
        build_dataset(DataConfig(), "vall")


def test_moving_mnist_splits():
    cfg = DataConfig(seq_len=6, image_size=32, val_size=3, test_size=2, uint8=True)
    train = build_dataset(cfg, "train")
    assert not hasattr(train, "__len__")  # endless stream
    assert next(iter(train))["frames"].shape == (6, 1, 32, 32)
    test = build_dataset(cfg, "test")
    assert len(test) == 2 and test[0]["frames"].dtype == torch.uint8
    assert to_float(test[0]["frames"]).max() <= 1.0


def test_paths_from_list_and_errors(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 8, 4, 4), np.uint8))
    cfg = DataConfig(name="arrays", train_paths=[str(tmp_path / "a.npy")], seq_len=4)
    assert cfg.train_paths == (str(tmp_path / "a.npy"),)
    assert len(build_dataset(cfg, "train")) == 2 * 5
    with pytest.raises(ConfigError, match="data.test_paths is empty"):
        build_dataset(cfg, "test")


def test_rollouts_under_root(tmp_path):
    with RolloutWriter(tmp_path / "train", {"env": "x"}) as w:
        w.add_episode(np.zeros((10, 4, 4, 3), np.uint8), np.zeros((10, 2), np.float32))
    cfg = DataConfig(name="rollouts", root=str(tmp_path), seq_len=4)
    assert len(build_dataset(cfg, "train")) == 7
    with pytest.raises(DataError, match="does not exist"):
        build_dataset(cfg, "val")


def test_mnist_seq_trimmed(tmp_path):
    np.save(tmp_path / "m.npy", np.zeros((20, 3, 8, 8), np.uint8))
    cfg = DataConfig(name="mnist_seq", test_paths=(str(tmp_path / "m.npy"),), seq_len=10)
    assert build_dataset(cfg, "test")[0]["frames"].shape == (10, 1, 8, 8)
    with pytest.raises(DataError, match="shorter than the window of 30"):
        build_dataset(DataConfig(name="mnist_seq", test_paths=(str(tmp_path / "m.npy"),), seq_len=30), "test")


#: A ``data`` section as mbvc wrote it into a run's config.yaml before the per-dataset classes.
OLD_SECTION = {"name": "kth", "root": "data/kth", "train_paths": [], "val_paths": [], "test_paths": [], "seq_len": 20,
               "eval_seq_len": 0, "stride": None, "eval_stride": None, "image_size": 128, "uint8": True,
               "cache_dir": "", "seed": 0, "train_size": 0, "val_size": 2000, "test_size": 3000, "num_digits": 2,
               "image_key": "image_aux1", "kth_source": "auto", "grey": False, "array_key": "", "skip_short": False}


def test_each_dataset_has_its_own_config_class_with_only_its_settings():
    from dataclasses import asdict, replace

    from mbvc.data import DATASETS, KTHData, MovingMNISTData

    kth = DataConfig(name="kth", root="/x", image_size=64)
    assert type(kth) is KTHData and isinstance(kth, DataConfig) and not hasattr(kth, "train_size")
    assert set(asdict(kth)) == {"name", "seq_len", "eval_seq_len", "stride", "eval_stride", "uint8", "root",
                                "image_size", "cache_dir", "kth_source", "skip_short"}
    assert type(DataConfig()) is MovingMNISTData and type(replace(kth, seq_len=4)) is KTHData
    assert all(cls().name == name for name, cls in DATASETS.items() if name not in ("kth", "bair"))
    with pytest.raises(ConfigError, match="data.train_size is not a setting of the kth data; its settings: name"):
        DataConfig(name="kth", root="/x", train_size=3)


def test_an_old_flat_data_section_loads_and_a_foreign_setting_is_ignored_with_a_warning(caplog):
    from mbvc.data import KTHData

    assert DataConfig.from_dict(OLD_SECTION) == KTHData(root="data/kth", image_size=128, uint8=True)
    assert not caplog.records
    # a Moving MNIST preset switched to the reference's files (`--set data.name=mnist_npz ...`)
    with caplog.at_level("WARNING"):
        cfg = DataConfig.from_dict({"name": "mnist_npz", "train_size": 10000, "train_paths": ["a.npz"], "seq_len": 20})
    assert cfg.train_paths == ("a.npz",)
    assert "data.train_size=10000 is not a setting of the mnist_npz data" in caplog.text
    with pytest.raises(ConfigError, match="unknown data config key 'num_digit'.*Did you mean 'num_digits'"):
        DataConfig.from_dict({"name": "kth", "root": "/x", "num_digit": 3})
