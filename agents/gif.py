"""Pictures of MPC episodes: the observation, the goal, and the frames the model imagines.

:class:`RecordingAgent` keeps, step by step, what an :class:`~agents.mpc.MPCAgent` saw and
planned; :func:`write_episode_gif` draws it as an animated GIF.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mbvc.errors import ConfigError


class RecordingAgent:
    """Wraps an MPC agent to keep, while ``record`` is on, each observation, the plan's imagined
    frames and the action (the agent needs ``record_predictions=True`` for the frames)."""

    def __init__(self, agent: Any, record: bool = True) -> None:
        self.agent, self.record = agent, record
        self.steps: list[dict[str, Any]] = []

    @property
    def step_times(self) -> list[float]:
        """The wrapped agent's planning time per step of the episode."""
        return self.agent.step_times

    @property
    def plan_times(self) -> list[float]:
        """The wrapped agent's time per plan."""
        return self.agent.plan_times

    def reset(self, obs: dict[str, Any] | None = None, goal: Any = None, seed: int | None = None) -> None:
        """Start an episode of the wrapped agent."""
        self.agent.reset(obs, goal=goal, seed=seed)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """The wrapped agent's action, recording the step."""
        plans = len(self.agent.plan_times)
        action = self.agent.act(obs)
        if self.record:
            fresh = len(self.agent.plan_times) > plans
            pred = self.agent.last_prediction
            self.steps.append({"image": np.asarray(obs["image"]).copy(), "action": action,
                               "prediction": None if pred is None else pred.detach().cpu().clone(),
                               "replanned": fresh})
        return action


def _label(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` with a caption bar above it."""
    from PIL import Image, ImageDraw

    bar = Image.new("RGB", (image.shape[1], 12), (255, 255, 255))
    ImageDraw.Draw(bar).text((2, 0), text, fill=(0, 0, 0))
    return np.concatenate([np.asarray(bar), image], axis=0)


def episode_gif_frames(steps: Sequence[dict[str, Any]], goal: np.ndarray, scale: int = 4,
                       shown: int = 4) -> list[np.ndarray]:
    """GIF frames: the observation, the goal, and the imagined future of the plan being executed.

    Args:
        steps: records of :class:`RecordingAgent` (``image`` uint8 ``H x W x 3``, ``prediction``
            ``H' x C x h x w`` of the current plan, ``replanned``).
        goal: goal image ``H x W x 3`` uint8.
        scale: integer upscaling of every panel.
        shown: imagined frames shown (evenly spaced over the horizon).
    """
    from agents.core import image_to_tensor
    from mbvc.evaluation.strips import to_rgb_uint8

    def up(img: np.ndarray) -> np.ndarray:
        return np.kron(img, np.ones((scale, scale, 1), dtype=np.uint8))

    frames = []
    size = steps[0]["prediction"].shape[-2:] if steps and steps[0]["prediction"] is not None else None
    prediction, offset = None, 0
    for t, step in enumerate(steps):
        if step["prediction"] is not None and step["replanned"]:
            prediction, offset = step["prediction"], 0  # imagined frames t+1 .. t+H of the new plan
        obs = step["image"]
        if size is not None and tuple(obs.shape[:2]) != tuple(size):
            obs = to_rgb_uint8(image_to_tensor(obs, size))
            goal_img = to_rgb_uint8(image_to_tensor(goal, size))
        else:
            goal_img = goal
        wide = obs.shape[1] * scale >= 80  # room for the long captions
        panels = [_label(up(obs), f"t={t}"), _label(up(goal_img), "goal")]
        if prediction is not None and offset < prediction.shape[0]:
            # Between replans the plan is partly executed: its future starts ``offset`` frames in.
            future = prediction[offset:]
            picks = sorted({round(float(x)) for x in np.linspace(0, len(future) - 1, min(shown, len(future)))})
            for k in picks:
                caption = f"imagined +{k + 1}" if wide else f"+{k + 1}"
                panels.append(_label(up(to_rgb_uint8(future[k].clamp(0, 1))), caption))
        frames.append(np.concatenate(panels, axis=1))
        offset += 1
    width = max(f.shape[1] for f in frames)
    return [np.pad(f, ((0, 0), (0, width - f.shape[1]), (0, 0)), constant_values=255) for f in frames]


def write_episode_gif(path: str | os.PathLike, steps: Sequence[dict[str, Any]], goal: np.ndarray, scale: int = 4,
                      fps: float = 4.0) -> Path:
    """Write :func:`episode_gif_frames` as a looping GIF and return its path.

    Raises:
        ConfigError: no recorded steps.
    """
    from mbvc.evaluation.strips import write_gif

    if not steps:
        raise ConfigError("no recorded MPC steps to draw (episodes must have at least one step)")
    return write_gif(Path(path), episode_gif_frames(steps, goal, scale), fps=fps)


__all__ = ["RecordingAgent", "episode_gif_frames", "write_episode_gif"]
