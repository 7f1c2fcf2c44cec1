"""The pushing environments: API checks, seeding, state snapshots, success and configuration errors."""
from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.push import PushEnv, PushState
from mbvc.errors import ConfigError, EnvError


def rollout(env: gym.Env, actions: np.ndarray) -> list[dict]:
    return [env.step(a)[0] for a in actions]


def same(a: list[dict], b: list[dict]) -> bool:
    return all(np.array_equal(x["image"], y["image"]) and np.array_equal(x["state"], y["state"])
               for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_gymnasium_check_env(env_id, make_push):
    env = make_push(env_id)
    check_env(env.unwrapped, skip_render_check=False)


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_sb3_check_env(env_id, make_push):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    with pytest.warns(UserWarning, match="36x36"):  # SB3's CnnPolicy advice for small images
        sb3_checker.check_env(make_push(env_id).unwrapped, warn=True)


def test_registered_with_module_prefix():
    env = gym.make("envs:mbvc/Push-v0", image_size=8)
    assert isinstance(env.unwrapped, PushEnv)
    env.close()


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_observation_layout(env_id, make_push):
    env = make_push(env_id, image_size=(12, 20))
    obs, info = env.reset(seed=0)
    assert obs["image"].shape == (12, 20, 3) and obs["image"].dtype == np.uint8
    assert obs["state"].dtype == np.float32 and obs["state"] in env.observation_space["state"]
    assert np.array_equal(env.render(), obs["image"])
    layout = env.unwrapped.layout
    np.testing.assert_allclose(obs["state"][layout.goal], env.unwrapped.goal, atol=1e-6)
    assert obs["state"][layout.target].sum() == 1.0
    assert {"distance", "is_success", "target", "pusher_distance"} <= set(info)


def test_seeded_reset_is_deterministic(make_push):
    a, b = make_push("mbvc/PushMulti-v0"), make_push("mbvc/PushMulti-v0")
    actions = np.random.default_rng(0).uniform(-1, 1, (5, 2))
    obs_a, _ = a.reset(seed=7)
    obs_b, _ = b.reset(seed=7)
    assert same([obs_a], [obs_b])
    assert same(rollout(a, actions), rollout(b, actions))
    obs_c, _ = b.reset(seed=8)
    assert not np.array_equal(obs_a["state"], obs_c["state"])


@pytest.mark.parametrize("env_id", ["mbvc/Push-v0", "mbvc/PushDistractors-v0"])
def test_set_state_reproduces_frames(env_id, make_push):
    env, copy = make_push(env_id), make_push(env_id)
    rng = np.random.default_rng(1)
    env.reset(seed=3)
    rollout(env, rng.uniform(-1, 1, (4, 2)))
    snapshot = env.unwrapped.get_state()
    actions = rng.uniform(-1, 1, (6, 2))
    first = rollout(env, actions)
    env.unwrapped.set_state(snapshot)
    assert same(rollout(env, actions), first)
    copy.reset(seed=99)  # another episode entirely, then the snapshot
    copy.unwrapped.set_state(snapshot)
    assert same(rollout(copy, actions), first)


def test_set_state_restores_step_count_and_goal(make_push):
    env = make_push(episode_length=3)
    env.reset(seed=0)
    snapshot = env.unwrapped.get_state()
    truncations = [env.step(np.zeros(2))[3] for _ in range(3)]
    assert truncations == [False, False, True]
    env.reset(seed=5)
    env.unwrapped.set_state(snapshot)
    np.testing.assert_array_equal(env.unwrapped.goal, snapshot.goal)
    assert [env.step(np.zeros(2))[3] for _ in range(3)] == truncations


def test_set_state_rejects_foreign_states(make_push):
    env = make_push("mbvc/PushMulti-v0")
    env.reset(seed=0)
    with pytest.raises(EnvError, match="PushState"):
        env.unwrapped.set_state(np.zeros(3))
    bad = PushState(np.zeros(5), np.zeros(2), 0, 0)
    with pytest.raises(EnvError, match="another scene"):
        env.unwrapped.set_state(bad)


def test_goal_image_moves_target_and_leaves_episode(make_push):
    env = make_push(image_size=32, camera="top")
    obs, _ = env.reset(seed=0)
    goal_img = env.unwrapped.goal_image()
    assert goal_img.shape == (32, 32, 3) and not np.array_equal(goal_img, obs["image"])
    assert np.array_equal(env.unwrapped.observe()["image"], obs["image"])
    # At the goal the target sits where the goal image drew it.
    env.reset(seed=0, options={"goal": env.unwrapped.target_position})
    assert np.array_equal(env.unwrapped.goal_image(), env.unwrapped.observe()["image"])


def test_success_reward_and_termination(make_push):
    env = make_push(terminate_on_success=True)
    env.reset(seed=0)
    here = env.unwrapped.target_position
    obs, info = env.reset(seed=0, options={"goal": here})
    assert info["is_success"] and info["distance"] < 1e-3
    _, reward, terminated, _, info = env.step(np.zeros(2))
    assert terminated and info["is_success"] and reward == pytest.approx(-info["distance"])
    _, info = env.reset(seed=0, options={"goal": here + np.array([0.1, 0.0])})
    assert not info["is_success"] and info["distance"] == pytest.approx(0.1, abs=1e-3)


def test_named_target(make_push):
    env = make_push("mbvc/PushMulti-v0", num_blocks=2)
    obs, info = env.reset(seed=0, options={"target": "green"})
    assert info["target"] == "green" and env.unwrapped.target == "green"
    assert obs["state"][env.unwrapped.layout.target].tolist() == [0.0, 1.0]
    with pytest.raises(ConfigError, match="Did you mean 'blue'"):
        make_push("mbvc/PushMulti-v0", target="bleu")


def test_four_dimensional_variant(make_push):
    env = make_push(action_dim=4)
    assert env.action_space.shape == (4,)
    env.reset(seed=0)
    obs, *_ = env.step(np.array([0.0, 0.0, 1.0, 1.0], np.float32))
    pusher = obs["state"][env.unwrapped.layout.pusher]
    assert pusher[2] > 0.01 and pusher[3] > 0.1  # lifted and turned


def test_pusher_moves_by_bounded_steps(make_push):
    env = make_push(max_step=0.02)
    obs, _ = env.reset(seed=0)
    before = obs["state"][:2].copy()
    obs, *_ = env.step(np.array([5.0, 0.0]))  # clipped to 1
    assert 0.015 < obs["state"][0] - before[0] <= 0.0201


@pytest.mark.parametrize("kwargs, match", [
    ({"scene": "pushh"}, "Did you mean 'push'"),
    ({"image_size": 4}, "image_size"),
    ({"episode_length": 0}, "episode_length"),
    ({"max_step": 0.5}, "max_step"),
    ({"action_dim": 3}, "action_dim"),
    ({"camera": "front"}, "camera"),
    ({"camera": "bair+sid"}, "Did you mean 'side'"),
    ({"camera": "bair+bair"}, "names a view twice"),
    ({"goal_distance": (0.2, 0.1)}, "goal_distance"),
    ({"render_mode": "human"}, "render_mode"),
    ({"scene": "multi", "num_blocks": 5}, "num_blocks"),
    ({"imagesize": 16}, "unknown argument 'imagesize'.*Did you mean 'image_size'"),
])
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        PushEnv(**kwargs)


def test_impossible_layout_raises():
    with pytest.raises(EnvError, match="could not place"):
        PushEnv(goal_distance=(0.9, 1.0)).reset(seed=0)


def test_misspelt_keyword_through_gym_make_is_a_config_error():
    with pytest.raises(ConfigError, match="Did you mean 'image_size'"):
        gym.make("mbvc/Push-v0", imagesize=16)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_actions_are_refused_not_clipped(make_push, bad):
    env = make_push()
    env.reset(seed=0)
    with pytest.raises(EnvError, match=r"finite action, got \[.*(nan|inf)"):
        env.step(np.array([0.5, bad]))
    with pytest.raises(EnvError, match=r"shape \(2,\), got \(3,\)"):
        env.step(np.zeros(3))


def _red_centroid(image: np.ndarray) -> tuple[float, float]:
    img = image.astype(float) / 255
    rows, cols = np.nonzero((img[..., 0] - img[..., 1] > 0.3) & (img[..., 0] - img[..., 2] > 0.3))
    return rows.mean(), cols.mean()


@pytest.mark.parametrize("camera", ["bair", "top", "side"])
def test_designated_pixels_are_where_the_block_is_and_would_be_at_its_goal(camera):
    env = gym.make("mbvc/Push-v0", image_size=64, camera=camera)
    obs, _ = env.reset(seed=3)
    push = env.unwrapped
    source, target = push.designate((64, 64))
    assert np.allclose(_red_centroid(obs["image"]), source, atol=1.0)
    # The block standing on its goal is drawn at the target pixel (same height: no parallax).
    adr = push._obj_qpos[push._target]
    push.data.qpos[adr: adr + 2] = push.goal
    mujoco.mj_forward(push.model, push.data)
    push._image = None  # the frame cache
    assert np.allclose(_red_centroid(push.observe()["image"]), target, atol=1.0)
    assert not np.allclose(source, target, atol=3.0)
    env.close()


@pytest.mark.parametrize("camera", ["bair", "top"])
def test_designated_agent_pixel_is_on_the_dark_finger_and_follows_the_pusher(camera):
    env = gym.make("mbvc/Push-v0", image_size=64, camera=camera)
    obs, _ = env.reset(seed=3)
    push = env.unwrapped
    finger = push.designate_agent((64, 64))
    # The finger's centre as MuJoCo places the geom (the height constant matches the model).
    geom = push.data.geom_xpos[push.model.geom("finger").id]
    assert np.allclose(finger, push.pixel_of(geom, (64, 64)), atol=1e-6)
    # ...and it is drawn there: the finger is the dark grey (0.15) thing near that pixel (seen
    # from the tilted camera; from above, the wrist hides it).
    r, c = (int(round(v)) for v in finger)
    patch = obs["image"][max(r - 1, 0): r + 2, max(c - 1, 0): c + 2].astype(float) / 255
    assert camera == "top" or patch.mean(axis=-1).min() < 0.3
    obs, *_ = env.step(np.array([1.0, 0.0], np.float32))  # +x
    moved = push.designate_agent((64, 64))
    assert np.hypot(moved[0] - finger[0], moved[1] - finger[1]) > 1.0
    env.close()


def test_several_cameras_are_views_side_by_side(make_push):
    both = make_push(image_size=(16, 24), camera="bair+side")
    obs, _ = both.reset(seed=5)
    assert obs["image"].shape == (16, 48, 3) and obs["image"] in both.observation_space["image"]
    for i, camera in enumerate(("bair", "side")):
        one = make_push(image_size=(16, 24), camera=camera)
        single, _ = one.reset(seed=5)
        assert np.array_equal(obs["image"][:, 24 * i: 24 * (i + 1)], single["image"])
    assert both.unwrapped.goal_image().shape == (16, 48, 3)
    # designated pixels are in the first view
    bair = make_push(image_size=(16, 24))
    bair.reset(seed=5)
    assert np.allclose(both.unwrapped.designate((16, 48)), bair.unwrapped.designate((16, 24)))
    with pytest.raises(ConfigError, match="make a new env"):
        both.unwrapped.camera = "top"


def test_the_side_camera_sees_the_block_that_the_rod_hides_from_the_bair_camera():
    """Pushing away from the BAIR-view camera puts the rod between it and the block; the side view keeps it."""
    env = gym.make("mbvc/Push-v0", image_size=32, camera="bair+side")
    push = env.unwrapped
    env.reset(seed=0)
    block = push.target_position
    adr = push._pusher_qpos
    push.data.qpos[adr: adr + 2] = block - (0.0, 0.035)  # on the camera's side of the block, touching it
    mujoco.mj_forward(push.model, push.data)
    push._image = None
    image = push.observe()["image"].astype(float) / 255
    red = (image[..., 0] - image[..., 1] > 0.3) & (image[..., 0] - image[..., 2] > 0.3)
    bair, side = red[:, :32].sum(), red[:, 32:].sum()
    assert side >= 4 and bair < side / 2
    env.close()
