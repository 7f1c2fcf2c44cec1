"""Batched per-frame image metrics with the PredRNN paper's conventions.

All functions take predictions and targets shaped ``(..., C, H, W)`` (normally
``(B, T, C, H, W)``) in ``[0, 1]`` and return one value per frame, shaped like the leading
dimensions (normally ``(B, T)``). They run on the tensors' device with no Python loop over
images: a batch is a handful of elementwise kernels (on a CPU, SSIM walks cache-sized chunks
of many images at a time).

Conventions (see ``docs/metrics.md``):

* predictions are clipped to ``[0, 1]`` first (targets are trusted);
* MSE and MAE are SUMMED over the pixels and channels of a frame, on the ``[0, 1]`` scale;
* PSNR and SSIM are computed on uint8 frames made by truncation, ``uint8(x * 255)``;
* PSNR is ``20 log10(255) - 10 log10(mse)`` with ``mse`` the mean squared error per pixel
  value; identical frames (``mse = 0``) would give ``+inf``, so PSNR is capped at
  ``max_db`` (100 dB by default, far above any real prediction);
* SSIM equals ``skimage.metrics.structural_similarity(a, b, data_range=255)`` on the uint8
  frames (7x7 uniform window, sample covariance, border of 3 pixels left out of the mean,
  channels averaged).
"""
from __future__ import annotations

import math

import torch

from mbvc.errors import ShapeError

#: SSIM constants of Wang et al. (2004), as scikit-image uses them.
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_WIN = 7
#: Default PSNR cap in dB for (near-)identical frames.
PSNR_MAX_DB = 100.0

__all__ = [
    "PSNR_MAX_DB",
    "check_pair",
    "clip_predictions",
    "frame_mae",
    "frame_mse",
    "frame_psnr",
    "frame_ssim",
    "pixel_metrics",
    "to_uint8",
]


def check_pair(pred: torch.Tensor, target: torch.Tensor, min_size: int = 1) -> None:
    """Raise :class:`ShapeError` unless ``pred`` and ``target`` are matching image stacks.

    Args:
        pred: predictions ``(..., C, H, W)``.
        target: ground truth of the same shape.
        min_size: smallest height and width accepted.
    """
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise ShapeError(
            f"metrics require torch tensors, got {type(pred).__name__} and {type(target).__name__}"
        )
    if pred.shape != target.shape:
        raise ShapeError(
            f"metrics require predictions and targets of one shape, got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )
    if pred.dim() < 3:
        raise ShapeError(f"metrics require frames shaped (..., C, H, W), got {tuple(pred.shape)}")
    if min(pred.shape[-2:]) < min_size:
        raise ShapeError(
            f"this metric requires frames of at least {min_size}x{min_size} pixels, "
            f"got {tuple(pred.shape[-2:])}"
        )


def clip_predictions(pred: torch.Tensor) -> torch.Tensor:
    """Clip predictions to ``[0, 1]`` as the paper does before every metric.

    Args:
        pred: predictions ``(..., C, H, W)``, floating point.

    Returns:
        The clipped tensor, same shape and dtype.
    """
    return pred.clamp(0.0, 1.0)


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Convert ``[0, 1]`` frames to uint8 by truncation, exactly like ``np.uint8(x * 255)``.

    The product is taken in the frames' own dtype (float32 normally), so a value such as
    ``k / 255`` that rounds to just below ``k`` truncates to ``k - 1`` exactly as the
    reference's numpy code does. Half-precision inputs are first raised to float32 (their
    8- or 11-bit mantissas cannot hold ``x * 255``). NaN becomes 0.

    Args:
        frames: ``(..., C, H, W)`` in ``[0, 1]`` (clip predictions first).

    Returns:
        uint8 tensor of the same shape.
    """
    if frames.dtype in (torch.float16, torch.bfloat16):
        frames = frames.float()
    return torch.nan_to_num(frames * 255, nan=0.0).to(torch.uint8)


def frame_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error summed over the pixels and channels of each frame (``[0, 1]`` scale).

    Args:
        pred: predictions ``(B, T, C, H, W)`` (any leading dims); clipped to ``[0, 1]`` here.
        target: ground truth, same shape.

    Returns:
        ``(B, T)`` float64 tensor.
    """
    check_pair(pred, target)
    diff = clip_predictions(pred) - target
    # Accumulate in float64: a 128x128x3 frame sums ~5e4 terms.
    return torch.sum(diff * diff, dim=(-3, -2, -1), dtype=torch.float64)


