"""Baselines: random and policy agents, and a few steps of stable-baselines3 training."""
from __future__ import annotations

import json

import numpy as np
import pytest

from agents.baselines import (
    DictKeyObservation,
    GoalImageObservation,
    PolicyAgent,
    RandomAgent,
    SB3Agent,
    stack_goal,
    train_sb3,
)
from agents.evaluation import evaluate_agent
from mbvc.errors import ConfigError, ShapeError

from .conftest import LineEnv


def test_random_agent_is_bounded_and_seeded():
    space = LineEnv().action_space
    a, b = RandomAgent(space, seed=0), RandomAgent(space, seed=0)
    acts = [a.act({}) for _ in range(20)]
    assert all(x.shape == (1,) and x.dtype == np.float32 and -1 <= x[0] <= 1 for x in acts)
    assert np.array_equal(acts[0], b.act({}))
    a.reset(seed=0)
    assert np.array_equal(a.act({}), acts[0])
    with pytest.raises(ConfigError, match="bounded Box"):
        RandomAgent(LineEnv().observation_space)


def test_policy_agent_adapts_a_state_policy():
    env = LineEnv()

    def go_to_goal(obs):
        x, goal = obs["state"]
        return np.clip([(goal - x) / 0.25], -1, 1)

    assert evaluate_agent(PolicyAgent(go_to_goal), env, seeds=[0, 1]).success_rate == 1.0


def test_dict_key_observation_validates():
    with pytest.raises(ConfigError, match="'depth'"):
        DictKeyObservation(LineEnv(), "depth")
    wrapped = DictKeyObservation(LineEnv(), "image")
    obs, _ = wrapped.reset(seed=0)
    assert wrapped.observation_space.contains(obs)


PPO = {"n_steps": 32, "batch_size": 16, "n_epochs": 1}


@pytest.mark.parametrize(
    ("algo", "observation", "size", "extractor", "kwargs"),
    [
        ("ppo", "state", 8, None, {**PPO, "policy_kwargs": {"net_arch": [16]}}),
        ("ppo", "pixels", 16, "SmallImageCNN", PPO),  # NatureCNN needs >= 36 px
        ("ppo", "pixels_goal", 36, "NatureCNN", PPO),
        ("sac", "state", 8, None, {"learning_starts": 16, "batch_size": 16, "policy_kwargs": {"net_arch": [16]}}),
    ],
)
def test_sb3_trains_saves_and_reloads(tmp_path, algo, observation, size, extractor, kwargs):
    def make_env():
        return LineEnv(height=size, width=size)

    def eval_fn(agent):
        return evaluate_agent(agent, make_env(), seeds=[0], max_steps=5).to_dict()

    agent = train_sb3(make_env, tmp_path, algo=algo, observation=observation, total_steps=32, seed=0,
                      algo_kwargs=kwargs, device="cpu", eval_fn=eval_fn)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["algo"] == algo and results["total_steps"] == 32 and "success_rate" in results["eval"]
    assert results["policy"] == ("MlpPolicy" if observation == "state" else "CnnPolicy")
    assert results["features_extractor"] == extractor
    loaded = SB3Agent.load(tmp_path / "model.zip", algo=algo, observation=observation, device="cpu")
    env = make_env()
    obs, _ = env.reset(seed=0)
    for a in (agent, loaded):
        a.reset(obs, goal=env.goal_image())
    action = agent.act(obs)
    assert action.shape == (1,) and action.dtype == np.float32
    assert np.allclose(loaded.act(obs), action, atol=1e-6)


def test_goal_image_observation_stacks_the_goal():
    env = GoalImageObservation(LineEnv(height=8, width=16))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == (8, 16, 6) and env.observation_space.contains(obs)
    assert np.array_equal(obs[..., 3:], env.unwrapped.goal_image())
    obs2, *_ = env.step(np.array([1.0], np.float32))
    assert np.array_equal(obs2[..., 3:], obs[..., 3:]) and not np.array_equal(obs2[..., :3], obs[..., :3])
    with pytest.raises(ShapeError, match="goal image"):
        stack_goal(obs[..., :3], None)


def test_small_image_cnn_features():
    pytest.importorskip("stable_baselines3")
    import gymnasium as gym
    import torch

    from agents.sb3_features import SmallImageCNN

    for size in (8, 32, 64):
        cnn = SmallImageCNN(gym.spaces.Box(0, 255, (6, size, size), np.uint8), features_dim=24)
        assert cnn(torch.rand(2, 6, size, size)).shape == (2, 24)
    with pytest.raises(ShapeError, match="at least 8"):
        SmallImageCNN(gym.spaces.Box(0, 255, (3, 4, 4), np.uint8))


def test_sb3_rejects_unknown_names(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'ppo'"):
        train_sb3(LineEnv, tmp_path, algo="pop")
    with pytest.raises(ConfigError, match="observation"):
        train_sb3(LineEnv, tmp_path, observation="pixel")
