"""Moving MNIST: generator statistics and determinism, reference file readers, DataLoader seeding."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mbvc.data.mnist import (MovingMNIST, MovingMNISTGenerator, MovingMNISTStream, POOLS,
                             generate_moving_mnist, load_mnist_digits, write_moving_mnist)
from mbvc.data.mnist_files import MnistNpzDataset, MnistSeqDataset, read_reference_npz
from mbvc.errors import DataError

# sha256 of generate_moving_mnist(3, seed=0, split="test"): the same bytes on every machine,
# because generation uses PCG64 streams and IEEE-exact arithmetic only. If the generator is
# changed on purpose, regenerate with that call and update this constant.
GOLDEN = "d87ea38a749882bcb1644e3d54131114110a038b0baaaad3c83e83a711a61e77"


def test_shipped_digits():
    digits = load_mnist_digits()
    assert digits.shape == (10000, 28, 28) and digits.dtype == np.uint8
    assert digits[:1000].mean() == pytest.approx(digits.mean(), rel=0.1)
    sizes = [len(load_mnist_digits(s)) for s in POOLS]
    assert sizes == [8000, 1000, 1000]
    with pytest.raises(DataError, match="Did you mean 'test'"):
        load_mnist_digits("tset")


def test_golden_and_determinism():
    x = generate_moving_mnist(3, seed=0, split="test")
    assert hashlib.sha256(x.tobytes()).hexdigest() == GOLDEN
    gen = MovingMNISTGenerator(split="test")
    np.testing.assert_array_equal(gen.sequence(0, 2), x[2])  # order-independent
    assert not np.array_equal(gen.sequence(1, 2), x[2])


def test_pools_are_disjoint():
    train = MovingMNISTGenerator(split="train")
    test = MovingMNISTGenerator(split="test")
    assert not np.shares_memory(train.digits, test.digits)  # disjoint slices of the shipped digits


def test_trajectories_stay_in_frame_bounce_and_keep_speed():
    gen = MovingMNISTGenerator(split="train", seq_len=200)
    bounced = 0
    for i in range(5):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([7, i])))
        traj = gen.trajectories(rng)
        assert traj.min() >= 0 and traj.max() <= 64 - 28
        steps = np.diff(traj, axis=1)
        # floor() of a constant-speed path: each coordinate moves by at most ceil(speed) px.
        assert np.abs(steps).max() <= 4
        signs = np.sign(steps[..., 0][np.abs(steps[..., 0]) > 1])
        bounced += int((np.diff(signs) != 0).sum())
    assert bounced > 0


def test_frames_are_max_of_digits():
    digits = np.zeros((2, 4, 4), np.uint8)
    digits[0, :, :2], digits[1, :, 1:] = 100, 200
    gen = MovingMNISTGenerator(digits, seq_len=3, image_size=4, num_digits=2, speed=0)
    frames = gen.sequence(0, 0)  # canvas = digit size: both digits pinned at (0, 0)
    chosen = np.random.Generator(np.random.PCG64(np.random.SeedSequence([0, 0]))).integers(0, 2, 2)
    np.testing.assert_array_equal(frames[0], np.maximum(digits[chosen[0]], digits[chosen[1]]))
    stats = generate_moving_mnist(8, seed=3, split="val")
    assert stats.shape == (8, 20, 64, 64) and stats.max() == 255 and 5 < stats.mean() < 40


def test_bad_generator_args():
    with pytest.raises(DataError, match="speed"):
        MovingMNISTGenerator(speed=100)
    with pytest.raises(DataError, match="smaller than the digits"):
        MovingMNISTGenerator(image_size=16)


def test_npz_and_npy_round_trip(tmp_path):
    write_moving_mnist(tmp_path / "t.npz", 4, seed=5)
    write_moving_mnist(tmp_path / "t.npy", 4, seed=5, fmt="npy")
    raw = generate_moving_mnist(4, seed=5)
    npz, npy = MnistNpzDataset(tmp_path / "t.npz"), MnistSeqDataset(tmp_path / "t.npy")
    assert len(npz) == len(npy) == 4
    for i in range(4):
        expected = torch.from_numpy(raw[i][:, None]).float() / 255
        assert torch.equal(npy[i]["frames"], expected)
        assert torch.allclose(npz[i]["frames"], expected, atol=1e-7)
        assert torch.equal(npz[i]["frames"].mul(255).round().byte(), MnistNpzDataset(tmp_path / "t.npz", uint8=True)[i]["frames"])
    assert isinstance(read_reference_npz(tmp_path / "t.npz")["input_raw_data"], np.memmap)


def test_npz_like_the_reference_loader(tmp_path):
    """Clips point anywhere; dims with two rows send outputs to output_raw_data; values kept as stored."""
    rng = np.random.default_rng(0)
    inp, out = rng.random((9, 1, 8, 8), dtype=np.float32), rng.random((7, 1, 8, 8), dtype=np.float32)
    clips = np.array([[[5, 3], [0, 2]], [[0, 4], [3, 4]]])
    np.savez_compressed(tmp_path / "r.npz", clips=clips, dims=np.array([[1, 8, 8], [1, 8, 8]]),
                        input_raw_data=inp, output_raw_data=out)
    ds = MnistNpzDataset([tmp_path / "r.npz", tmp_path / "r.npz"])  # two files at once work
    assert len(ds) == 4
    np.testing.assert_array_equal(ds[0]["frames"].numpy(), np.concatenate([inp[5:8], out[0:4]]))
    np.testing.assert_array_equal(ds[3]["frames"].numpy(), np.concatenate([inp[0:2], out[3:7]]))


def test_npz_missing_key(tmp_path):
    np.savez(tmp_path / "bad.npz", clips=np.zeros((2, 1, 2), int), dims=np.array([[1, 8, 8]]))
    with pytest.raises(DataError, match=r"bad.npz has no array 'input_raw_data'"):
        MnistNpzDataset(tmp_path / "bad.npz")


def test_npz_clips_out_of_range(tmp_path):
    np.savez(tmp_path / "bad.npz", clips=np.array([[[0, 30]], [[0, 1]]]), dims=np.array([[1, 8, 8]]),
             input_raw_data=np.zeros((20, 1, 8, 8), np.float32))
    with pytest.raises(DataError, match="points past the 20 stored frames"):
        MnistNpzDataset(tmp_path / "bad.npz")


def test_npy_wrong_layout(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((20, 3, 8, 8), np.float32))
    with pytest.raises(DataError, match="expected uint8 \\(T, N, H, W\\)"):
        MnistSeqDataset(tmp_path / "f.npy")


def _batches(dataset, **kw):
    loader = DataLoader(dataset, batch_size=4, num_workers=2, **kw)
    out = []
    for k, batch in enumerate(loader):
        out.append(batch["frames"])
        if k == 2:
            break
    return torch.cat(out)


def test_dataloader_workers_are_deterministic():
    ds = MovingMNIST(16, seed=1, split="train", seq_len=4, uint8=True)
    a = _batches(ds, shuffle=True, generator=torch.Generator().manual_seed(3))
    b = _batches(ds, shuffle=True, generator=torch.Generator().manual_seed(3))
    c = _batches(ds, shuffle=True, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    stream = MovingMNISTStream(seed=1, seq_len=4, uint8=True)
    assert torch.equal(_batches(stream), _batches(stream))
