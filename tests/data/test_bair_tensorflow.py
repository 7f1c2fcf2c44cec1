"""BAIR: genuine TFRecords written by TensorFlow in softmotion30_44k's schema, read back by mbvc.

TensorFlow is a test-only dependency; it runs in a subprocess (tests/data/tf_reference.py)
because importing it into a process that already rendered with Mesa's OpenGL crashes.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mbvc.data.bair import BAIRDataset, bair_dataset, convert_bair, read_bair_file
from mbvc.data.rollouts import RolloutDataset, tfrecords_to_rollouts
from mbvc.errors import DataError

from .tf_reference import SIDE, trajectory

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                reason="tensorflow (a test dependency) is not installed")


def run_tf(*tasks: dict) -> None:
    """Run TensorFlow write/read tasks in a fresh process (see tf_reference.py)."""
    script = Path(__file__).with_name("tf_reference.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(script), json.dumps(tasks)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def bair_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("softmotion30_44k")
    tasks = []
    for split, groups in {"train": [[0, 1], [2, 3, 4]], "test": [[10, 11]]}.items():
        (root / split).mkdir()
        for seeds in groups:
            tasks.append({"op": "write", "path": str(root / split / f"traj_{seeds[0]}_to_{seeds[-1]}.tfrecords"),
                          "seeds": seeds})
    # A record without one feature, for the error test (written here to start TensorFlow once).
    (root / "broken").mkdir()
    tasks.append({"op": "write", "path": str(root / "broken" / "x.tfrecords"), "seeds": [0],
                  "drop_key": "7/image_aux1/encoded"})
    run_tf(*tasks)
    return root


def test_records_read_back_exactly(bair_root):
    episodes = list(read_bair_file(bair_root / "train" / "traj_2_to_4.tfrecords", image_size=SIDE))
    assert len(episodes) == 3
    expected = trajectory(3)
    np.testing.assert_array_equal(episodes[1]["frames"], expected["aux"])
    np.testing.assert_array_equal(episodes[1]["actions"], expected["action"])
    np.testing.assert_array_equal(episodes[1]["states"], expected["pos"])
    main = next(read_bair_file(bair_root / "test" / "traj_10_to_11.tfrecords", "image_main", SIDE))
    np.testing.assert_array_equal(main["frames"], trajectory(10)["main"])


def test_cache_and_windows(bair_root, tmp_path):
    train = bair_dataset(bair_root, "train", seq_len=12, cache_dir=tmp_path, image_size=SIDE)
    assert len(train) == 5 * 19  # reference rule: every window of 12 in 30 steps
    sample = train[2 * 19]
    assert sample["frames"].shape == (12, 3, SIDE, SIDE)
    expected = torch.from_numpy(trajectory(2)["aux"][:12]).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(sample["frames"], expected)
    assert torch.equal(sample["actions"], torch.from_numpy(trajectory(2)["action"][:12]))
    assert len(BAIRDataset(tmp_path / f"bair_train_image_aux1_{SIDE}", 12, stride=None)) == 5
    test = bair_dataset(bair_root, "test", seq_len=30, cache_dir=tmp_path, image_size=SIDE)
    assert len(test) == 2 and test[1]["frames"].shape[0] == 30
    again = convert_bair(bair_root, tmp_path, "train", image_size=SIDE)  # reused, not rebuilt
    assert again == tmp_path / f"bair_train_image_aux1_{SIDE}"


def test_tfrecords_to_rollouts(bair_root, tmp_path):
    n = tfrecords_to_rollouts(bair_root / "test", tmp_path / "r", image_size=SIDE)
    assert n == 2
    ds = RolloutDataset(tmp_path / "r", seq_len=30, stride=None, uint8=True)
    assert torch.equal(ds[0]["frames"], torch.from_numpy(trajectory(10)["aux"]).permute(0, 3, 1, 2))


def test_corrupt_byte_is_a_crc_error(bair_root, tmp_path):
    data = bytearray((bair_root / "test" / "traj_10_to_11.tfrecords").read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.tfrecords"
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"bad.tfrecords record \d .*CRC"):
        list(read_bair_file(bad, image_size=SIDE))


def test_truncated_file(bair_root, tmp_path):
    data = (bair_root / "test" / "traj_10_to_11.tfrecords").read_bytes()
    bad = tmp_path / "cut.tfrecords"
    bad.write_bytes(data[:-100])
    with pytest.raises(DataError, match="cut.tfrecords record 1 .*truncated"):
        list(read_bair_file(bad, image_size=SIDE))


def test_wrong_feature_key(bair_root):
    bad = bair_root / "broken" / "x.tfrecords"
    with pytest.raises(DataError, match=r"x.tfrecords record 0: feature '7/image_aux1/encoded' missing"):
        list(read_bair_file(bad, image_size=SIDE))
    with pytest.raises(DataError, match="Did you mean"):
        list(read_bair_file(bad, image_key="image_aux2", image_size=SIDE))


def test_wrong_image_size(bair_root):
    with pytest.raises(DataError, match="expected 12288"):
        list(read_bair_file(bair_root / "test" / "traj_10_to_11.tfrecords", image_size=64))


def test_empty_split(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="no \\*.tfrecords"):
        convert_bair(tmp_path, tmp_path / "cache", "train")
    with pytest.raises(DataError, match="split folder not found"):
        convert_bair(tmp_path, tmp_path / "cache", "test")


def test_tensorflow_reads_mbvc_records(tmp_path):
    from mbvc.data.rollouts import RolloutWriter, rollouts_to_tfrecords

    tr = trajectory(5)
    with RolloutWriter(tmp_path / "r", {"env": "t"}) as w:
        w.add_episode(tr["aux"], tr["action"], tr["pos"])
    (path,) = rollouts_to_tfrecords(tmp_path / "r", tmp_path / "tf")
    out = tmp_path / "parsed.npz"
    run_tf({"op": "read", "path": str(path), "step": 3, "side": SIDE, "out": str(out)})
    ex = np.load(out)
    np.testing.assert_array_equal(ex["frame"], tr["aux"][3])
    np.testing.assert_array_equal(ex["action"], tr["action"][3])
    np.testing.assert_array_equal(ex["pos"], tr["pos"][3])


def _copy_split(bair_root, root):
    (root / "train").mkdir(parents=True)
    for f in (bair_root / "train").iterdir():
        (root / "train" / f.name).write_bytes(f.read_bytes())
    return root


def test_read_only_dataset_folder_caches_in_the_user_cache(bair_root, tmp_path, monkeypatch):
    root = _copy_split(bair_root, tmp_path / "shared")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    # Tests may run as root, for whom chmod 555 is no barrier: make <root> read-only by decree.
    monkeypatch.setattr("mbvc.data.cache._writable", lambda folder: False)
    train = bair_dataset(root, "train", seq_len=30, stride=None, image_size=SIDE)
    assert len(train) == 5 and not (root / "mbvc_cache").exists()
    assert [p.name for p in (tmp_path / "xdg" / "mbvc").iterdir()][0].startswith("shared-")


def test_a_stale_partial_cache_is_rebuilt(bair_root, tmp_path):
    from mbvc.data.store import SequenceWriter

    root = _copy_split(bair_root, tmp_path / "data")
    partial = tmp_path / "cache" / f".bair_train_image_aux1_{SIDE}.partial"
    with SequenceWriter(partial, {"source": "bair", "files": [["deleted.tfrecords", 1]]}):
        pass  # a build interrupted before a corrupt file was deleted
    cache = convert_bair(root, tmp_path / "cache", "train", image_size=SIDE)
    assert len(BAIRDataset(cache, 30, stride=None)) == 5 and not partial.exists()


def test_unwritable_cache_dir_is_a_data_error(bair_root, tmp_path, monkeypatch):
    from mbvc.data import store

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "ro"))

    monkeypatch.setattr(store.SequenceWriter, "__init__", refuse)
    with pytest.raises(DataError, match=r"cannot write the dataset cache .*ro.*data\.cache_dir"):
        convert_bair(bair_root, tmp_path / "ro", "train", image_size=SIDE)
