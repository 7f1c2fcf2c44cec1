"""`mbvc train / test / predict / visualize` on tiny configs, and one-line errors for bad arguments."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mbvc.cli import main
from mbvc.models import build_model, save_model

from .conftest import cli_error as _error, tiny_cli_args, tiny_config

PRESET = "mnist-predrnn-v2-small"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 3-iteration tiny run trained through the command line."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("cli") / "run"
    args = tiny_cli_args("train.iterations=3", "train.eval_interval=3", "train.checkpoint_interval=3")
    assert main(["train", PRESET, "--run-dir", str(run), *args]) == 0
    return run


def test_train_writes_a_complete_run(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.yaml", "model.safetensors", "best.safetensors", "checkpoints", "metrics.jsonl", "train.log"} <= names
    assert (run_dir / "checkpoints" / "ckpt-00000003.pt").is_file()


def test_resume_continues_a_finished_run(run_dir, capsys):
    assert main(["train", "--resume", "--run-dir", str(run_dir), "--set", "train.iterations=4"]) == 0
    assert "finished at iteration 4" in capsys.readouterr().out
    assert (run_dir / "checkpoints" / "ckpt-00000004.pt").is_file()


def test_test_writes_the_report(run_dir, capsys):
    assert main(["test", str(run_dir), "--no-lpips"]) == 0
    out = capsys.readouterr().out
    assert "| copy_last |" in out and "| mean_frame |" in out
    report = run_dir / "eval-test"
    for name in ("metrics.json", "metrics.md", "per_frame.png", "samples.png", "samples.gif"):
        assert (report / name).is_file(), name
    figures = json.loads((report / "metrics.json").read_text())
    assert figures["num_sequences"] == 4 and set(figures["methods"]) == {"model", "copy_last", "mean_frame"}
    assert figures["config"]["model"]["name"] == "predrnn_v2"


def test_test_on_user_arrays_with_a_model_file(run_dir, tmp_path):
    frames = (np.random.default_rng(0).random((3, 6, 32, 32)) * 255).astype(np.uint8)
    np.save(tmp_path / "mine.npy", frames)
    out = tmp_path / "report"
    assert main(["test", str(run_dir / "model.safetensors"), "--data", str(tmp_path / "mine.npy"),
                 "--no-lpips", "-o", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["num_sequences"] == 3


@pytest.mark.parametrize("which", ["model.safetensors", "checkpoints/ckpt-00000003.pt"])
def test_test_on_a_file_alone_reports_lpips_unavailable(run_dir, tmp_path, monkeypatch, capsys, which):
    # No LPIPS weights anywhere: reported unavailable naming the files to place; every other metric runs.
    monkeypatch.delenv("MBVC_LPIPS_DIR", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty_hub"))
    monkeypatch.setattr("mbvc.metrics.lpips._lpips_package_dirs", lambda: [])
    monkeypatch.setattr("mbvc.metrics.lpips._converted_weights", lambda: (None, []))
    out = tmp_path / "report"
    # The file carries its run configuration (no --preset); the tiny run had LPIPS off: turn it on.
    assert main(["test", str(run_dir / which), "-o", str(out), "--set", "eval.lpips=true"]) == 0
    assert "unavailable" in capsys.readouterr().out
    figures = json.loads((out / "metrics.json").read_text())
    assert figures["lpips"]["available"] is False
    assert "alexnet-owt-7be5be79.pth" in figures["lpips"]["reason"] and "alex.pth" in figures["lpips"]["reason"]
    assert set(figures["methods"]["model"]["mean"]) == {"mse", "mae", "psnr", "ssim"}
    assert figures["config"]["checkpoint"].endswith(which.split("/")[-1])
    assert "Reason:" in (out / "metrics.md").read_text()


@pytest.mark.parametrize("kind", ["npy", "folder", "gif"])
def test_predict_from_each_context_kind(run_dir, tmp_path, kind):
    frames = (np.random.default_rng(1).random((5, 32, 32)) * 255).astype(np.uint8)
    if kind == "npy":
        context = tmp_path / "ctx.npy"
        np.save(context, frames)
    elif kind == "folder":
        context = tmp_path / "frames"
        context.mkdir()
        for i, f in enumerate(frames):
            Image.fromarray(f).save(context / f"frame_{i}.png")
    else:
        context = tmp_path / "clip.gif"
        images = [Image.fromarray(np.stack([f] * 3, -1)) for f in frames]
        images[0].save(context, save_all=True, append_images=images[1:], duration=100)
    out = tmp_path / "pred"
    assert main(["predict", str(run_dir), "--context", str(context), "-n", "4", "-o", str(out)]) == 0
    pred = np.load(out / "predictions.npy")
    assert pred.shape == (4, 1, 32, 32) and 0 <= pred.min() and pred.max() <= 1
    assert (out / "predictions.gif").is_file() and (out / "strip.png").is_file() and (out / "pred_003.png").is_file()


def test_predict_with_actions(tmp_path):
    cfg = tiny_config(preset="push-predrnn-v2-small").model.replace(num_hidden=(4, 4))
    torch.manual_seed(0)
    save_model(build_model(cfg), tmp_path / "push.safetensors")
    assert cfg.input_length == 3 and cfg.num_action_ch == 2
    np.save(tmp_path / "ctx.npy", np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8))
    np.savetxt(tmp_path / "actions.csv", np.zeros((3 - 1 + 3, 2)), delimiter=",")  # K - 1 + N rows
    argv = ["predict", str(tmp_path / "push.safetensors"), "--context", str(tmp_path / "ctx.npy"), "-n", "3",
            "-o", str(tmp_path / "out")]
    assert main([*argv, "--actions", str(tmp_path / "actions.csv")]) == 0
    assert np.load(tmp_path / "out" / "predictions.npy").shape == (3, 3, 32, 32)


def test_visualize_v2_decoupling(run_dir, capsys):
    assert main(["visualize", str(run_dir), "--sequences", "2"]) == 0
    assert "silhouette" in capsys.readouterr().out
    scores = json.loads((run_dir / "decoupling.json").read_text())
    assert (run_dir / "decoupling.png").is_file() and 0 <= scores["mean_abs_cosine"] <= 1


# ---------------------------------------------------------------- bad arguments
def test_unknown_preset(capsys, tmp_path):
    line = _error(capsys, ["train", "mnist-predrn", "--run-dir", str(tmp_path / "r")])
    assert "unknown preset 'mnist-predrn'" in line and "Did you mean 'mnist-predrnn'" in line
    assert not (tmp_path / "r").exists()


def test_unknown_key_names_file_and_key(capsys, tmp_path):
    line = _error(capsys, ["train", PRESET, "--set", "train.lr_shedule=cosine", "--run-dir", str(tmp_path / "r")])
    assert f"{PRESET}.yaml" in line and "train.lr_shedule" in line and "lr_schedule" in line


def test_missing_data_path(capsys, tmp_path):
    line = _error(capsys, ["train", "kth-predrnn-small", "--set", "data.root=/nonexistent/kth",
                           "--run-dir", str(tmp_path / "r")])
    assert "/nonexistent/kth" in line
    assert not (tmp_path / "r").exists()  # nothing written for a run that cannot start
    line = _error(capsys, ["test", str(tmp_path), "--data", str(tmp_path / "missing.npy")])
    assert "missing.npy" in line


def test_checkpoint_of_another_model(run_dir, capsys):
    line = _error(capsys, ["test", str(run_dir), "--preset", "mnist-predrnn"])
    assert "another model" in line and "num_hidden" in line
    line = _error(capsys, ["train", "mnist-predrnn", "--resume", "--run-dir", str(run_dir)])
    assert "cannot resume" in line and "another model" in line


def test_reference_checkpoint_is_not_an_mbvc_model(capsys, tmp_path):
    torch.save({"net_param": {"conv_last.weight": torch.zeros(1)}}, tmp_path / "model.ckpt-100.pt")
    line = _error(capsys, ["predict", str(tmp_path / "model.ckpt-100.pt"), "--context", "x.npy", "-o", str(tmp_path)])
    assert "mbvc convert" in line


def test_runs_are_never_overwritten(run_dir, capsys):
    line = _error(capsys, ["train", PRESET, "--run-dir", str(run_dir), *tiny_cli_args()])
    assert "already holds a run" in line and "--resume" in line


def test_resume_needs_a_run_folder(capsys, tmp_path):
    assert "--run-dir" in _error(capsys, ["train", PRESET, "--resume"])
    assert "config.yaml does not exist" in _error(capsys, ["train", "--resume", "--run-dir", str(tmp_path)])


def test_visualize_needs_a_v2_model(capsys, tmp_path):
    save_model(build_model(tiny_config().model.replace(name="predrnn", reverse_scheduled_sampling=False)),
               tmp_path / "v1.safetensors")
    assert "PredRNN-V2" in _error(capsys, ["visualize", str(tmp_path / "v1.safetensors"), "--preset", PRESET])
