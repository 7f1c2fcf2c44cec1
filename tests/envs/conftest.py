"""Fixtures of the envs tests: small images and short episodes keep each test to seconds.

``envs.setup_gl()`` runs first so that MUJOCO_GL defaults to egl before MuJoCo loads and so
that TensorBoard (imported by stable-baselines3) skips TensorFlow, which would crash Mesa's
software renderer in this process (see ``envs/_gl.py``).
"""
from __future__ import annotations

import sys

import envs

envs.setup_gl()  # first: see the module docstring

import gymnasium as gym  # noqa: E402
import pytest  # noqa: E402

from envs._gl import mesa_software_gl


@pytest.fixture(autouse=True)
def _renderable() -> None:
    """Skip, with the reason, when an earlier test in this process loaded TensorFlow."""
    if "tensorflow" in sys.modules and mesa_software_gl():
        pytest.skip("tensorflow is loaded in this pytest process and would crash Mesa's software "
                    "OpenGL (see envs/_gl.py); run tests/envs in a process without tensorflow")


@pytest.fixture
def make_push():
    """Factory of small Push envs; closes what it made."""
    made = []

    def make(env_id: str = "mbvc/Push-v0", **kwargs):
        kwargs.setdefault("image_size", 16)
        kwargs.setdefault("episode_length", 10)
        env = gym.make(env_id, render_mode="rgb_array", **kwargs)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()
