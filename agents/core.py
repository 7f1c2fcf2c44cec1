"""Types shared by every agent: the agent protocol and observation conversion helpers."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from mbvc.errors import ShapeError


@runtime_checkable
class Agent(Protocol):
    """What evaluation loops need from a controller (MPC, random, scripted, SB3)."""

    def reset(self, obs: dict[str, Any] | None = None, goal: Any = None, seed: int | None = None) -> None:
        """Start an episode; ``goal`` is what the agent's cost needs (e.g. a goal image), ``seed``
        makes its randomness depend on the episode only (not on how many episodes ran before)."""

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """Return the action for the gymnasium observation ``obs``."""


def image_to_tensor(
    image: np.ndarray | torch.Tensor,
    size: tuple[int, int] | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Convert observation images to model frames.

    Args:
        image: ``H x W x C`` (or ``T x H x W x C``) uint8 in [0, 255], or a float array already
            in [0, 1] with the same layout.
        size: optional ``(h, w)`` to resize to (area interpolation, which averages pixels and so
            keeps thin objects visible when shrinking).
        device: device of the result.

    Returns:
        Float frames ``C x h x w`` (or ``T x C x h x w``) in [0, 1].
    """
    if not isinstance(image, torch.Tensor):
        image = np.asarray(image)
        if not image.flags.writeable:  # e.g. frames resized through PIL; torch wants to own writable memory
            image = image.copy()
    t = torch.as_tensor(image)
    if t.dim() not in (3, 4) or t.shape[-1] not in (1, 3, 4):
        raise ShapeError(
            f"image_to_tensor requires an (H, W, C) or (T, H, W, C) image with C in (1, 3, 4), "
            f"got shape {tuple(t.shape)}"
        )
    t = t.to(device) if device is not None else t
    frames = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    frames = frames.movedim(-1, -3)
    if size is not None and tuple(frames.shape[-2:]) != tuple(size):
        batch = frames if frames.dim() == 4 else frames[None]
        batch = F.interpolate(batch, size=tuple(size), mode="area")
        frames = batch if frames.dim() == 4 else batch[0]
    return frames.contiguous()


def goal_from_env(env: Any) -> np.ndarray | None:
    """The goal image of an mbvc environment (``env.unwrapped.goal_image()``), if it has one."""
    fn = getattr(getattr(env, "unwrapped", env), "goal_image", None)
    return None if fn is None else fn()
