"""Small composable wrappers for any gymnasium environment (mbvc's and gymnasium's MuJoCo envs).

Each wrapper does one thing, checks the wrapped space in ``__init__`` and declares the space it
exposes: :class:`PixelObservation` (frames from ``render()``: camera, crop, resize),
:class:`ActionRepeat`, :class:`NormalizeAction` (a ``[-1, 1]`` box) and :class:`RecordFrames`.

Example:
    >>> import gymnasium as gym
    >>> env = gym.make("Reacher-v5", render_mode="rgb_array", width=64, height=64)
    >>> env = PixelObservation(NormalizeAction(ActionRepeat(env, 2)), size=32)
    >>> obs, _ = env.reset(seed=0)
    >>> obs.shape, obs.dtype
    ((32, 32, 3), dtype('uint8'))
    >>> env.close()
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from PIL import Image

from mbvc.errors import ConfigError, EnvError, did_you_mean
from mbvc.io import atomic_path

logger = logging.getLogger(__name__)


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in pair):
        raise ConfigError(f"{name} must be a positive int or (height, width), got {value!r}")
    return int(pair[0]), int(pair[1])


FREE_CAMERA_KEYS = ("distance", "azimuth", "elevation", "lookat")


def select_camera(env: gym.Env, camera: str | int | dict[str, Any]) -> None:
    """Point ``env``'s ``render()`` at a camera of its MuJoCo model.

    Supports mbvc's Push envs (``camera`` attribute: ``"bair"``, ``"top"``, ``"side"``) and
    gymnasium's ``MujocoEnv`` (its renderer's ``camera_id``): a camera name, an id (``-1`` is
    the free camera), or a dict placing the free camera, with keys among
    :data:`FREE_CAMERA_KEYS` (gymnasium's Pusher and Reacher define no named cameras, so this
    is how their view is chosen), e.g. ``{"distance": 2.0, "azimuth": 90, "elevation": -60}``.

    Raises:
        ConfigError: the env has no such camera, or its cameras cannot be chosen.
    """
    base = env.unwrapped
    if hasattr(base, "camera") and hasattr(base, "goal_image"):  # an mbvc Push env
        if not isinstance(camera, str):
            raise ConfigError(f"mbvc Push envs take a camera name, got {camera!r}")
        base.camera = camera
        return
    model, renderer = getattr(base, "model", None), getattr(base, "mujoco_renderer", None)
    if model is None or renderer is None:
        raise ConfigError(f"camera choice needs a MuJoCo env (mbvc Push or gymnasium MujocoEnv), "
                          f"got {type(base).__name__}")
    if isinstance(camera, dict):
        _place_free_camera(renderer, camera)
        return
    from envs._gl import import_mujoco

    mujoco = import_mujoco()
    names = [model.camera(i).name for i in range(model.ncam)]
    if isinstance(camera, str):
        if camera not in names:
            raise ConfigError(f"{type(base).__name__} has no camera {camera!r}; cameras: {names} "
                              "(or an int id, -1 for the free camera, or a dict placing the free camera)"
                              + did_you_mean(camera, names))
        camera = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    elif not -1 <= camera < model.ncam:
        raise ConfigError(f"camera id must be in -1..{model.ncam - 1} for {type(base).__name__}, got {camera}")
    renderer.camera_id = int(camera)


def _place_free_camera(renderer: Any, config: dict[str, Any]) -> None:
    """Render from the free camera placed by ``config`` (gymnasium's ``default_camera_config`` keys)."""
    unknown = sorted(set(config) - set(FREE_CAMERA_KEYS))
    if unknown:
        raise ConfigError(f"free camera keys must be among {list(FREE_CAMERA_KEYS)}, got {unknown}"
                          + did_you_mean(unknown[0], FREE_CAMERA_KEYS))
    values = {k: np.asarray(v, np.float64) if k == "lookat" else float(v) for k, v in config.items()}
    if "lookat" in values and values["lookat"].shape != (3,):
        raise ConfigError(f"free camera lookat must be (x, y, z), got {config['lookat']!r}")
    renderer.camera_id = -1
    # The renderer applies default_cam_config when it creates its viewer; a viewer that
    # already exists gets the values now.
    renderer.default_cam_config = {**(renderer.default_cam_config or {}), **values}
    viewer = getattr(renderer, "viewer", None)
    if viewer is not None:
        for key, value in values.items():
            if key == "lookat":
                viewer.cam.lookat[:] = value
            else:
                setattr(viewer.cam, key, value)


def _native_size(env: gym.Env) -> tuple[int, int] | None:
    """``(height, width)`` of ``render()`` when the env states it (MuJoCo envs do)."""
    base = env.unwrapped
    h, w = getattr(base, "height", None), getattr(base, "width", None)
    return (int(h), int(w)) if isinstance(h, (int, np.integer)) and isinstance(w, (int, np.integer)) else None


class PixelObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Replace (or extend) the observation with the ``render()`` frame, cropped and resized.

    Args:
        env: an env made with ``render_mode="rgb_array"``.
        size: output ``(height, width)`` (or one int); ``None`` keeps the (cropped) size.
        crop: ``(top, left, height, width)`` taken from the rendered frame before resizing.
        camera: camera to render from (MuJoCo envs): a name, an id or a dict placing the
            free camera (see :func:`select_camera`); ``None`` keeps the env's.
        pixels_only: if False the observation is ``{"image": frame, "state": original obs}``.

    Observation: ``uint8 (height, width, 3)`` (or the dict above).
    """

    def __init__(self, env: gym.Env, size: int | tuple[int, int] | None = None,
                 crop: tuple[int, int, int, int] | None = None, camera: str | int | dict[str, Any] | None = None,
                 pixels_only: bool = True) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, size=size, crop=crop, camera=camera, pixels_only=pixels_only)
        gym.ObservationWrapper.__init__(self, env)
        if env.render_mode != "rgb_array":
            raise ConfigError(f"PixelObservation requires render_mode='rgb_array', got {env.render_mode!r}; "
                              f"make the env with gymnasium.make(..., render_mode='rgb_array')")
        if camera is not None:
            select_camera(env, camera)
        self.size = None if size is None else _pair(size, "size")
        native = _native_size(env)
        if crop is not None:
            if len(crop) != 4 or min(crop) < 0 or crop[2] <= 0 or crop[3] <= 0:
                raise ConfigError(f"crop must be (top, left, height, width) with positive sizes, got {crop!r}")
            if native and (crop[0] + crop[2] > native[0] or crop[1] + crop[3] > native[1]):
                raise ConfigError(f"crop {crop} does not fit the rendered {native[0]}x{native[1]} frame")
        self.crop = None if crop is None else tuple(int(c) for c in crop)
        out = self.size or (self.crop[2:] if self.crop else native)
        if out is None:
            raise ConfigError(f"PixelObservation cannot tell the frame size of {type(env.unwrapped).__name__}; "
                              "pass size=(height, width)")
        pixels = spaces.Box(0, 255, (*out, 3), np.uint8)
        self.pixels_only = pixels_only
        self.observation_space = pixels if pixels_only else spaces.Dict(
            {"image": pixels, "state": env.observation_space})

    def observation(self, observation: Any) -> Any:
        from envs._gl import prepare_render

        prepare_render()  # a gymnasium MuJoCo env renders on its own: no TensorFlow next to Mesa
        frame = self.env.render()
        if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] >= 3):
            raise EnvError(f"PixelObservation: render() returned {type(frame).__name__} "
                           f"{getattr(frame, 'shape', '')}, expected an (H, W, 3) array")
        frame = frame[..., :3]
        if self.crop is not None:
            top, left, h, w = self.crop
            frame = frame[top: top + h, left: left + w]
        if self.size is not None and frame.shape[:2] != self.size:
            img = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
            frame = np.asarray(img.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR))
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        return frame if self.pixels_only else {"image": frame, "state": observation}


class ActionRepeat(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Apply each action ``repeat`` times, summing rewards and stopping early when the episode ends.

    Args:
        env: any env.
        repeat: number of env steps per wrapper step (>= 1).
    """

    def __init__(self, env: gym.Env, repeat: int) -> None:
        if not isinstance(repeat, (int, np.integer)) or repeat < 1:
            raise ConfigError(f"ActionRepeat requires repeat >= 1 (an int), got {repeat!r}")
        gym.utils.RecordConstructorArgs.__init__(self, repeat=repeat)
        gym.Wrapper.__init__(self, env)
        self.repeat = int(repeat)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class NormalizeAction(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Expose a ``[-1, 1]`` box and map it linearly onto the env's bounded ``Box`` action space."""

    def __init__(self, env: gym.Env) -> None:
        space = env.action_space
        if not isinstance(space, spaces.Box) or not space.is_bounded("both"):
            raise ConfigError(f"NormalizeAction requires a Box action space with finite bounds, got {space}")
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ActionWrapper.__init__(self, env)
        self.low, self.high = space.low.astype(np.float64), space.high.astype(np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, space.shape, np.float32)

    def action(self, action: Any) -> np.ndarray:
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        out = self.low + (a + 1.0) * 0.5 * (self.high - self.low)
        return out.astype(self.env.action_space.dtype)


class RecordFrames(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Keep the frames of each episode and optionally write them as GIFs.

    Frames come from the observation when it is an image (or a dict with ``"image"``), else
    from ``render()`` (which then needs ``render_mode="rgb_array"``).

    Args:
        env: any env with image observations or ``rgb_array`` rendering.
        directory: if given, each finished episode is written to ``episode_<k>.gif`` there.
        fps: frame rate of the GIFs.

    Attributes:
        frames: frames of the current episode.
        last_episode: ``uint8 (T, H, W, 3)`` of the last finished episode, or ``None``.
        episodes: number of finished episodes.
    """

    def __init__(self, env: gym.Env, directory: str | os.PathLike | None = None, fps: int = 10) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, directory=directory, fps=fps)
        gym.Wrapper.__init__(self, env)
        self._key = self._image_key(env.observation_space)
        if self._key is False and env.render_mode != "rgb_array":
            raise ConfigError("RecordFrames needs image observations or render_mode='rgb_array', got "
                              f"observation space {env.observation_space} and render_mode {env.render_mode!r}")
        if fps <= 0:
            raise ConfigError(f"RecordFrames requires fps > 0, got {fps!r}")
        self.directory = None if directory is None else Path(directory)
        self.fps = fps
        self.frames: list[np.ndarray] = []
        self.last_episode: np.ndarray | None = None
        self.episodes = 0

    @staticmethod
    def _image_key(space: spaces.Space) -> str | None | bool:
        """``None``: the observation is the image; a key: ``obs[key]``; ``False``: use render()."""
        def is_image(s: spaces.Space) -> bool:
            return isinstance(s, spaces.Box) and s.dtype == np.uint8 and len(s.shape) == 3 and s.shape[2] == 3
        if is_image(space):
            return None
        if isinstance(space, spaces.Dict) and "image" in space.spaces and is_image(space["image"]):
            return "image"
        return False

    def _grab(self, obs: Any) -> None:
        if self._key is False:
            from envs._gl import prepare_render

            prepare_render()
            frame = self.env.render()
        else:
            frame = obs if self._key is None else obs[self._key]
        self.frames.append(np.array(frame, dtype=np.uint8, copy=True))

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.frames = []
        self._grab(obs)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._grab(obs)
        if terminated or truncated:
            self._finish()
        return obs, reward, terminated, truncated, info

    def _finish(self) -> None:
        self.last_episode = np.stack(self.frames)
        if self.directory is not None:
            import imageio.v3 as iio

            path = self.directory / f"episode_{self.episodes:05d}.gif"
            with atomic_path(path) as tmp:
                iio.imwrite(tmp, self.last_episode, extension=".gif", duration=1000 / self.fps, loop=0)
            logger.info("wrote %d frames to %s", len(self.last_episode), path)
        self.episodes += 1
