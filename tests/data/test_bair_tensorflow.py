"""BAIR: genuine TFRecords written by TensorFlow in softmotion30_44k's schema, read back by mbvc.

TensorFlow is a test-only dependency and slow to import, so every test that writes records with
it lives in this module and imports it through one module-scoped fixture.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from mbvc.data.bair import BAIRDataset, bair_dataset, convert_bair, read_bair_file
from mbvc.data.rollouts import RolloutDataset, tfrecords_to_rollouts
from mbvc.errors import DataError

SIDE, STEPS = 16, 30


@pytest.fixture(scope="module")
def tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return pytest.importorskip("tensorflow")


def trajectory(seed: int):
    rng = np.random.default_rng(seed)
    return {"aux": rng.integers(0, 256, (STEPS, SIDE, SIDE, 3), dtype=np.uint8),
            "main": rng.integers(0, 256, (STEPS, SIDE, SIDE, 3), dtype=np.uint8),
            "action": rng.standard_normal((STEPS, 4)).astype(np.float32),
            "pos": rng.standard_normal((STEPS, 3)).astype(np.float32)}


def write_tf(tf, path, seeds, drop_key=None):
    """One tf.train.Example per trajectory, with BAIR's feature names."""
    def bytes_feat(b):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[b]))

    def float_feat(v):
        return tf.train.Feature(float_list=tf.train.FloatList(value=v.tolist()))

    with tf.io.TFRecordWriter(str(path)) as writer:
        for seed in seeds:
            tr = trajectory(seed)
            feats = {}
            for t in range(STEPS):
                feats[f"{t}/image_aux1/encoded"] = bytes_feat(tr["aux"][t].tobytes())
                feats[f"{t}/image_main/encoded"] = bytes_feat(tr["main"][t].tobytes())
                feats[f"{t}/action"] = float_feat(tr["action"][t])
                feats[f"{t}/endeffector_pos"] = float_feat(tr["pos"][t])
            feats.pop(drop_key, None)
            writer.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())


@pytest.fixture(scope="module")
def bair_root(tf, tmp_path_factory):
    root = tmp_path_factory.mktemp("softmotion30_44k")
    for split, groups in {"train": [[0, 1], [2, 3, 4]], "test": [[10, 11]]}.items():
        (root / split).mkdir()
        start = groups[0][0]
        for seeds in groups:
            write_tf(tf, root / split / f"traj_{seeds[0]}_to_{seeds[-1]}.tfrecords", seeds)
            start += len(seeds)
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


def test_wrong_feature_key(tf, tmp_path):
    write_tf(tf, tmp_path / "x.tfrecords", [0], drop_key="7/image_aux1/encoded")
    with pytest.raises(DataError, match=r"x.tfrecords record 0: feature '7/image_aux1/encoded' missing"):
        list(read_bair_file(tmp_path / "x.tfrecords", image_size=SIDE))
    with pytest.raises(DataError, match="Did you mean"):
        list(read_bair_file(tmp_path / "x.tfrecords", image_key="image_aux2", image_size=SIDE))


def test_wrong_image_size(bair_root):
    with pytest.raises(DataError, match="expected 12288"):
        list(read_bair_file(bair_root / "test" / "traj_10_to_11.tfrecords", image_size=64))


def test_empty_split(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="no \\*.tfrecords"):
        convert_bair(tmp_path, tmp_path / "cache", "train")
    with pytest.raises(DataError, match="split folder not found"):
        convert_bair(tmp_path, tmp_path / "cache", "test")


def test_tensorflow_reads_mbvc_records(tf, tmp_path):
    from mbvc.data.rollouts import RolloutWriter, rollouts_to_tfrecords

    tr = trajectory(5)
    with RolloutWriter(tmp_path / "r", {"env": "t"}) as w:
        w.add_episode(tr["aux"], tr["action"], tr["pos"])
    (path,) = rollouts_to_tfrecords(tmp_path / "r", tmp_path / "tf")
    spec = {"3/image_main/encoded": tf.io.FixedLenFeature([], tf.string),
            "3/action": tf.io.FixedLenFeature([4], tf.float32),
            "3/endeffector_pos": tf.io.FixedLenFeature([3], tf.float32)}
    (record,) = list(tf.data.TFRecordDataset(str(path)))
    ex = tf.io.parse_single_example(record, spec)
    frame = np.frombuffer(ex["3/image_main/encoded"].numpy(), np.uint8).reshape(SIDE, SIDE, 3)
    np.testing.assert_array_equal(frame, tr["aux"][3])
    np.testing.assert_array_equal(ex["3/action"].numpy(), tr["action"][3])
    np.testing.assert_array_equal(ex["3/endeffector_pos"].numpy(), tr["pos"][3])
