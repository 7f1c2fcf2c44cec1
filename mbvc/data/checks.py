"""Value checks at the boundaries where frames and actions enter mbvc.

Frames are float in ``[0, 1]`` (or uint8, scaled by 255 where they are read). Float frames in
``0..255``, or NaN/inf anywhere, would otherwise pass through every tensor op and come out as
silently wrong predictions, metrics or plans. Each check is one pass over the array (finite,
min, max), done once per batch or file where data arrives, never per model step.
"""
from __future__ import annotations

import numpy as np
import torch

from mbvc.errors import DataError

#: Float frames may overshoot [0, 1] by this much (resampling, float16 storage) before it is an error.
TOLERANCE = 1e-3


def _range(x: torch.Tensor | np.ndarray) -> tuple[bool, float, float]:
    """(all finite, min and max of the finite values); one reduction each."""
    if x.size == 0 if isinstance(x, np.ndarray) else x.numel() == 0:
        return True, 0.0, 0.0
    if isinstance(x, np.ndarray):
        lo, hi = float(np.min(x)), float(np.max(x))
    else:
        x = x.detach()
        lo, hi = (float(v) for v in torch.aminmax(x if x.is_floating_point() else x.float()))
    finite = bool(np.isfinite(lo) and np.isfinite(hi))
    if not finite:  # rare path: the range of what is finite, for the message
        values = _values(x)
        values = values[np.isfinite(values)]
        lo, hi = (float(values.min()), float(values.max())) if values.size else (float("nan"),) * 2
    return finite, lo, hi


def _values(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return np.asarray(x.cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64).ravel()


def _describe(lo: float, hi: float, finite: bool, x: torch.Tensor | np.ndarray | None = None) -> str:
    """``values in [lo, hi]``, preceded by ``NaN/inf`` when some are not finite; all of them not
    finite: how many are NaN and how many inf (counted when ``x`` is given)."""
    if finite:
        return f"values in [{lo:.4g}, {hi:.4g}]"
    if not np.isnan(lo):
        return f"NaN/inf and values in [{lo:.4g}, {hi:.4g}]"
    if x is None:
        return "only NaN/inf values, no finite value"
    values = _values(x)  # rare path (an error message): count what is wrong
    n_nan, n_inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
    parts = " and ".join(p for p in (f"{n_nan} NaN" if n_nan else "", f"{n_inf} inf" if n_inf else "") if p)
    return f"only NaN/inf values ({parts} of {values.size}), no finite value"


def check_frames(x: torch.Tensor | np.ndarray, name: str) -> None:
    """Raise unless float frames are finite and in ``[0, 1]`` (uint8 frames always pass).

    Args:
        x: frames of any shape, e.g. ``(B, T, C, H, W)``.
        name: what they are (a file, an argument) for the message.

    Raises:
        DataError: NaN/inf, or values outside ``[0, 1]``; the range found is named, with a hint
            when it looks like ``0..255`` data.
    """
    if x.dtype in (torch.uint8, np.uint8):
        return
    finite, lo, hi = _range(x)
    if finite and lo >= -TOLERANCE and hi <= 1 + TOLERANCE:
        return
    hint = ""
    if finite and 1 + TOLERANCE < hi <= 255 and lo >= -TOLERANCE:
        hint = " (0..255 data? store it as uint8 or divide by 255)"
    raise DataError(f"{name}: frames must be finite floats in [0, 1] or uint8, found {_describe(lo, hi, finite, x)}{hint}")


def check_finite(x: torch.Tensor | np.ndarray, name: str, what: str = "values") -> None:
    """Raise unless every value of ``x`` is finite (actions, costs, predictions).

    Raises:
        DataError: NaN or inf found; the range of the finite values is named.
    """
    finite, lo, hi = _range(x)
    if not finite:
        raise DataError(f"{name}: {what} must be finite, found {_describe(lo, hi, finite, x)}")
