"""Per-frame video-prediction metrics: MSE, MAE, PSNR, SSIM (batched torch) and AlexNet-LPIPS."""
from __future__ import annotations

from mbvc.metrics.frames import (
    PSNR_MAX_DB,
    clip_predictions,
    frame_mae,
    frame_mse,
    frame_psnr,
    frame_ssim,
    pixel_metrics,
    to_uint8,
)
from mbvc.metrics.lpips import LPIPS, LPIPSWeights, find_lpips_weights, load_lpips

__all__ = [
    "LPIPS",
    "LPIPSWeights",
    "PSNR_MAX_DB",
    "clip_predictions",
    "find_lpips_weights",
    "frame_mae",
    "frame_mse",
    "frame_psnr",
    "frame_ssim",
    "load_lpips",
    "pixel_metrics",
    "to_uint8",
]