def frame_mae(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Absolute error summed over the pixels and channels of each frame (``[0, 1]`` scale).

    Args:
        pred: predictions ``(B, T, C, H, W)``; clipped to ``[0, 1]`` here.
        target: ground truth, same shape.

    Returns:
        ``(B, T)`` float64 tensor.
    """
    check_pair(pred, target)
    diff = clip_predictions(pred) - target
    return torch.sum(diff.abs(), dim=(-3, -2, -1), dtype=torch.float64)


def _psnr_u8(pred8: torch.Tensor, target8: torch.Tensor, max_db: float) -> torch.Tensor:
    diff = pred8.to(torch.int32) - target8.to(torch.int32)
    # Integer sum is exact; the reference sums in float32, which differs by < 1e-6 relative.
    sq = torch.sum(diff * diff, dim=(-3, -2, -1), dtype=torch.int64).to(torch.float64)
    mse = sq / float(math.prod(pred8.shape[-3:]))
    psnr = 20.0 * math.log10(255.0) - 10.0 * torch.log10(mse)
    return psnr.clamp(max=max_db)


def frame_psnr(
    pred: torch.Tensor, target: torch.Tensor, max_db: float = PSNR_MAX_DB
) -> torch.Tensor:
    """PSNR of each frame on uint8 frames made by truncation (the reference's convention).

    Args:
        pred: predictions ``(B, T, C, H, W)`` in ``[0, 1]``; clipped here.
        target: ground truth, same shape.
        max_db: cap in dB; identical frames (infinite PSNR) get this value. Pass
            ``float("inf")`` for the uncapped value.

    Returns:
        ``(B, T)`` float64 tensor in dB.
    """
    check_pair(pred, target)
    return _psnr_u8(to_uint8(clip_predictions(pred)), to_uint8(target), max_db)


#: Pixels per SSIM chunk: on a CPU a chunk of 256 KB per moment stays in cache (~3x faster than
#: streaming a large batch through memory ~20 times); elsewhere chunks only bound the
#: temporary memory.
_CHUNK_PIXELS = {"cpu": 1 << 16}
_DEFAULT_CHUNK_PIXELS = 1 << 25


def _window_sums_1d(z: torch.Tensor, dim: int) -> torch.Tensor:
    """Valid-mode sums of 7 consecutive values along ``dim``, as 1 + 2 + 4 doubling adds.

    Plain slice additions are vectorised elementwise kernels; on CPU they run ~4x faster
    than ``avg_pool2d`` on cache-sized chunks.
    """
    n = z.shape[dim]
    s2 = z.narrow(dim, 0, n - 1) + z.narrow(dim, 1, n - 1)
    s4 = s2.narrow(dim, 0, n - 3) + s2.narrow(dim, 2, n - 3)
    return s4.narrow(dim, 0, n - 6) + s2.narrow(dim, 4, n - 6) + z.narrow(dim, 6, n - 6)


def _window_sums(z: torch.Tensor) -> torch.Tensor:
    """Valid-mode ``7 x 7`` window SUMS over the last two dims.

    Inputs hold integers (pixel values and their products, at most 2 * 255^2), so every
    partial sum is an integer below 2^24 and float32 sums are exact.
    """
    return _window_sums_1d(_window_sums_1d(z, -1), -2)


def _ssim_planes(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM map of uint8-valued planes ``(N, H, W)`` given as float32 -> ``(N,)`` float64."""
    sums = _window_sums(torch.stack([a, b, a * a + b * b, a * b], dim=1)).to(torch.int32)
    sx, sy, sq, sxy = sums.unbind(dim=1)
    n = SSIM_WIN * SSIM_WIN
    # With window sums S the mean is S / n and skimage's sample covariance is
    # (n Sxy - Sx Sy) / (n (n - 1)). Scaling each SSIM ratio by n^2 or n (n - 1) leaves only
    # integer numerators (< 2^29, exact in int32), so E[x^2] - E[x]^2 never cancels in floats;
    # float32 then only rounds the final ratios (~1e-7).
    p = sx * sy
    q = sx * sx + sy * sy
    k1 = n * n * (SSIM_K1 * 255.0) ** 2
    k2 = n * (n - 1) * (SSIM_K2 * 255.0) ** 2
    luminance = ((2 * p).float() + k1) / (q.float() + k1)
    structure = ((2 * (n * sxy - p)).float() + k2) / ((n * sq - q).float() + k2)
    # Valid windows already dropped the (win-1)/2 border that skimage crops before its mean,
    # and inside that border its reflect padding never enters a window.
    return (luminance * structure).mean(dim=(-2, -1), dtype=torch.float64)


def _ssim_u8(pred8: torch.Tensor, target8: torch.Tensor) -> torch.Tensor:
    lead = pred8.shape[:-3]
    c, h, w = pred8.shape[-3:]
    # One image plane per row: skimage filters each channel on its own and averages the means.
    a, b = pred8.reshape(-1, h, w), target8.reshape(-1, h, w)
    step = max(1, _CHUNK_PIXELS.get(a.device.type, _DEFAULT_CHUNK_PIXELS) // (h * w))
    per_plane = torch.cat([
        _ssim_planes(a[i : i + step].float(), b[i : i + step].float()) for i in range(0, a.shape[0], step)
    ])
    return per_plane.reshape(*lead, c).mean(dim=-1)


def frame_ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM of each frame, equal to scikit-image's on the truncated uint8 frames.

    Matches ``structural_similarity(p, t, data_range=255, channel_axis=-1)`` (or without
    ``channel_axis`` for grey frames) to about 1e-7: window sums and the variance numerators
    are exact integers, only the final ratios are rounded (float32).

    Args:
        pred: predictions ``(B, T, C, H, W)`` in ``[0, 1]``, frames at least 7x7; clipped here.
        target: ground truth, same shape.

    Returns:
        ``(B, T)`` float64 tensor.
    """
    check_pair(pred, target, min_size=SSIM_WIN)
    p8, t8 = to_uint8(clip_predictions(pred)), to_uint8(target)
    return _ssim_u8(p8, t8)


def pixel_metrics(
    pred: torch.Tensor, target: torch.Tensor, max_db: float = PSNR_MAX_DB
) -> dict[str, torch.Tensor]:
    """MSE, MAE, PSNR and SSIM of each frame, sharing the clip and uint8 conversion.

    Args:
        pred: predictions ``(B, T, C, H, W)`` in ``[0, 1]``; clipped here.
        target: ground truth, same shape; frames at least 7x7.
        max_db: PSNR cap for identical frames.

    Returns:
        ``{"mse", "mae", "psnr", "ssim"}`` each ``(B, T)`` float64.
    """
    check_pair(pred, target, min_size=SSIM_WIN)
    clipped = clip_predictions(pred)
    diff = clipped - target
    p8, t8 = to_uint8(clipped), to_uint8(target)
    return {
        "mse": torch.sum(diff * diff, dim=(-3, -2, -1), dtype=torch.float64),
        "mae": torch.sum(diff.abs(), dim=(-3, -2, -1), dtype=torch.float64),
        "psnr": _psnr_u8(p8, t8, max_db),
        "ssim": _ssim_u8(p8, t8),
    }
