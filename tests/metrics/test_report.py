"""Report writers: files exist, JSON round-trips, strips keep RGB order."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from mbvc.evaluation import EvalConfig, EvalResult, evaluate, markdown_report, report_dict, write_report
from mbvc.evaluation.strips import GAP, strip_animation, strip_image
from tests.metrics.fakes import FakeModel, SequenceSet


def small_result() -> EvalResult:
    """5 colour sequences, 2 -> 4 (call with LPIPS weights hidden)."""
    data = SequenceSet(5, length=6, size=8, channels=3)
    return evaluate(FakeModel(), DataLoader(data, batch_size=2), EvalConfig(context=2, horizon=4, num_samples=2))


def test_report_files_exist_and_json_round_trips(tmp_path: Path, no_lpips_weights: Path) -> None:
    result = small_result()
    config = {"model": {"name": "predrnn_v2", "num_hidden": [8, 8]}, "seed": 3}
    paths = write_report(result, tmp_path / "report", config=config)
    assert set(paths) == {"json", "markdown", "plot", "samples_png", "samples_gif"}
    for path in paths.values():
        assert path.is_file() and path.stat().st_size > 0
    loaded = json.loads(paths["json"].read_text())
    assert loaded == json.loads(json.dumps(report_dict(result, config)))
    assert loaded["config"] == config and loaded["num_sequences"] == 5
    assert loaded["lpips"]["available"] is False and loaded["lpips"]["input_range"] == "[-1, 1]"
    assert len(loaded["methods"]["model"]["per_frame"]["ssim"]) == 4
    assert set(loaded["methods"]) == {"model", "copy_last", "mean_frame"}
    assert not list((tmp_path / "report").glob(".*.tmp*"))  # no temporary files left behind


def test_markdown_states_lpips_status(no_lpips_weights: Path) -> None:
    text = markdown_report(small_result())
    assert "| model |" in text and "| copy_last |" in text and "| mean_frame |" in text
    assert "LPIPS: unavailable" in text and "alexnet-owt-7be5be79.pth" in text
    assert text.count("\n| ") >= 3 + 4  # summary rows + per-frame rows


def test_plot_is_a_png(tmp_path: Path, no_lpips_weights: Path) -> None:
    paths = write_report(small_result(), tmp_path)
    with Image.open(paths["plot"]) as img:
        assert img.format == "PNG" and img.width > 100


def test_strip_image_keeps_rgb_order() -> None:
    frames = torch.zeros(1, 3, 3, 4, 4)
    frames[:, :, 0] = 1.0  # pure red
    preds = torch.zeros(1, 1, 3, 4, 4)
    preds[:, :, 2] = 1.0  # pure blue
    img = strip_image(frames, preds)
    assert img.shape == (2 * 4 + GAP, 3 * 4 + 2 * GAP, 3)
    assert tuple(img[0, 0]) == (255, 0, 0)
    assert tuple(img[4 + GAP, 2 * (4 + GAP)]) == (0, 0, 255)  # prediction under the last frame
    assert tuple(img[4 + GAP, 0]) == (255, 255, 255)  # blank under the context


def test_written_png_and_gif_keep_rgb(tmp_path: Path, no_lpips_weights: Path) -> None:
    result = small_result()
    # Red of a different brightness at every step, so that no two GIF frames are merged.
    fade = torch.linspace(1.0, 0.5, 6).view(1, 6, 1, 1, 1)
    result.samples["frames"][:] = torch.tensor([1.0, 0.0, 0.0]).view(1, 1, 3, 1, 1) * fade
    paths = write_report(result, tmp_path)
    with Image.open(paths["samples_png"]) as img:
        assert img.convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    with Image.open(paths["samples_gif"]) as gif:
        assert gif.n_frames == 6
        r, g, b = gif.convert("RGB").getpixel((4, 4))  # inside the first tile, past its border
        assert r > 200 and g < 50 and b < 50


def test_grey_animation_frames() -> None:
    images = strip_animation(torch.rand(2, 5, 1, 8, 8), torch.rand(2, 3, 1, 8, 8))
    assert len(images) == 5 and all(im.shape == images[0].shape and im.shape[-1] == 3 for im in images)
    assert np.all(images[0][0, 0] == [40, 170, 60])  # context border colour
