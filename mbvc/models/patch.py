"""Space-to-depth patching with the reference's channel order.

A frame (C, H, W) with patch size p becomes (p*p*C, H/p, W/p) where the channel index of
pixel (py, px) of a patch, colour c, is ``(py * p + px) * C + c``. Checkpoint compatibility
depends on this order: it fixes the input channels of the first convolution and the output
channels of the last one.
"""
from __future__ import annotations

import torch

from mbvc.errors import ShapeError


def patchify(frames: torch.Tensor, patch_size: int, views: int = 1) -> torch.Tensor:
    """Fold p x p pixel blocks into channels (after folding side-by-side views into channels).

    Args:
        frames: ``(..., C, H, W)``.
        patch_size: p; H and W / views must be divisible by it.
        views: camera views side by side along W (:func:`fold_views`).

    Returns:
        ``(..., p*p*C*views, H/p, W/(views*p))``.
    """
    frames = fold_views(frames, views)
    p = patch_size
    if p == 1:
        return frames
    *lead, c, h, w = frames.shape
    if h % p or w % p:
        raise ShapeError(f"frame size {h}x{w} is not divisible by patch_size={p}")
    x = frames.reshape(-1, c, h // p, p, w // p, p)
    x = x.permute(0, 3, 5, 1, 2, 4)  # (N, py, px, C, H/p, W/p)
    return x.reshape(*lead, p * p * c, h // p, w // p)


def unpatchify(patches: torch.Tensor, patch_size: int, views: int = 1) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``(..., p*p*C*views, h, w)`` -> ``(..., C, h*p, w*p*views)``."""
    p = patch_size
    if p == 1:
        return unfold_views(patches, views)
    *lead, pc, h, w = patches.shape
    if pc % (p * p):
        raise ShapeError(f"{pc} channels cannot be unpatched with patch_size={p}")
    c = pc // (p * p)
    x = patches.reshape(-1, p, p, c, h, w)
    x = x.permute(0, 3, 4, 1, 5, 2)  # (N, C, h, py, w, px)
    return unfold_views(x.reshape(*lead, c, h * p, w * p), views)


def fold_views(frames: torch.Tensor, views: int) -> torch.Tensor:
    """``(..., C, H, n*W)`` frames of ``n`` views side by side -> ``(..., n*C, H, W)``, view-major channels."""
    if views == 1:
        return frames
    *lead, c, h, w = frames.shape
    if w % views:
        raise ShapeError(f"frame width {w} does not hold {views} views side by side")
    x = frames.reshape(-1, c, h, views, w // views).permute(0, 3, 1, 2, 4)  # (N, n, C, H, W)
    return x.reshape(*lead, views * c, h, w // views)


def unfold_views(frames: torch.Tensor, views: int) -> torch.Tensor:
    """Inverse of :func:`fold_views`: ``(..., n*C, H, W)`` -> ``(..., C, H, n*W)``."""
    if views == 1:
        return frames
    *lead, nc, h, w = frames.shape
    if nc % views:
        raise ShapeError(f"{nc} channels do not hold {views} views")
    x = frames.reshape(-1, views, nc // views, h, w).permute(0, 2, 3, 1, 4)  # (N, C, H, n, W)
    return x.reshape(*lead, nc // views, h, views * w)
