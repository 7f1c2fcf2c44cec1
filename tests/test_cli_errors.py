"""Each bad command of issue 13 ends in one line on stderr naming the argument, exit code 2, no traceback.

Most run through :func:`mbvc.cli.main` in this process (a subprocess costs seconds for the torch
import); one runs the real console entry point in a subprocess to check the process-level output.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mbvc.cli import main
from mbvc.config import model_config_from_preset
from mbvc.models import build_model, save_model

PRESET = "mnist-predrnn-v2-small"
TINY = ["model.num_hidden=[4,4]", "model.img_width=16", "model.patch_size=4", "model.filter_size=3",
        "model.input_length=2", "model.total_length=4"]


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("mbvc ")]
    assert len(lines) == 1 and "error:" in lines[0], err
    return lines[0]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(build_model(model_config_from_preset(PRESET, TINY)), path)
    return path


@pytest.fixture(scope="module")
def action_model_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny-action.safetensors"
    cfg = model_config_from_preset("bair-predrnn-v2-small", [*TINY, "model.num_hidden=[8,8]", "model.num_action_ch=2"])
    save_model(build_model(cfg), path)
    return path


@pytest.fixture
def bad_presets(tmp_path) -> dict[str, Path]:
    good = (Path(__file__).parents[1] / "mbvc" / "configs" / f"{PRESET}.yaml").read_text()
    syntax = tmp_path / "syntax.yaml"
    syntax.write_text("model:\n  name: [predrnn_v2\n")
    tabs = tmp_path / "tabs.yaml"
    tabs.write_text(good.replace("\n  ", "\n\t"))
    return {"syntax": syntax, "tabs": tabs}


@pytest.mark.parametrize("case, args, named", [
    ("syntax", [], ["syntax.yaml, line 3", "not valid YAML"]),
    ("tabs", [], ["tabs.yaml, line", "tabs"]),
    (PRESET, ["--set", "model.num_hidden=32"], ["num_hidden", "list", "32"]),
    (PRESET, ["--set", "train.lr=nan"], ["train.lr", "finite", "nan"]),
    (PRESET, ["--set", "eval.batch_size=x"], ["eval.batch_size"]),
])
def test_bad_presets_and_overrides(capsys, tmp_path, bad_presets, case, args, named):
    run = tmp_path / "run"
    line = _one_line_error(capsys, ["train", bad_presets.get(case, case), "--run-dir", run, *args])
    for word in named:
        assert word in line, line
    assert not run.exists()  # validated before anything was created


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_leaves_nothing_to_block_the_retry(capsys, tmp_path):
    run = tmp_path / "run"
    line = _one_line_error(capsys, ["train", PRESET, "--run-dir", run, "--set", "train.device=cuda"])
    assert "train.device='cuda:0'" in line and "CUDA is not available" in line
    assert not run.exists()


def _npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array, allow_pickle=True)
    return path


def test_predict_refuses_unreadable_and_out_of_range_context(capsys, tmp_path, model_file):
    frames = np.random.default_rng(0).uniform(0, 1, (3, 16, 16)).astype(np.float32)
    nan = frames.copy()
    nan[1, 2, 3] = np.nan
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"\x93NUMPY garbage" * 10)
    cases = {
        _npy(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object)): "objects.npy",
        garbage: "garbage.npy",
        _npy(tmp_path / "nan.npy", nan): "NaN",
        _npy(tmp_path / "bytes.npy", frames * 255): "values in [",
    }
    for context, named in cases.items():
        line = _one_line_error(capsys, ["predict", model_file, "--context", context, "-o", tmp_path / "out"])
        assert named in line and context.name in line, line
    assert not (tmp_path / "out" / "predictions.npy").exists()
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    line = _one_line_error(capsys, ["predict", model_file, "--context", tmp_path / "nan.npy", "-o", a_file])
    assert "-o" in line and "is a file" in line


def test_predict_refuses_bad_actions(capsys, tmp_path, action_model_file):
    context = _npy(tmp_path / "ctx.npy", np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32))
    header = tmp_path / "actions.csv"
    header.write_text("dx,dy\n" + "0.1,0.2\n" * 12)
    nan = tmp_path / "nan.csv"
    nan.write_text("0.1,0.2\n" + "nan,0\n" + "0.1,0.2\n" * 8)
    for actions, named in ((header, "header row"), (nan, "actions must be finite")):
        line = _one_line_error(capsys, ["predict", action_model_file, "--context", context, "--actions", actions,
                                        "-n", "3", "-o", tmp_path / "out"])
        assert named in line and actions.name in line, line


def test_collect_names_the_environment_and_the_keyword(capsys, tmp_path):
    line = _one_line_error(capsys, ["collect", tmp_path / "c", "--env", "mbvc/Psh-v0", "-n", "1", "--no-progress"])
    assert "'mbvc/Psh-v0'" in line and "Did you mean 'mbvc/Push-v0'?" in line
    line = _one_line_error(capsys, ["collect", tmp_path / "c", "-n", "1", "--no-progress", "--image-size", "16",
                                    "--env-kwargs", '{"num_blokcs": 2}'])
    assert "'num_blokcs'" in line and "Did you mean 'num_blocks'?" in line


def test_the_console_script_prints_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "mbvc.cli", "train", str(bad), "--run-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "bad.yaml, line" in proc.stderr


def test_a_reader_that_goes_away_is_not_an_error(tmp_path):
    """``mbvc data list | head -1``: the closed pipe ends the command quietly (exit 141, as a shell's)."""
    proc = subprocess.Popen([sys.executable, "-m", "mbvc", "data", "list"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "MBVC_DATA": str(tmp_path)})
    proc.stdout.close()  # before the command writes: its first write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "error" not in err.lower() and "Traceback" not in err
