"""KTH: small .avi files in KTH naming (lossless ffv1 via imageio-ffmpeg) and the extracted layout."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mbvc.data.kth import KTHDataset, convert_kth, kth_dataset, resize_bilinear
from mbvc.errors import DataError

imageio = pytest.importorskip("imageio.v2")
pytest.importorskip("imageio_ffmpeg")

# (person, action, frames): frame k of every video is the constant grey value 4 * k.
VIDEOS = [(1, "boxing", 50), (2, "running", 45), (17, "boxing", 30), (18, "jogging", 33)]


def write_avi(path, n, height=24, width=32):
    writer = imageio.get_writer(path, format="FFMPEG", fps=25, codec="ffv1", macro_block_size=1,
                                pixelformat="bgr0")
    for k in range(n):
        writer.append_data(np.full((height, width, 3), 4 * k, np.uint8))
    writer.close()


@pytest.fixture(scope="module")
def avi_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kth")
    for person, action, n in VIDEOS:
        (root / action).mkdir(exist_ok=True)
        write_avi(root / action / f"person{person:02d}_{action}_d1_uncomp.avi", n)
    return root


def first_values(ds):
    return [round(float(ds[i]["frames"][0].mean()) * 255 / 4) for i in range(len(ds))]


def test_train_split_and_strides(avi_root, tmp_path):
    ds = kth_dataset(avi_root, "train", image_size=16, cache_dir=tmp_path)
    assert ds[0]["frames"].shape == (20, 1, 16, 16)
    # boxing (50 frames): non-overlapping windows laid from the video's end -> starts 10, 30;
    # running (45 frames): windows 3 frames apart from the end -> starts 1, 4, ..., 25.
    assert first_values(ds) == [10, 30] + list(range(1, 26, 3))
    window = ds[1]["frames"][:, 0, 0, 0] * 255
    assert torch.allclose(window, torch.arange(30, 50) * 4.0)


def test_test_split_uses_30_frame_windows(avi_root, tmp_path):
    ds = kth_dataset(avi_root, "test", image_size=16, cache_dir=tmp_path)
    assert ds[0]["frames"].shape[0] == 30
    assert first_values(ds) == [0, 0, 3]  # person 17 boxing (30 frames), person 18 jogging (33)
    assert len(KTHDataset(tmp_path / "kth_test_16", 30, stride=30)) == 2


def test_short_video_raises(avi_root, tmp_path):
    cache = convert_kth(avi_root, tmp_path, "test", image_size=16)
    with pytest.raises(DataError, match="person17_boxing_d1.*shorter than the window of 31"):
        KTHDataset(cache, 31)
    assert len(KTHDataset(cache, 31, skip_short=True)) == 1


def test_extracted_frames_with_gap(tmp_path):
    from PIL import Image

    video = tmp_path / "walking" / "person03_walking_d2"
    video.mkdir(parents=True)
    numbers = list(range(1, 21)) + list(range(23, 48))  # frames 21, 22 missing
    for k in numbers:
        Image.fromarray(np.full((12, 16, 3), k, np.uint8)).save(video / f"image_{k:04d}.png")
    ds = kth_dataset(tmp_path, "train", image_size=8, cache_dir=tmp_path / "c")
    # runs 1..20 and 23..47: windows of 20 from each run's end, never across the gap
    assert [int(ds[i]["frames"][0, 0, 0, 0] * 255) for i in range(len(ds))] == [1, 28]


def test_mixed_frame_sizes(tmp_path):
    from PIL import Image

    video = tmp_path / "boxing" / "person01_boxing_d1"
    video.mkdir(parents=True)
    for k in range(1, 4):
        Image.fromarray(np.zeros((12, 16 + (k == 3), 3), np.uint8)).save(video / f"image_{k:04d}.png")
    with pytest.raises(DataError, match="person01_boxing_d1.*mixed sizes"):
        convert_kth(tmp_path, tmp_path / "c", "train", image_size=8)


def test_missing_and_empty(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        convert_kth(tmp_path / "nope", tmp_path / "c", "train")
    with pytest.raises(DataError, match="no KTH videos"):
        convert_kth(tmp_path, tmp_path / "c", "train")


def test_empty_split(avi_root, tmp_path):
    root = tmp_path / "only_train"
    (root / "boxing").mkdir(parents=True)
    write_avi(root / "boxing" / "person01_boxing_d1_uncomp.avi", 3)
    with pytest.raises(DataError, match="persons 17-25"):
        convert_kth(root, tmp_path / "c", "test")


def test_resize_matches_pixel_centre_bilinear():
    frame = np.arange(12, dtype=np.float64).reshape(3, 4)
    assert np.allclose(resize_bilinear(frame, 3, 4), frame)  # identity
    up = resize_bilinear(np.array([[0.0, 10.0]]), 1, 4)  # centres at -0.25, 0.25, 0.75, 1.25
    assert np.allclose(up, [[0.0, 2.5, 7.5, 10.0]])


def test_batched_resize_equals_the_matrix_form():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (40, 120, 160)).astype(np.float64)  # more than one chunk of 16
    for h, w in ((128, 128), (64, 64), (100, 90), (200, 170)):
        def weights(n_in, n_out):  # the dense interpolation matrix of the same rule
            m = np.zeros((n_out, n_in))
            for j in range(n_out):
                src = min(max((j + 0.5) * n_in / n_out - 0.5, 0.0), n_in - 1.0)
                lo = int(np.floor(src))
                m[j, lo] += 1 - (src - lo)
                m[j, min(lo + 1, n_in - 1)] += src - lo
            return m
        dense = np.stack([weights(120, h) @ f @ weights(160, w).T for f in frames])
        exact = (h, w) in ((128, 128), (64, 64))  # 120/128, 160/128, 120/64, 160/64: short binary fractions
        np.testing.assert_allclose(resize_bilinear(frames, h, w), dense, atol=0 if exact else 1e-3)
        np.testing.assert_allclose(resize_bilinear(frames[0], h, w), dense[0], atol=0 if exact else 1e-3)


def test_worker_processes_write_the_same_cache(avi_root, tmp_path, monkeypatch):
    monkeypatch.setattr("mbvc.data.kth_decode.MIN_VIDEOS_PER_WORKER", 1)
    one = convert_kth(avi_root, tmp_path / "one", "train", image_size=16, workers=1)
    two = convert_kth(avi_root, tmp_path / "two", "train", image_size=16, workers=2)
    for a, b in zip(sorted(one.rglob("*.bin")), sorted(two.rglob("*.bin"))):
        assert a.read_bytes() == b.read_bytes()
    assert (one / "manifest.json").read_text() == (two / "manifest.json").read_text()
    with pytest.raises(DataError, match="workers"):
        convert_kth(avi_root, tmp_path / "three", "train", workers=0)
