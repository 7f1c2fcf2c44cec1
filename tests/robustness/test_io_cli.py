"""Hostile files and arguments at the command line end in one line on stderr with exit code 2.

Each test runs ``python -m mbvc ...`` in a subprocess, the way a user does, and checks the exit
code, that stderr is one ``mbvc <command>: error:`` line without a traceback that names what is
wrong, and what is on disk afterwards. Sizes are bounded before anything is allocated: the
memory bombs below would ask for hundreds of GiB (or terabytes) if they were not refused.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mbvc.config import model_config_from_preset
from mbvc.models import build_model, save_model

PRESET = "mnist-predrnn-v2-small"
TINY = ["model.num_hidden=[4,4]", "model.img_width=16", "model.patch_size=4", "model.filter_size=3",
        "model.input_length=2", "model.total_length=4"]
#: ``mbvc test`` on a bare model file takes data/eval settings from the preset, made to match the model.
TEST_ARGS = ["--preset", PRESET, *[a for s in TINY for a in ("--set", s)], "--set", "eval.context=2",
             "--no-lpips", "--device", "cpu"]


def mbvc(*argv: object, cwd: Path, env: dict | None = None, fsize: int | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -m mbvc ARGV`` (optionally under a file-size limit, like a full disk)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    full_env = {**os.environ, "MUJOCO_GL": "egl", **(env or {})}
    return subprocess.run([sys.executable, "-m", "mbvc", *map(str, argv)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit if fsize is not None else None)


def one_line_error(proc: subprocess.CompletedProcess, *named: str) -> str:
    """Assert exit code 2 and one ``mbvc X: error:`` line on stderr naming each of ``named``."""
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    # stderr also carries the log (``HH:MM:SS LEVEL name: ...``) and progress bars; the error is
    # the one line of mbvc's own, and the last one
    lines = [line for line in err.splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("mbvc ")]
    assert len(ours) == 1 and ": error: " in ours[0] and lines[-1] == ours[0], err[-3000:]
    for word in named:
        assert word in ours[0], (word, ours[0])
    return ours[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder with a tiny one-channel 16x16 model (K = 2) and a valid 4-frame context."""
    root = tmp_path_factory.mktemp("io")
    torch.manual_seed(0)
    save_model(build_model(model_config_from_preset(PRESET, TINY)), root / "tiny.safetensors")
    np.save(root / "ctx.npy", np.random.default_rng(0).integers(0, 255, (4, 16, 16), dtype=np.uint8))
    (root / "a_file").write_text("keep me")
    return root


