"""mbvc/Reacher-v0: gymnasium's Reacher-v5 from pixels, its success test, goals and data policy."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("mujoco")

import envs  # noqa: F401,E402  registers the id
from envs.reacher import LINKS, ReacherDataPolicy, inverse_kinematics  # noqa: E402
from mbvc.errors import ConfigError  # noqa: E402


@pytest.fixture
def env():
    e = gym.make("mbvc/Reacher-v0", image_size=32, episode_length=12)
    yield e
    e.close()


def test_observations_info_and_truncation(env):
    obs, info = env.reset(seed=3)
    assert obs["image"].shape == (32, 32, 3) and obs["image"].dtype == np.uint8 and obs["state"].shape == (10,)
    base = env.unwrapped
    for t in range(12):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        # the env's own distance: Reacher-v5's reward_dist is minus it
        assert info["distance"] == pytest.approx(-info["reward_dist"], rel=1e-6)
        assert info["is_success"] == (info["distance"] < base.success_distance)
        assert truncated == (t == 11) and not terminated


def test_designated_pixels_are_where_the_target_and_fingertip_are_drawn():
    env = gym.make("mbvc/Reacher-v0", image_size=64)
    obs, _ = env.reset(seed=5)
    source, target = env.unwrapped.designate((64, 64))
    img = obs["image"].astype(float) / 255
    red = (img[..., 0] - img[..., 1] > 0.2) & (img[..., 0] - img[..., 2] > 0.2)  # the target (0.9, 0.2, 0.2), not the pink root
    rows, cols = np.nonzero(red)
    assert abs(rows.mean() - target[0]) < 1.0 and abs(cols.mean() - target[1]) < 1.0
    green = img[..., 1] - img[..., 0] > 0.25  # the fingertip (0, 0.8, 0.6)
    rows, cols = np.nonzero(green)
    assert abs(rows.mean() - source[0]) < 1.5 and abs(cols.mean() - source[1]) < 1.5
    env.close()


def test_state_round_trip_replays_the_same_step(env):
    env.reset(seed=1)
    state = env.unwrapped.get_state()
    a = np.array([0.5, -0.3], dtype=np.float32)
    first = env.step(a)
    env.unwrapped.set_state(state)
    again = env.step(a)
    assert np.array_equal(first[0]["image"], again[0]["image"]) and first[4]["distance"] == again[4]["distance"]


def test_inverse_kinematics_reaches_points_and_the_goal_image_shows_the_arm_there(env):
    for xy in ([0.1, 0.05], [-0.12, -0.08], [0.0, 0.2]):
        q = inverse_kinematics(np.array(xy))
        tip = LINKS[0] * np.array([np.cos(q[0]), np.sin(q[0])]) + LINKS[1] * np.array([np.cos(q.sum()), np.sin(q.sum())])
        assert np.allclose(tip, xy, atol=1e-6)
    obs, _ = env.reset(seed=2)
    before = env.unwrapped.get_state()
    goal = env.unwrapped.goal_image()
    assert goal.shape == obs["image"].shape and not np.array_equal(goal, obs["image"])
    after = env.unwrapped.get_state()
    assert all(np.array_equal(x, y) for x, y in zip(before[:2], after[:2]))  # the state is left as it was


@pytest.mark.parametrize("control", ["torque", "velocity"])
def test_data_policy_reaches_the_target_in_reaching_episodes(control):
    env = gym.make("mbvc/Reacher-v0", image_size=16, episode_length=50, control=control)
    policy = ReacherDataPolicy(env, reach_prob=1.0, noise_std=0.0, random_prob=0.0)
    policy.reset(seed=0)
    obs, _ = env.reset(seed=0)
    for _ in range(50):
        obs, _, _, _, info = env.step(policy(obs))
    assert info["distance"] < 0.02
    env.close()


def test_velocity_control_holds_the_asked_joint_speed_and_stops():
    env = gym.make("mbvc/Reacher-v0", image_size=16, control="velocity", max_joint_velocity=4.0)
    env.reset(seed=1)
    base = env.unwrapped
    qpos, qvel, _ = base.get_state()
    base.set_state((qpos, np.zeros_like(qvel), 0))
    for _ in range(5):
        env.step(np.array([0.5, -1.0], dtype=np.float32))
    np.testing.assert_allclose(base.data.qvel[:2], [2.0, -4.0], atol=0.3)
    for _ in range(4):
        env.step(np.zeros(2, dtype=np.float32))
    assert np.abs(base.data.qvel[:2]).max() < 0.3
    # the torques stay within Reacher-v5's limits, and torque control passes actions through
    assert np.abs(base.torque(np.array([1.0, -1.0]))).max() <= 1.0
    torque_env = gym.make("mbvc/Reacher-v0", image_size=16).unwrapped
    np.testing.assert_array_equal(torque_env.torque(np.array([0.3, -0.7])), [0.3, -0.7])
    env.close()
    torque_env.close()


def test_designate_state_reads_the_pixels_from_a_recorded_observation(env):
    obs, _ = env.reset(seed=4)
    for _ in range(3):
        obs, *_ = env.step(env.action_space.sample())
    live = env.unwrapped.designate((32, 32))
    assert np.allclose(env.unwrapped.designate_state(obs["state"], (32, 32)), live, atol=1e-6)


def test_fingertip_colour_is_drawn_where_the_fingertip_is():
    env = gym.make("mbvc/Reacher-v0", image_size=32, fingertip_rgb=[1.0, 0.85, 0.1])
    obs, _ = env.reset(seed=5)
    r, c = (int(round(v)) for v in env.unwrapped.designate((32, 32))[0])
    red, green, blue = obs["image"][r, c].astype(int)
    assert red > blue + 50 and green > blue + 50  # yellow, where Reacher's teal has blue > red
    env.close()


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="image_size"):
        gym.make("mbvc/Reacher-v0", image_size=4)
    with pytest.raises(ConfigError, match="control"):
        gym.make("mbvc/Reacher-v0", control="position")
    with pytest.raises(ConfigError, match="fingertip_rgb"):
        gym.make("mbvc/Reacher-v0", fingertip_rgb=[255, 0, 0])
