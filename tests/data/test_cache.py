"""Dataset caches: no debris from a source that holds nothing; a read-only folder's fallback."""
from __future__ import annotations

import pytest

from mbvc.data.bair import convert_bair
from mbvc.data.cache import resolve_cache_dir
from mbvc.errors import DataError


def test_a_zero_byte_tfrecord_leaves_no_debris(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "traj_0_to_255.tfrecords").write_bytes(b"")
    with pytest.raises(DataError, match=r"holds no records \(empty files: traj_0_to_255\.tfrecords\)"):
        convert_bair(tmp_path, tmp_path / "mbvc_cache", "train")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train"]


def test_cache_dir_resolution(tmp_path, monkeypatch):
    assert resolve_cache_dir(tmp_path, tmp_path / "mine", "kth_train_128") == tmp_path / "mine"
    assert resolve_cache_dir(tmp_path, None, "kth_train_128") == tmp_path / "mbvc_cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("mbvc.data.cache._writable", lambda folder: False)
    (tmp_path / "mbvc_cache" / "kth_train_128").mkdir(parents=True)  # prebuilt by whoever owns the folder
    assert resolve_cache_dir(tmp_path, None, "kth_train_128") == tmp_path / "mbvc_cache"
    fallback = resolve_cache_dir(tmp_path, None, "kth_test_128")
    assert fallback.parent == tmp_path / "xdg" / "mbvc" and fallback.name.startswith(tmp_path.name + "-")
