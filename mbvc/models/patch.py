"""Space-to-depth patching with the reference's channel order.

A frame (C, H, W) with patch size p becomes (p*p*C, H/p, W/p) where the channel index of
pixel (py, px) of a patch, colour c, is ``(py * p + px) * C + c``. Checkpoint compatibility
depends on this order: it fixes the input channels of the first convolution and the output
channels of the last one.
"""
from __future__ import annotations

import torch

from mbvc.errors import ShapeError


def patchify(frames: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Fold p x p pixel blocks into channels.

    Args:
        frames: ``(..., C, H, W)``.
        patch_size: p; H and W must be divisible by it.

    Returns:
        ``(..., p*p*C, H/p, W/p)``.
    """
    p = patch_size
    if p == 1:
        return frames
    *lead, c, h, w = frames.shape
    if h % p or w % p:
        raise ShapeError(f"frame size {h}x{w} is not divisible by patch_size={p}")
    x = frames.reshape(-1, c, h // p, p, w // p, p)
    x = x.permute(0, 3, 5, 1, 2, 4)  # (N, py, px, C, H/p, W/p)
    return x.reshape(*lead, p * p * c, h // p, w // p)


def unpatchify(patches: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``(..., p*p*C, h, w)`` -> ``(..., C, h*p, w*p)``."""
    p = patch_size
    if p == 1:
        return patches
    *lead, pc, h, w = patches.shape
    if pc % (p * p):
        raise ShapeError(f"{pc} channels cannot be unpatched with patch_size={p}")
    c = pc // (p * p)
    x = patches.reshape(-1, p, p, c, h, w)
    x = x.permute(0, 3, 4, 1, 5, 2)  # (N, C, h, py, w, px)
    return x.reshape(*lead, c, h * p, w * p)
