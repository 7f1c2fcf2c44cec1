"""mbvc's gymnasium environments: a BAIR-like tabletop pushing world, wrappers and collection.

Importing this package registers ``mbvc/Push-v0``, ``mbvc/PushMulti-v0``,
``mbvc/PushDistractors-v0`` and ``mbvc/Reacher-v0`` (gymnasium's Reacher-v5 from pixels,
:mod:`envs.reacher`; gymnasium 1.x has no plugin entry points), so both
``import envs; gymnasium.make("mbvc/Push-v0")`` and ``gymnasium.make("envs:mbvc/Push-v0")`` work.
Call :func:`setup_gl` (as the ``mbvc`` commands do) before the first render to pick a headless
OpenGL backend (``MUJOCO_GL``); importing changes the process in one way only: when
``MUJOCO_GL`` already names Mesa's CPU rasterizer (egl without a GPU vendor, osmesa), it sets
TensorBoard's TensorFlow-free marker, so that stable-baselines3 imported after ``envs`` does not
load TensorFlow, whose LLVM copy crashes Mesa's (:mod:`envs._gl`; the envs themselves also do
this before their first frame, :func:`envs._gl.prepare_render`).

Example:
    >>> import gymnasium as gym
    >>> import envs
    >>> sorted(i for i in gym.registry if i.startswith("mbvc/"))
    ['mbvc/Push-v0', 'mbvc/PushDistractors-v0', 'mbvc/PushMulti-v0', 'mbvc/Reacher-v0']
"""
from __future__ import annotations

from gymnasium.envs.registration import register, registry

from envs._gl import keep_tensorflow_out, setup_gl

# Before anything else can import stable-baselines3 / torch.utils.tensorboard: those load
# TensorFlow through TensorBoard, and TensorFlow next to Mesa's rasterizer segfaults the process.
keep_tensorflow_out()

ENV_IDS = ("mbvc/Push-v0", "mbvc/PushMulti-v0", "mbvc/PushDistractors-v0")
_SCENES = dict(zip(ENV_IDS, ("push", "multi", "distractors")))

for _env_id, _scene in _SCENES.items():
    if _env_id not in registry:  # importing twice (e.g. "envs:" prefix after import) is fine
        # No max_episode_steps: PushEnv truncates itself, so that get_state/set_state also
        # restore the step count (a TimeLimit wrapper would keep its own counter).
        register(id=_env_id, entry_point="envs.push:PushEnv", kwargs={"scene": _scene})
if "mbvc/Reacher-v0" not in registry:  # gymnasium's Reacher-v5 from pixels (envs/reacher.py); truncates itself
    register(id="mbvc/Reacher-v0", entry_point="envs.reacher:ReacherPixelsEnv")

__all__ = ["ENV_IDS", "setup_gl"]
