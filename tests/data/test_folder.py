"""User data: folders of frames and .npy/.npz arrays, with the shared windowing options."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from mbvc.data.folder import ArrayDataset, FolderDataset
from mbvc.data.windows import window_starts
from mbvc.errors import DataError


def test_window_starts():
    assert window_starts(10, 4) == [0, 1, 2, 3, 4, 5, 6]
    assert window_starts(10, 4, stride=None) == [0]
    assert window_starts(10, 4, stride=4, anchor="end") == [2, 6]
    assert window_starts(3, 4) == []


def make_videos(root, lengths, size=(10, 8), mode="L"):
    for v, n in enumerate(lengths):
        d = root / f"radar_{v}"
        d.mkdir(parents=True)
        for k in range(n):  # natural order: frame_9 before frame_10
            Image.fromarray(np.full(size[::-1] + ((3,) if mode == "RGB" else ()), 10 * k, np.uint8)).save(d / f"frame_{k}.png")


def test_folder_windows(tmp_path):
    make_videos(tmp_path, [12, 7])
    ds = FolderDataset(tmp_path, seq_len=5, stride=3)
    assert len(ds) == 3 + 1
    sample = ds[2]["frames"]
    assert sample.shape == (5, 1, 8, 10)
    assert torch.allclose(sample[:, 0, 0, 0] * 255, torch.tensor([60.0, 70, 80, 90, 100]))
    rgb = tmp_path / "rgb"
    make_videos(rgb, [5], mode="RGB")
    assert FolderDataset(rgb, seq_len=5)[0]["frames"].shape == (5, 3, 8, 10)
    assert FolderDataset(rgb, seq_len=5, grey=True, uint8=True)[0]["frames"].dtype == torch.uint8


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        FolderDataset(tmp_path / "none", seq_len=2)
    with pytest.raises(DataError, match="no video folders"):
        FolderDataset(tmp_path, seq_len=2)
    make_videos(tmp_path, [4])
    Image.fromarray(np.zeros((9, 10), np.uint8)).save(tmp_path / "radar_0" / "frame_9.png")
    with pytest.raises(DataError, match="frame_9.png: frame size 10x9 differs from 10x8"):
        FolderDataset(tmp_path, seq_len=2)


def test_folder_short_video(tmp_path):
    make_videos(tmp_path, [6, 3])
    with pytest.raises(DataError, match="radar_1 has 3 steps, shorter than the window of 4"):
        FolderDataset(tmp_path, seq_len=4)
    assert len(FolderDataset(tmp_path, seq_len=4, skip_short=True)) == 3


def test_npy_and_npz_arrays(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (3, 9, 6, 5), dtype=np.uint8)
    np.save(tmp_path / "a.npy", data)
    np.savez(tmp_path / "b.npz", frames=data[:2], other=np.zeros(3))
    ds = ArrayDataset([tmp_path / "a.npy", tmp_path / "b.npz"], seq_len=4, stride=5)
    assert len(ds) == 5 * 2  # 9 frames, stride 5 -> starts 0 and 5 in each of 3 + 2 sequences
    assert torch.equal(ds[2]["frames"], torch.from_numpy(data[1, :4, None]).float() / 255)
    assert torch.equal(ds[7]["frames"], torch.from_numpy(data[0, 5:9, None]).float() / 255)
    colour = np.random.default_rng(1).random((2, 5, 4, 4, 3), dtype=np.float32)
    np.savez_compressed(tmp_path / "c.npz", colour)
    ds = ArrayDataset(tmp_path / "c.npz", seq_len=5, stride=None)
    assert torch.equal(ds[1]["frames"], torch.from_numpy(colour[1]).permute(0, 3, 1, 2))


def test_array_errors(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros((1, 4, 4, 4)), b=np.zeros(2))
    with pytest.raises(DataError, match="x.npz has no array 'frames'"):
        ArrayDataset(tmp_path / "x.npz", seq_len=2)
    np.save(tmp_path / "small.npy", np.zeros((1, 4, 4, 4), np.uint8))
    np.save(tmp_path / "big.npy", np.zeros((1, 4, 8, 8), np.uint8))
    with pytest.raises(DataError, match="mixed frame sizes"):
        ArrayDataset([tmp_path / "small.npy", tmp_path / "big.npy"], seq_len=2)
    with pytest.raises(DataError, match="shorter than the window of 5"):
        ArrayDataset(tmp_path / "small.npy", seq_len=5)
    np.save(tmp_path / "flat.npy", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match=r"expected frames \(N, T, H, W\)"):
        ArrayDataset(tmp_path / "flat.npy", seq_len=2)
    with pytest.raises(DataError, match="not found"):
        ArrayDataset(tmp_path / "missing.npy", seq_len=2)


def test_array_dataset_pickles_without_the_data(tmp_path):
    data = np.zeros((4, 8, 16, 16), np.uint8)
    np.save(tmp_path / "a.npy", data)
    ds = ArrayDataset(tmp_path / "a.npy", seq_len=4)
    blob = pickle.dumps(ds)
    assert len(blob) < data.nbytes // 4
    assert torch.equal(pickle.loads(blob)[5]["frames"], ds[5]["frames"])