def _bomb_npy(path: Path, shape: tuple[int, ...] = (1000, 1000, 1000, 200)) -> Path:
    """A 192-byte .npy whose header declares ``shape`` float32 (745 GiB by default)."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        f.write(b"\0" * 64)
    return path


# ---------------------------------------------------------------- 1. memory bombs
def test_npy_whose_header_declares_745_gib_is_refused_before_loading(work, tmp_path):
    bomb = _bomb_npy(tmp_path / "bomb.npy")
    assert bomb.stat().st_size == 192
    out = tmp_path / "out"
    line = one_line_error(mbvc("predict", work / "tiny.safetensors", "--context", bomb, "-o", out, cwd=tmp_path),
                          "bomb.npy", "745 GiB", "truncated or corrupt")
    assert "(1000, 1000, 1000, 200)" in line
    assert not (out / "predictions.npy").exists()


def test_npy_and_npz_bombs_as_evaluation_data(work, tmp_path):
    # The dataset readers memory-map: the header is checked against the file (or zip member) size.
    bomb = _bomb_npy(tmp_path / "bomb.npy", (1000, 1000, 1000, 200))
    one_line_error(mbvc("test", work / "tiny.safetensors", "--data", bomb, *TEST_ARGS, "-o", tmp_path / "r1",
                        cwd=tmp_path), "bomb.npy", "truncated or corrupt")
    header = tmp_path / "member.npy"
    _bomb_npy(header, (1000, 1000, 1000, 200))
    npz = tmp_path / "bomb.npz"
    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        with zipfile.ZipFile(npz, "w", compression) as zf:
            zf.write(header, "frames.npy")
        one_line_error(mbvc("test", work / "tiny.safetensors", "--data", npz, *TEST_ARGS, "-o", tmp_path / "r2",
                            cwd=tmp_path), "bomb.npz[frames]", "745 GiB")
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_arrays_read_into_memory_are_bounded_by_a_limit_the_user_can_raise(work, tmp_path):
    ctx = tmp_path / "ctx.npy"
    np.save(ctx, np.zeros((4, 16, 16), np.float32))  # 4 KiB
    argv = ("predict", work / "tiny.safetensors", "--context", ctx, "-o", tmp_path / "out", "-n", "1")
    one_line_error(mbvc(*argv, cwd=tmp_path, env={"MBVC_MAX_ARRAY_GIB": "0.0000028"}),  # ~3 KB
                   "ctx.npy", "MBVC_MAX_ARRAY_GIB", "above the limit")
    assert not (tmp_path / "out").exists()
    one_line_error(mbvc(*argv, cwd=tmp_path, env={"MBVC_MAX_ARRAY_GIB": "lots"}), "MBVC_MAX_ARRAY_GIB", "'lots'")
    ok = mbvc(*argv, cwd=tmp_path, env={"MBVC_MAX_ARRAY_GIB": "0.001"})
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert np.load(tmp_path / "out" / "predictions.npy").shape == (1, 1, 16, 16)


def test_model_file_whose_config_asks_for_a_huge_model_is_refused_before_building(work, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(work / "tiny.safetensors"), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    config = json.loads(meta["config"])
    config["num_hidden"] = [200000, 200000]  # ~9 * 10^12 parameters: 37 TB of float32
    bomb = tmp_path / "bomb.safetensors"
    save_file(tensors, str(bomb), metadata={**meta, "config": json.dumps(config)})
    assert bomb.stat().st_size < 64 * 1024
    out = tmp_path / "out"
    line = one_line_error(mbvc("predict", bomb, "--context", work / "ctx.npy", "-o", out, cwd=tmp_path),
                          "bomb.safetensors", "num_hidden", "200000", "parameters")
    assert "shape mismatches" in line
    assert not out.exists()


# ---------------------------------------------------------------- 2. OS errors
@pytest.mark.parametrize("command", ["predict", "test"])
def test_output_under_a_regular_file(work, tmp_path, command):
    extra = (["--context", work / "ctx.npy"] if command == "predict"
             else ["--data", work / "ctx.npy", *TEST_ARGS])  # never read: the output is refused first
    out = work / "a_file" / "sub"
    one_line_error(mbvc(command, work / "tiny.safetensors", *extra, "-o", out, cwd=tmp_path),
                   str(out), "a_file is a file")
    assert (work / "a_file").read_text() == "keep me"


def test_convert_output_under_a_regular_file(work, tmp_path):
    ckpt = tmp_path / "model.ckpt-1"
    ckpt.write_bytes(b"x")
    one_line_error(mbvc("convert", ckpt, "--preset", PRESET, "-o", work / "a_file" / "m.safetensors", cwd=tmp_path),
                   "a_file is a file")
    assert (work / "a_file").read_text() == "keep me"


@pytest.mark.parametrize("command", ["predict", "test"])
def test_output_that_cannot_be_written(work, tmp_path, command):
    # Root ignores chmod, so a full disk / read-only place is stood in for by a file-size limit
    # (EFBIG on the first write above 2 KB); a non-root run also tries a read-only folder.
    data = tmp_path / "data.npy"
    np.save(data, np.random.default_rng(0).integers(0, 255, (2, 4, 16, 16), dtype=np.uint8))
    extra = (["--context", work / "ctx.npy", "-n", "40"] if command == "predict"
             else ["--data", data, *TEST_ARGS, "--horizon", "2"])
    out = tmp_path / "out"
    line = one_line_error(mbvc(command, work / "tiny.safetensors", *extra, "-o", out, cwd=tmp_path, fsize=2048),
                          "cannot write", str(out))
    assert "disk is full or a file-size limit" in line or "too large" in line.lower()
    assert not [p for p in out.glob(".*.tmp*")], "temporary files left behind"
    if os.geteuid() != 0:
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            one_line_error(mbvc(command, work / "tiny.safetensors", *extra, "-o", ro / "out", cwd=tmp_path),
                           "read-only", str(ro))
            assert not (ro / "out").exists()
        finally:
            ro.chmod(0o755)


# ---------------------------------------------------------------- 3. context folders
def test_context_folder_with_frames_of_two_sizes_or_a_png_that_is_no_image(work, tmp_path):
    from PIL import Image

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(mixed / "frame_0.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(mixed / "frame_1.png")
    one_line_error(mbvc("predict", work / "tiny.safetensors", "--context", mixed, "-o", tmp_path / "o1",
                        cwd=tmp_path), "frame_1.png", "8x8", "16x16")
    broken = tmp_path / "broken"
    broken.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(broken / "frame_0.png")
    (broken / "frame_1.png").write_text("not an image")
    one_line_error(mbvc("predict", work / "tiny.safetensors", "--context", broken, "-o", tmp_path / "o2",
                        cwd=tmp_path), "frame_1.png", "not a readable image")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


# ---------------------------------------------------------------- 4. truncated npz
def test_truncated_npz_as_test_data(work, tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, frames=np.zeros((2, 6, 16, 16), np.uint8))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    one_line_error(mbvc("test", work / "tiny.safetensors", "--data", truncated, *TEST_ARGS, "-o", tmp_path / "r",
                        cwd=tmp_path), "truncated.npz", "truncated or corrupt")
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- 5. --threads
@pytest.mark.parametrize("command", ["predict", "test", "visualize"])
def test_negative_threads(work, tmp_path, command):
    extra = ["--context", work / "ctx.npy", "-o", tmp_path / "o"] if command == "predict" else []
    one_line_error(mbvc(command, work / "tiny.safetensors", *extra, "--threads", "-1", cwd=tmp_path),
                   "--threads", ">= 1", "-1")
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- 6. silent acceptance
def test_context_length_zero_is_refused(work, tmp_path):
    one_line_error(mbvc("predict", work / "tiny.safetensors", "--context", work / "ctx.npy", "-k", "0",
                        "-o", tmp_path / "o", cwd=tmp_path), "-k/--context-length", ">= 1", "0")
    assert not (tmp_path / "o").exists()


def test_colour_context_for_a_grey_model_needs_grey(work, tmp_path):
    rgb = tmp_path / "rgb.npy"
    np.save(rgb, np.random.default_rng(0).integers(0, 255, (3, 16, 16, 3), dtype=np.uint8))
    one_line_error(mbvc("predict", work / "tiny.safetensors", "--context", rgb, "-o", tmp_path / "o", cwd=tmp_path),
                   "rgb.npy", "colour", "--grey")
    assert not (tmp_path / "o").exists()
    ok = mbvc("predict", work / "tiny.safetensors", "--context", rgb, "--grey", "-n", "2", "-o", tmp_path / "o",
              cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert np.load(tmp_path / "o" / "predictions.npy").shape == (2, 1, 16, 16)
    # grey content stored as RGB (all channels equal) loses nothing: taken without --grey
    np.save(rgb, np.repeat(np.random.default_rng(1).integers(0, 255, (3, 16, 16, 1), dtype=np.uint8), 3, -1))
    ok = mbvc("predict", work / "tiny.safetensors", "--context", rgb, "-n", "1", "-o", tmp_path / "o2", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr[-2000:]


def test_number_of_predicted_frames_is_bounded(work, tmp_path):
    out = tmp_path / "o"
    one_line_error(mbvc("predict", work / "tiny.safetensors", "--context", work / "ctx.npy", "-n", "100000",
                        "-o", out, cwd=tmp_path), "-n 100000", "--max-frames 100000")
    assert not out.exists()
    one_line_error(mbvc("predict", work / "tiny.safetensors", "--context", work / "ctx.npy", "-n", "0",
                        "-o", out, cwd=tmp_path), "-n/--num-frames", ">= 1")
    assert not out.exists()


# ---------------------------------------------------------------- 7. unclear messages
def test_fake_video_is_one_short_line(work, tmp_path):
    fake = tmp_path / "clip.mp4"
    fake.write_text("this is not a video\n" * 20)
    line = one_line_error(mbvc("predict", work / "tiny.safetensors", "--context", fake, "-o", tmp_path / "o",
                               cwd=tmp_path), "clip.mp4", "not a readable video")
    assert len(line) < 400 and "ffmpeg version" not in line and "install imageio-ffmpeg" not in line
    assert not (tmp_path / "o").exists()


def test_convert_of_an_empty_file_finishes_its_sentence(tmp_path):
    empty = tmp_path / "model.ckpt-1"
    empty.touch()
    out = tmp_path / "m.safetensors"
    line = one_line_error(mbvc("convert", empty, "--preset", PRESET, "-o", out, cwd=tmp_path),
                          "model.ckpt-1", "empty (0 bytes)")
    assert not line.rstrip().endswith(":")
    assert not out.exists()


def test_all_inf_context_says_inf(work, tmp_path):
    inf = tmp_path / "inf.npy"
    np.save(inf, np.full((3, 16, 16), np.inf, np.float32))
    line = one_line_error(mbvc("predict", work / "tiny.safetensors", "--context", inf, "-o", tmp_path / "o",
                               cwd=tmp_path), "inf.npy", "inf", "no finite value")
    assert "[nan, nan]" not in line


def test_too_long_horizon_names_the_flag_or_the_config_key(work, tmp_path):
    from PIL import Image

    data = tmp_path / "videos"
    for name, length in (("long", 6), ("short", 3)):
        (data / name).mkdir(parents=True)
        for i in range(length):
            Image.fromarray(np.full((16, 16), 20 * i, np.uint8)).save(data / name / f"{i}.png")
    # every video too short for context 2 + horizon 30: shorten the window (the flag is named)
    line = one_line_error(mbvc("test", work / "tiny.safetensors", "--data", data, *TEST_ARGS, "--horizon", "30",
                               "-o", tmp_path / "r", cwd=tmp_path), "--horizon", "eval.horizon")
    assert "skip_short=True" not in line
    # one video too short for context 2 + horizon 2: the setting that skips it is named as a key
    line = one_line_error(mbvc("test", work / "tiny.safetensors", "--data", data, *TEST_ARGS, "--horizon", "2",
                               "-o", tmp_path / "r", cwd=tmp_path), "short", "--set data.skip_short=true")
    assert not (tmp_path / "r").exists()
    ok = mbvc("test", work / "tiny.safetensors", "--data", data, *TEST_ARGS, "--horizon", "2",
              "--set", "data.skip_short=true", "-o", tmp_path / "r", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert (tmp_path / "r" / "metrics.json").is_file()
