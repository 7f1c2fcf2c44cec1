"""Ground truth vs prediction strips as PNG (one image) and GIF (an animation).

Frames arrive as ``(C, H, W)`` float tensors in RGB order; they are written as RGB (the
reference wrote colour frames through OpenCV and swapped red and blue).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from mbvc.errors import ShapeError
from mbvc.io import atomic_write

GAP = 2  # pixels between tiles
BORDER = 2  # coloured frame around GIF tiles
BACKGROUND = 255
CONTEXT_COLOUR = (40, 170, 60)  # green: a true frame given to the model
PREDICTED_COLOUR = (210, 40, 40)  # red: a frame the model predicted


def to_rgb_uint8(frames: torch.Tensor) -> np.ndarray:
    """``(..., C, H, W)`` floats in [0, 1] with C in (1, 3) -> ``(..., H, W, 3)`` uint8 RGB."""
    if frames.dim() < 3 or frames.shape[-3] not in (1, 3):
        raise ShapeError(f"strips need frames (..., C, H, W) with C in (1, 3), got {tuple(frames.shape)}")
    x = frames.detach().float().cpu().clamp(0, 1)
    if x.shape[-3] == 1:
        x = x.expand(*x.shape[:-3], 3, *x.shape[-2:])
    # Round for display (metrics truncate; a picture should not darken by half a level).
    return (x * 255).round().to(torch.uint8).movedim(-3, -1).numpy()


def _grid(rows: list[list[np.ndarray | None]], tile: tuple[int, int], group: int = 1) -> np.ndarray:
    """Lay out tiles ``(h, w, 3)`` in rows; ``None`` leaves a blank cell.

    Every ``group`` rows form a block, and blocks are set apart by a wider gap so that the
    truth and prediction rows of one sequence read together.
    """
    h, w = tile
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    tops = [i * (h + GAP) + (i // group) * 2 * GAP for i in range(n_rows)]
    out = np.full((tops[-1] + h, n_cols * (w + GAP) - GAP, 3), BACKGROUND, np.uint8)
    for top, row in zip(tops, rows):
        for j, img in enumerate(row):
            if img is not None:
                out[top: top + h, j * (w + GAP): j * (w + GAP) + w] = img
    return out


def _bordered(img: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    out = np.empty((img.shape[0] + 2 * BORDER, img.shape[1] + 2 * BORDER, 3), np.uint8)
    out[:] = colour
    out[BORDER:-BORDER, BORDER:-BORDER] = img
    return out


def _upscale(img: np.ndarray, scale: int) -> np.ndarray:
    return img if scale == 1 else img.repeat(scale, axis=-3).repeat(scale, axis=-2)


def _check(frames: torch.Tensor, predictions: torch.Tensor) -> int:
    if frames.dim() != 5 or predictions.dim() != 5 or frames.shape[0] != predictions.shape[0] \
            or frames.shape[2:] != predictions.shape[2:] or predictions.shape[1] > frames.shape[1]:
        raise ShapeError(f"strips need frames (S, K + N, C, H, W) and predictions (S, N, C, H, W), "
                         f"got {tuple(frames.shape)} and {tuple(predictions.shape)}")
    return frames.shape[1] - predictions.shape[1]


def strip_image(frames: torch.Tensor, predictions: torch.Tensor, scale: int = 1) -> np.ndarray:
    """One picture: per sequence a ground-truth row and a prediction row under it.

    Args:
        frames: ``(S, K + N, C, H, W)`` true sequences in [0, 1].
        predictions: ``(S, N, C, H, W)`` predictions of the last N frames.
        scale: integer nearest-neighbour upscaling of each tile.

    Returns:
        ``(height, width, 3)`` uint8 RGB; prediction cells under the context are blank.
    """
    k = _check(frames, predictions)
    gt, pr = _upscale(to_rgb_uint8(frames), scale), _upscale(to_rgb_uint8(predictions), scale)
    rows: list[list[np.ndarray | None]] = []
    for s in range(gt.shape[0]):
        rows.append(list(gt[s]))
        rows.append([None] * k + list(pr[s]))
    return _grid(rows, gt.shape[2:4], group=2)


def strip_animation(frames: torch.Tensor, predictions: torch.Tensor, scale: int = 1) -> list[np.ndarray]:
    """Animation frames: per sequence, truth on the left and the model's view on the right.

    The right tile shows the true frame during the context (green border) and the
    prediction afterwards (red border); the left tile always shows the truth.

    Args:
        frames: ``(S, K + N, C, H, W)`` true sequences in [0, 1].
        predictions: ``(S, N, C, H, W)``.
        scale: integer upscaling of each tile.

    Returns:
        ``K + N`` uint8 RGB images of one size.
    """
    k = _check(frames, predictions)
    gt, pr = _upscale(to_rgb_uint8(frames), scale), _upscale(to_rgb_uint8(predictions), scale)
    tile = (gt.shape[2] + 2 * BORDER, gt.shape[3] + 2 * BORDER)
    images = []
    for t in range(gt.shape[1]):
        rows = []
        for s in range(gt.shape[0]):
            colour = CONTEXT_COLOUR if t < k else PREDICTED_COLOUR
            right = gt[s, t] if t < k else pr[s, t - k]
            rows.append([_bordered(gt[s, t], CONTEXT_COLOUR), _bordered(right, colour)])
        images.append(_grid(rows, tile))
    return images


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an ``(H, W, 3)`` uint8 RGB array as PNG, atomically."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())
    return Path(path)


def write_gif(path: str | os.PathLike, images: list[np.ndarray], fps: float = 4.0) -> Path:
    """Write RGB uint8 images as a looping GIF, atomically."""
    from PIL import Image

    frames = [Image.fromarray(img) for img in images]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:],
                   duration=int(1000 / fps), loop=0)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())
    return Path(path)
