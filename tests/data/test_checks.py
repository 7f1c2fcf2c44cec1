"""NaN and 0..255 float frames are refused where data enters mbvc, naming the source and the range."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mbvc.data.checks import check_finite, check_frames
from mbvc.data.folder import ArrayDataset
from mbvc.errors import DataError


def test_check_frames_names_the_range_found():
    check_frames(torch.rand(2, 3, 1, 4, 4), "ok")
    check_frames(torch.full((2, 2), 200, dtype=torch.uint8), "uint8 always passes")
    with pytest.raises(DataError, match=r"ctx\.npy: .*found values in \[0, 255\] \(0\.\.255 data\?"):
        check_frames(np.linspace(0, 255, 16, dtype=np.float32), "ctx.npy")
    x = torch.rand(8)
    x[3] = float("nan")
    with pytest.raises(DataError, match=r"frames: .*NaN/inf and values in \[0"):
        check_frames(x, "frames")
    with pytest.raises(DataError, match=r"acts\.csv: actions must be finite, found NaN/inf"):
        check_finite(torch.tensor([0.1, float("inf")]), "acts.csv", "actions")


@pytest.mark.parametrize("uint8", [False, True])
def test_array_dataset_refuses_0_255_floats(tmp_path, uint8):
    path = tmp_path / "seqs.npy"
    np.save(path, np.random.default_rng(0).uniform(0, 255, (2, 4, 8, 8)).astype(np.float32))
    data = ArrayDataset(path, seq_len=3, uint8=uint8)
    with pytest.raises(DataError, match=r"seqs\.npy sequence 0: .*found values in \[\d"):
        data[0]
    np.save(path, np.random.default_rng(0).uniform(0, 1, (2, 4, 8, 8)).astype(np.float32))
    assert ArrayDataset(path, seq_len=3, uint8=uint8)[0]["frames"].shape == (3, 1, 8, 8)


def test_a_tfrecord_length_of_2_to_the_60_is_refused_before_reading(tmp_path):
    import struct

    from mbvc.data.tfrecord_io import iter_records, masked_crc

    length = struct.pack("<Q", 2**60)
    path = tmp_path / "huge.tfrecord"
    path.write_bytes(length + struct.pack("<I", masked_crc(length)) + b"x" * 32)
    with pytest.raises(DataError, match=r"huge\.tfrecord record 0 .*claims 1152921504606846976 bytes"):
        list(iter_records(path))
