"""One process per run folder; resume refuses damaged runs; the thread count follows the run."""
from __future__ import annotations

import json
import os

import pytest
import torch

from mbvc.cli import main
from mbvc.errors import ConfigError
from mbvc.training.lock import RunLock, fresh_run_dir, remove_stale_model_temps, restore_threads
from mbvc.training.setup import prepare_run_dir

from .conftest import cli_error as _error, tiny_cli_args, tiny_config


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path):
    with RunLock(tmp_path / "run"):
        with pytest.raises(ConfigError, match=rf"in use by process {os.getpid()}\b"):
            RunLock(tmp_path / "run")
    RunLock(tmp_path / "run").release()  # released: free again


def test_a_second_trainer_cannot_resume_a_live_run(tmp_path, capsys):
    run = prepare_run_dir(tmp_path / "run", tiny_config(), resume=False)
    in_flight = run / "checkpoints" / ".ckpt-00000100.pt.abc.tmp"  # the live run's save in progress
    in_flight.parent.mkdir()
    in_flight.write_bytes(b"half")
    with RunLock(run):
        line = _error(capsys, ["train", "--resume", "--run-dir", str(run)])
        assert f"in use by process {os.getpid()}" in line
        line = _error(capsys, ["train", "mnist-predrnn-v2-small", "--run-dir", str(run)])
        assert "in use" in line
    assert in_flight.read_bytes() == b"half"


def test_auto_named_run_folders_do_not_collide(tmp_path, monkeypatch):
    monkeypatch.setattr("time.strftime", lambda fmt: "20260101-000000")
    made = [fresh_run_dir(tmp_path, "preset") for _ in range(3)]
    assert [p.name for p in made] == ["preset-20260101-000000", "preset-20260101-000000-2", "preset-20260101-000000-3"]


def test_a_failed_start_leaves_no_folder_behind(tmp_path, capsys):
    run = tmp_path / "run"
    line = _error(capsys, ["train", "mnist-predrnn-v2-small", "--run-dir", str(run), "--set", "train.device=cuda:7",
                           *tiny_cli_args()])
    assert "train.device" in line and not run.exists()
    line = _error(capsys, ["train", "mnist-predrnn-v2-small", "--run-dir", str(run), *tiny_cli_args(),
                           "--set", "data.name=folder", "--set", f"data.root={tmp_path / 'nowhere'}"])
    assert not run.exists(), line


def test_resume_with_only_damaged_checkpoints_exits_nonzero(tmp_path, capsys):
    run = prepare_run_dir(tmp_path / "run", tiny_config(), resume=False)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "ckpt-00000005.pt").write_bytes(b"damaged")
    line = _error(capsys, ["train", "--resume", "--run-dir", str(run)])
    assert "none of the 1 checkpoint" in line and "ckpt-00000005.pt" in line
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-00000005.pt"]
    assert not (run / "model.safetensors").exists()


def test_threads_are_recorded_and_restored_on_resume(tmp_path, caplog):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert restore_threads(tmp_path, None, resume=False) == 1
        assert json.loads((tmp_path / "process.json").read_text()) == {"threads": 1}
        torch.set_num_threads(2)
        assert restore_threads(tmp_path, None, resume=True) == 1  # resumed without --threads: the run's count
        torch.set_num_threads(2)
        with caplog.at_level("WARNING"):
            assert restore_threads(tmp_path, 2, resume=True) == 2
        assert "not be bit-identical" in caplog.text
    finally:
        torch.set_num_threads(before)


def test_resume_removes_the_temporary_of_a_killed_model_write(tmp_path):
    stale = tmp_path / ".model.safetensors.x1y2.tmp.safetensors"
    stale.write_bytes(b"partial")
    (tmp_path / ".config.yaml.ab12.tmp").write_text("half")
    mine = tmp_path / "model.safetensors.tmp"  # not mbvc's temporary name: kept
    mine.write_bytes(b"user")
    remove_stale_model_temps(tmp_path)
    assert not stale.exists() and not (tmp_path / ".config.yaml.ab12.tmp").exists() and mine.exists()
