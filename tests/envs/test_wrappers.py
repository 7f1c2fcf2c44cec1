"""Wrappers on gymnasium's own MuJoCo envs (Pusher-v5, Reacher-v5) and on mbvc's."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from gymnasium.utils.env_checker import check_env

from envs.wrappers import ActionRepeat, NormalizeAction, PixelObservation, RecordFrames, select_camera
from mbvc.errors import ConfigError

OVERHEAD = {"azimuth": 90.0, "elevation": -80.0, "distance": 2.0}


def make_pusher(**kwargs) -> gym.Env:
    return gym.make("Pusher-v5", render_mode="rgb_array", width=32, height=24, **kwargs)


@pytest.fixture
def pusher():
    env = make_pusher()
    yield env
    env.close()


class ActionEcho(gym.Env):
    """Reward = the first action component; episode of 3 steps. For repeat / normalisation."""

    def __init__(self, low: float = -2.0, high: float = 6.0) -> None:
        self.action_space = spaces.Box(low, high, (2,), np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.t, self.seen = 0, []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        self.seen.append(np.array(action))
        return np.zeros(2, np.float32), float(action[0]), False, self.t >= 3, {}


def test_pixel_observation_on_pusher(pusher):
    env = PixelObservation(pusher, size=16, crop=(2, 4, 20, 24))
    assert env.observation_space == spaces.Box(0, 255, (16, 16, 3), np.uint8)
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space
    obs, *_ = env.step(env.action_space.sample())
    assert obs.shape == (16, 16, 3)


def test_pixel_observation_keeps_state_and_native_size(pusher):
    env = PixelObservation(pusher, camera=-1, pixels_only=False)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (24, 32, 3) and obs["state"].shape == pusher.observation_space.shape
    assert obs in env.observation_space


def test_pixel_observation_camera_choice_on_push(make_push):
    env = make_push(image_size=16)
    bair = PixelObservation(env, size=8).reset(seed=0)[0]
    top = PixelObservation(env, size=8, camera="top").reset(seed=0)[0]
    assert not np.array_equal(bair, top)


@pytest.mark.parametrize("kwargs, match", [
    ({"crop": (0, 0, 40, 40)}, "does not fit"),
    ({"crop": (0, 0, 0, 5)}, "positive sizes"),
    ({"size": 0}, "size"),
    ({"camera": "topp"}, "camera"),
    ({"camera": 7}, "camera id"),
])
def test_pixel_observation_errors(pusher, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        PixelObservation(pusher, **kwargs)


def test_pixel_observation_needs_rgb_array():
    env = gym.make("Reacher-v5")
    with pytest.raises(ConfigError, match="render_mode='rgb_array'"):
        PixelObservation(env)
    env.close()


def test_stack_on_reacher():
    env = gym.make("Reacher-v5", render_mode="rgb_array", width=16, height=16)
    env = RecordFrames(PixelObservation(NormalizeAction(ActionRepeat(env, 2)), size=8))
    env.reset(seed=0)
    for _ in range(3):
        env.step(env.action_space.sample())
    assert len(env.frames) == 4 and env.frames[0].shape == (8, 8, 3)
    env.close()


def test_action_repeat_sums_rewards_and_stops_at_episode_end():
    env = ActionRepeat(ActionEcho(), 2)
    env.reset()
    assert env.step(np.array([1.0, 0.0]))[1] == 2.0
    _, reward, _, truncated, _ = env.step(np.array([1.0, 0.0]))
    assert truncated and reward == 1.0 and len(env.unwrapped.seen) == 3
    with pytest.raises(ConfigError, match="repeat"):
        ActionRepeat(ActionEcho(), 0)


def test_normalize_action_maps_onto_bounds(pusher):
    env = NormalizeAction(ActionEcho(-2.0, 6.0))
    assert env.action_space == spaces.Box(-1.0, 1.0, (2,), np.float32)
    env.reset()
    for a in ([-1, -1], [1, 1], [0, 0.5], [3, -3]):
        env.step(np.array(a, np.float32))
    np.testing.assert_allclose(env.unwrapped.seen, [[-2, -2], [6, 6], [2, 4], [6, -2]])
    assert NormalizeAction(pusher).action_space.shape == pusher.action_space.shape
    unbounded = ActionEcho()
    unbounded.action_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
    with pytest.raises(ConfigError, match="finite bounds"):
        NormalizeAction(unbounded)


def test_record_frames_writes_gifs(make_push, tmp_path):
    env = RecordFrames(make_push(image_size=8, episode_length=3), directory=tmp_path)
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        done = terminated or truncated
    assert env.last_episode.shape == (4, 8, 8, 3) and np.array_equal(env.last_episode[-1], obs["image"])
    assert (tmp_path / "episode_00000.gif").stat().st_size > 0


def test_record_frames_from_render(pusher):
    env = RecordFrames(pusher)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert env.frames[-1].shape == (24, 32, 3)
    with pytest.raises(ConfigError, match="rgb_array"):
        RecordFrames(ActionEcho())


def test_crop_takes_the_named_region(pusher):
    env = PixelObservation(pusher, crop=(2, 4, 10, 12))
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, pusher.render()[2:12, 4:16])
    assert env.observation_space.shape == (10, 12, 3)


def test_free_camera_placement_on_pusher(pusher):
    """Pusher has no named cameras: the view is chosen by placing the free camera."""
    pusher.reset(seed=0)
    default = pusher.render()
    select_camera(pusher, OVERHEAD)  # after the viewer exists
    overhead = pusher.render()
    assert (default != overhead).mean() > 0.1
    fresh = make_pusher()
    obs, _ = PixelObservation(fresh, camera=OVERHEAD).reset(seed=0)  # before any render
    np.testing.assert_array_equal(obs, overhead)
    fresh.close()
    with pytest.raises(ConfigError, match="Did you mean 'azimuth'"):
        select_camera(pusher, {"azimut": 10})


def test_action_repeat_on_pusher_equals_repeated_steps(pusher):
    twin = make_pusher()
    env = ActionRepeat(pusher, 3)
    obs, _ = env.reset(seed=0)
    twin.reset(seed=0)
    action = np.linspace(-1, 1, 7).astype(np.float32)
    obs, reward, *_ = env.step(action)
    steps = [twin.step(action) for _ in range(3)]
    np.testing.assert_array_equal(obs, steps[-1][0])
    assert reward == pytest.approx(sum(s[1] for s in steps))
    twin.close()


def test_normalize_action_on_pusher_scales_to_its_bounds(pusher):
    """Pusher's torques are in [-2, 2]: 0.25 in the unit box is a torque of 0.5."""
    twin = make_pusher()
    env = NormalizeAction(pusher)
    env.reset(seed=0)
    twin.reset(seed=0)
    a = np.full(7, 0.25, np.float32)
    np.testing.assert_array_equal(env.step(a)[0], twin.step(2 * a)[0])
    twin.close()


def test_wrapper_stack_on_pusher_passes_check_env():
    env = RecordFrames(PixelObservation(NormalizeAction(ActionRepeat(make_pusher(), 2)), size=8, camera=OVERHEAD))
    with pytest.warns(UserWarning, match="different from the unwrapped"):
        check_env(env, skip_render_check=True)  # seeding, spaces, step/reset API
    env.close()


def test_record_frames_on_reacher_writes_the_episode(tmp_path):
    from PIL import Image, ImageSequence

    env = RecordFrames(gym.make("Reacher-v5", render_mode="rgb_array", width=16, height=16, max_episode_steps=4),
                       directory=tmp_path, fps=5)
    env.reset(seed=0)
    rendered = [env.render()]
    for _ in range(4):
        env.step(env.action_space.sample())
        rendered.append(env.render())
    assert env.episodes == 1
    np.testing.assert_array_equal(env.last_episode, np.stack(rendered))
    with Image.open(tmp_path / "episode_00000.gif") as gif:
        # GIF merges repeated frames into longer ones: the playing time is what must add up.
        duration = sum(frame.info["duration"] for frame in ImageSequence.Iterator(gif))
    assert duration == pytest.approx(5 * 200)
    env.close()
