"""Pixel metrics: SSIM parity with scikit-image, PSNR/MSE/MAE on frames with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mbvc.errors import ShapeError
from mbvc.metrics import frame_mae, frame_mse, frame_psnr, frame_ssim, pixel_metrics, to_uint8

skimage_metrics = pytest.importorskip("skimage.metrics")


def skimage_ssim(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """The reference's way: uint8 by truncation, one skimage call per (B, T) frame."""
    p8 = np.uint8(pred.clamp(0, 1).numpy() * 255)
    t8 = np.uint8(target.numpy() * 255)
    out = np.zeros(pred.shape[:2])
    for b in range(pred.shape[0]):
        for t in range(pred.shape[1]):
            a, r = p8[b, t].transpose(1, 2, 0), t8[b, t].transpose(1, 2, 0)
            if a.shape[-1] == 1:
                out[b, t] = skimage_metrics.structural_similarity(a[..., 0], r[..., 0], data_range=255)
            else:
                out[b, t] = skimage_metrics.structural_similarity(a, r, data_range=255, channel_axis=-1)
    return out


def reference_psnr(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """PSNR per frame as the PredRNN reference computes it (int32 diff, float32 sum)."""
    x = np.int32(np.uint8(pred.clamp(0, 1).numpy() * 255))
    y = np.int32(np.uint8(target.numpy() * 255))
    mse = np.sum((x - y) ** 2, axis=(2, 3, 4), dtype=np.float32) / float(np.prod(x.shape[2:]))
    return 20 * np.log10(255) - 10 * np.log10(mse)


def structured_frames(c: int, h: int, w: int) -> torch.Tensor:
    """Gradients, a checkerboard, a flat bright frame and a saturated frame: (1, 4, C, H, W)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    gradient = (xx * 0.7 + yy * 0.3).expand(c, h, w)
    checker = ((torch.arange(h)[:, None] // 3 + torch.arange(w)[None] // 3) % 2).float().expand(c, h, w)
    flat = torch.full((c, h, w), 0.98)
    saturated = torch.ones(c, h, w)
    return torch.stack([gradient, checker, flat, saturated])[None]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(7, 7), (16, 21), (32, 32)])
def test_ssim_matches_skimage_on_random_frames(channels: int, size: tuple[int, int]) -> None:
    g = torch.Generator().manual_seed(channels * 100 + size[1])
    target = torch.rand(2, 3, channels, *size, generator=g)
    pred = target + 0.25 * torch.randn(target.shape, generator=g)  # outside [0, 1]: clipped
    got = frame_ssim(pred, target)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got.numpy(), skimage_ssim(pred, target), atol=1e-4, rtol=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_skimage_on_structured_frames(channels: int) -> None:
    target = structured_frames(channels, 24, 20)
    # Pair every structured frame with a slightly shifted / dimmed version and with itself.
    pred = torch.cat([target.roll(1, dims=-1) * 0.97, target], dim=1)
    target = torch.cat([target, target], dim=1)
    got = frame_ssim(pred, target).numpy()
    np.testing.assert_allclose(got, skimage_ssim(pred, target), atol=1e-4, rtol=0)
    np.testing.assert_allclose(got[0, 4:], 1.0, atol=1e-12)  # identical frames


def test_ssim_matches_skimage_on_near_constant_bright_frames() -> None:
    # Worst case for cancellation in E[x^2] - E[x]^2: tiny variance at high intensity.
    g = torch.Generator().manual_seed(3)
    target = 1 - torch.randint(0, 3, (2, 2, 1, 32, 32), generator=g).float() / 255
    pred = 1 - torch.randint(0, 3, (2, 2, 1, 32, 32), generator=g).float() / 255
    np.testing.assert_allclose(frame_ssim(pred, target).numpy(), skimage_ssim(pred, target), atol=1e-6)


def test_to_uint8_truncates_like_numpy() -> None:
    levels = torch.arange(256, dtype=torch.float32) / 255
    x = torch.cat([levels, levels + 0.4 / 255, torch.rand(1000)]).clamp(0, 1)
    expected = np.uint8(x.numpy() * 255)
    np.testing.assert_array_equal(to_uint8(x).numpy(), expected)


def test_psnr_known_value_and_truncation() -> None:
    target = torch.zeros(1, 1, 1, 8, 8)
    pred = torch.full_like(target, 10.9 / 255)  # truncates to 10: per-pixel mse = 100
    expected = 20 * math.log10(255) - 10 * math.log10(100)
    assert frame_psnr(pred, target).item() == pytest.approx(expected, abs=1e-9)


def test_psnr_matches_reference_formula() -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 4, 3, 16, 16, generator=g)
    pred = target + 0.1 * torch.randn(target.shape, generator=g)
    np.testing.assert_allclose(frame_psnr(pred, target).numpy(), reference_psnr(pred, target), atol=1e-4)


def test_psnr_identical_frames_are_capped() -> None:
    x = torch.rand(2, 3, 1, 8, 8)
    assert torch.all(frame_psnr(x, x) == 100.0)
    assert torch.all(frame_psnr(x, x, max_db=60.0) == 60.0)
    assert torch.all(torch.isinf(frame_psnr(x, x, max_db=float("inf"))))


def test_mse_and_mae_are_summed_per_frame() -> None:
    target = torch.zeros(2, 3, 3, 4, 4)
    pred = torch.full_like(target, 0.5)
    pred[1, 2] = 0.25
    mse, mae = frame_mse(pred, target), frame_mae(pred, target)
    assert mse.shape == mae.shape == (2, 3)
    assert mse[0, 0].item() == pytest.approx(48 * 0.25)  # 4*4*3 values of 0.5^2
    assert mae[0, 0].item() == pytest.approx(48 * 0.5)
    assert mse[1, 2].item() == pytest.approx(48 * 0.0625)
    assert mae[1, 2].item() == pytest.approx(48 * 0.25)


def test_predictions_are_clipped_first() -> None:
    target = torch.zeros(1, 2, 1, 8, 8)
    target[:, 1] = 1.0
    pred = torch.empty_like(target)
    pred[:, 0], pred[:, 1] = -0.3, 1.7
    values = pixel_metrics(pred, target)
    assert torch.all(values["mse"] == 0) and torch.all(values["mae"] == 0)
    assert torch.all(values["psnr"] == 100.0) and torch.allclose(values["ssim"], torch.ones(1, 2, dtype=torch.float64))


def test_pixel_metrics_agree_with_single_metric_functions() -> None:
    g = torch.Generator().manual_seed(5)
    target = torch.rand(2, 2, 3, 12, 12, generator=g)
    pred = target + 0.2 * torch.randn(target.shape, generator=g)
    values = pixel_metrics(pred, target)
    for name, fn in (("mse", frame_mse), ("mae", frame_mae), ("psnr", frame_psnr), ("ssim", frame_ssim)):
        torch.testing.assert_close(values[name], fn(pred, target))


def test_any_leading_dims() -> None:
    x, y = torch.rand(5, 1, 9, 9), torch.rand(5, 1, 9, 9)
    assert frame_ssim(x, y).shape == (5,)
    torch.testing.assert_close(frame_ssim(x, y), frame_ssim(x[None], y[None])[0])


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ShapeError, match="one shape"):
        frame_mse(torch.rand(1, 2, 1, 8, 8), torch.rand(1, 3, 1, 8, 8))


def test_ssim_too_small_raises() -> None:
    with pytest.raises(ShapeError, match="7x7"):
        frame_ssim(torch.rand(1, 1, 1, 6, 8), torch.rand(1, 1, 1, 6, 8))


def test_non_tensor_raises() -> None:
    with pytest.raises(ShapeError, match="torch tensors"):
        frame_psnr(np.zeros((1, 1, 1, 8, 8)), torch.zeros(1, 1, 1, 8, 8))  # type: ignore[arg-type]
