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


def colour_centroid_error(pred: torch.Tensor, frames: torch.Tensor, colour: tuple[float, float, float],
                          threshold: float = 0.3, min_mass: float = 0.5) -> torch.Tensor:
    """Squared distance between the centroids of an object of a known colour in predicted and true frames.

    A pixel's weight is its projection on the object's colour with the grey removed (the
    change of hue that tells a red block from a brown table, as the push cost's detector does)
    less ``threshold``. The centroid of a faded, lagging prediction trails the true object's,
    which the squared error barely sees; this term measures the lag itself, in frame-size units
    (1 = the frame's height). Steps where the true frame shows less than ``min_mass`` of the
    object are skipped; an erased object's centroid falls to the frame's corner.

    Args:
        pred: (B, T-1, C, H, W) predictions of frames 1..T-1 (C = 3).
        frames: (B, T, C, H, W) the true frames in [0, 1].
        colour: the object's RGB colour in [0, 1].
    """
    target = frames[:, 1:]
    c = torch.as_tensor(colour, dtype=pred.dtype, device=pred.device)
    direction = c - c.mean()
    direction = direction / direction.norm().clamp_min(1e-6)
    h, w = pred.shape[-2:]
    rows = torch.arange(h, dtype=pred.dtype, device=pred.device)[:, None] / h
    cols = torch.arange(w, dtype=pred.dtype, device=pred.device)[None, :] / h

    def centroid(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weight = ((x * direction[:, None, None]).sum(dim=-3) - threshold).clamp_min(0.0)  # B x T x H x W
        mass = weight.sum(dim=(-2, -1))
        denom = mass + 1e-3
        return torch.stack([(weight * rows).sum((-2, -1)) / denom, (weight * cols).sum((-2, -1)) / denom], -1), mass

    true_pos, true_mass = centroid(target)
    pred_pos, _ = centroid(pred)
    seen = (true_mass >= min_mass).to(pred.dtype)
    return (seen * (pred_pos - true_pos.detach()).square().sum(-1)).sum() / seen.sum().clamp_min(1.0)
