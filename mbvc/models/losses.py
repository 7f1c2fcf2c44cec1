"""Extra training-loss terms a model family may add to its objective (e.g. ``train.motion_weight``)."""
from __future__ import annotations

import torch


def motion_weighted_mse(pred: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Squared error weighted by how much each target pixel changed since the previous frame.

    In a pushing scene the moving objects cover a few percent of the pixels, so the plain MSE is
    dominated by the static background and a model learns to under-predict motion (a blurry,
    too-small displacement of the pushed block costs little). Weighting each pixel by the
    largest absolute change over its channels, ``|x_t - x_{t-1}|``, puts the loss where the
    scene moves; static pixels weigh zero here (the model's own MSE still covers them).

    Args:
        pred: (B, T-1, C, H, W) predictions of frames 1..T-1.
        frames: (B, T, C, H, W) the true frames in [0, 1].

    Returns:
        Scalar: mean over batch, steps and pixels of ``weight * sum_c (pred - x_t)^2 / C``.
    """
    target = frames[:, 1:]
    weight = (target - frames[:, :-1]).abs().amax(dim=2, keepdim=True)
    return (weight * (pred - target).square()).mean()


def l1_error(pred: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of predictions (B, T-1, C, H, W) of frames 1..T-1 of ``frames`` (B, T, C, H, W)."""
    return (pred - frames[:, 1:]).abs().mean()

