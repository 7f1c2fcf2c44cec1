"""Shared fixtures of the agents tests: a 1-D point-mass environment and its exact model.

``LineEnv`` is the agents' analogue of mbrl-lib's ``MockLineEnv``: a point moves on [-1, 1] by
``step_size * action`` and is drawn as a red bar filled from the left edge up to the point (a
soft step), so that pixel MSE to a goal image grows linearly with the distance everywhere; a
small blob would make MSE flat once the blobs stop overlapping. ``LineModel`` knows these
dynamics exactly, so an MPC failure on it is a planner / cost / agent bug.

``envs.setup_gl()`` runs first: the headless GL default before MuJoCo loads, and no TensorFlow
behind stable-baselines3's TensorBoard import next to Mesa's software renderer (``envs/_gl.py``).
"""
from __future__ import annotations

import envs

envs.setup_gl()

from typing import Any  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from agents.models import PlanningModel, RolloutFn, as_context, check_actions

RED = (1.0, 0.0, 0.0)


def render_line(x: torch.Tensor, height: int, width: int, softness: float = 0.5) -> torch.Tensor:
    """Frames ``... x 3 x h x w`` in [0, 1] of points ``x`` (any shape) in [-1, 1]."""
    col = (x + 1.0) / 2.0 * (width - 1)
    cols = torch.arange(width, dtype=torch.float32)
    stripe = torch.sigmoid((col[..., None] - cols) / softness)  # ... x w
    red = stripe[..., None, :].expand(*stripe.shape[:-1], height, width)
    zeros = torch.zeros_like(red)
    return torch.stack([red, zeros, zeros], dim=-3)


def decode_line(frame: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`render_line` for one frame ``3 x h x w``: the point's x."""
    profile = frame[0].mean(0)
    col = profile.sum() - 0.5  # the filled length of a soft step ending at col
    return (col / (profile.numel() - 1) * 2.0 - 1.0).clamp(-1.0, 1.0)


class LineEnv(gym.Env):
    """Point mass on a line; observation ``{"image", "state"}``, info distance / is_success."""

    def __init__(self, height: int = 8, width: int = 32, step_size: float = 0.25, episode_length: int = 25) -> None:
        self.height, self.width, self.step_size, self.episode_length = height, width, step_size, episode_length
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = gym.spaces.Dict({
            "image": gym.spaces.Box(0, 255, (height, width, 3), np.uint8),
            "state": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
        })
        self.x, self.goal, self.t = 0.0, 0.5, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(-0.8, -0.3))
        self.goal = float(self.np_random.uniform(0.2, 0.7))
        self.t = 0
        return self._obs(), self._info()

    def step(self, action):
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1, 1))
        self.x = float(np.clip(self.x + self.step_size * a, -1.0, 1.0))
        self.t += 1
        info = self._info()
        return self._obs(), -info["distance"], False, self.t >= self.episode_length, info

    def _image(self, x: float) -> np.ndarray:
        frame = render_line(torch.tensor(x, dtype=torch.float32), self.height, self.width)
        return (frame.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"image": self._image(self.x), "state": np.array([self.x, self.goal], np.float32)}

    def _info(self) -> dict[str, Any]:
        d = abs(self.x - self.goal)
        return {"distance": d, "is_success": d < 0.06, "pusher_distance": 0.0}

    def goal_image(self) -> np.ndarray:
        return self._image(self.goal)

    def get_state(self) -> tuple[float, float, int]:
        return (self.x, self.goal, self.t)

    def set_state(self, state: tuple[float, float, int]) -> None:
        self.x, self.goal, self.t = state


class LineModel(PlanningModel):
    """Exact model of :class:`LineEnv`: decodes x from the last frame, simulates, renders."""

    def __init__(self, height: int = 8, width: int = 32, step_size: float = 0.25) -> None:
        self.height, self.width, self.step_size = height, width, step_size
        self.contexts: list[tuple[torch.Tensor, torch.Tensor | None]] = []

    def bind(self, context: torch.Tensor, context_actions: torch.Tensor | None = None) -> RolloutFn:
        context = as_context(context)
        self.contexts.append((context, context_actions))
        x0 = decode_line(context[0, -1])

        def rollout_fn(actions: torch.Tensor) -> torch.Tensor:
            check_actions(actions)
            x, xs = x0.expand(actions.shape[0]), []
            for t in range(actions.shape[1]):
                x = (x + self.step_size * actions[:, t, 0]).clamp(-1.0, 1.0)
                xs.append(x)
            return render_line(torch.stack(xs, dim=1), self.height, self.width)

        return rollout_fn


@pytest.fixture
def line_env() -> LineEnv:
    return LineEnv()


@pytest.fixture(autouse=True)
def _one_torch_thread(one_thread):
    """Every agents test on one torch thread (planning tests ran ~8x slower on several)."""
