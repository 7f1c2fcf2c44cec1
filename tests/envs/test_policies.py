"""Random, scripted and noisy policies."""
from __future__ import annotations

import numpy as np
import pytest

from envs.policies import AgentPolicy, FunctionPolicy, NoisyPolicy, RandomPolicy, ScriptedPushPolicy, as_policy, make_policy
from mbvc.errors import ConfigError


def run_episode(env, policy, seed: int) -> tuple[dict, list[np.ndarray]]:
    policy.reset(seed)
    obs, info = env.reset(seed=seed)
    actions, done = [], False
    while not done:
        actions.append(policy(obs))
        obs, _, terminated, truncated, info = env.step(actions[-1])
        done = terminated or truncated
    return info, actions


@pytest.mark.parametrize("action_dim", [2, 4])
def test_scripted_policy_solves_an_easy_push(make_push, action_dim):
    env = make_push(image_size=8, episode_length=30, goal_distance=(0.06, 0.08), action_dim=action_dim,
                    terminate_on_success=True)
    info, actions = run_episode(env, ScriptedPushPolicy.from_env(env), seed=1)
    assert info["is_success"], info
    assert all(a.shape == (action_dim,) and np.all(np.abs(a) <= 1) for a in actions)


def test_scripted_policy_reads_the_named_target(make_push):
    env = make_push("mbvc/PushMulti-v0", image_size=8, episode_length=30, goal_distance=(0.06, 0.08),
                    terminate_on_success=True, target="blue")
    info, _ = run_episode(env, make_policy("scripted", env), seed=2)
    assert info["target"] == "blue" and info["is_success"], info


def test_random_and_mixed_policies_are_seeded(make_push):
    env = make_push()
    for name in ("random", "mixed"):
        policy = make_policy(name, env, seed=0)
        _, first = run_episode(env, policy, seed=3)
        _, again = run_episode(env, policy, seed=3)
        _, other = run_episode(env, policy, seed=4)
        np.testing.assert_array_equal(first, again)
        assert not np.array_equal(first, other)
        assert all(a in env.action_space for a in first)


def test_policy_errors(make_push):
    env = make_push()
    with pytest.raises(ConfigError, match="Did you mean 'scripted'"):
        make_policy("scriptd", env)
    with pytest.raises(ConfigError, match="cannot import"):
        make_policy("no_such_module:factory", env)
    with pytest.raises(ConfigError, match="random_prob"):
        NoisyPolicy(RandomPolicy(env.action_space), env.action_space, random_prob=2.0)


def test_factory_policy(make_push):
    env = make_push()
    policy = make_policy("tests.envs.test_policies:zero_policy", env)
    assert np.array_equal(policy(env.reset(seed=0)[0]), np.zeros(2, np.float32))


def test_adapters_give_every_policy_reset():
    fn = as_policy(lambda obs: [0.5, -0.5])
    assert isinstance(fn, FunctionPolicy)
    fn.reset(3)  # collection resets every policy
    assert fn(None).dtype == np.float32

    class Agent:
        calls: list = []

        def reset(self, obs=None, goal=None, seed=None):
            self.calls.append(("reset", obs, goal, seed))

        def act(self, obs):
            self.calls.append(("act", obs))
            return [obs]

    policy = as_policy(Agent())
    assert isinstance(policy, AgentPolicy)
    for seed in (7, 8):
        policy.reset(seed)
        policy.set_goal("goal")
        policy(1), policy(2)
    # Reset lazily with the first observation, the goal and the seed; once per episode.
    assert Agent.calls == [("reset", 1, "goal", 7), ("act", 1), ("act", 2),
                           ("reset", 1, "goal", 8), ("act", 1), ("act", 2)]
    with pytest.raises(ConfigError, match="callable"):
        as_policy(42)


def test_policy_kwargs_reach_the_factory(make_push):
    env = make_push()
    policy = make_policy("tests.envs.test_policies:constant_policy", env, policy_kwargs={"value": 0.25})
    np.testing.assert_array_equal(policy(None), [0.25, 0.25])
    with pytest.raises(ConfigError, match="policy_kwargs"):
        make_policy("random", env, policy_kwargs={"value": 1})


def constant_policy(env, value: float):
    """A ``module:factory`` taking keyword arguments."""
    return lambda obs: np.full(env.action_space.shape, value, np.float32)


def zero_policy(env):
    """A ``module:factory`` policy for :func:`test_factory_policy`."""
    return lambda obs: np.zeros(env.action_space.shape, np.float32)


@pytest.mark.slow
def test_scripted_policy_success_rate(make_push):
    """The scripted baseline solves most default Push-v0 episodes (about 95% over 40 seeds)."""
    env = make_push(image_size=8, episode_length=40)
    policy = ScriptedPushPolicy.from_env(env)
    wins = [run_episode(env, policy, seed)[0]["is_success"] for seed in range(20)]
    assert np.mean(wins) >= 0.8


def test_policies_are_found_by_registered_name(make_push, monkeypatch):
    import envs.policies as policies
    from envs.policies import EpisodeMixPolicy, register_policy

    env = make_push()
    mix = make_policy("episode_mix", env)
    assert isinstance(mix, EpisodeMixPolicy) and len(mix.policies) == 2  # the demo's data, by name
    monkeypatch.setattr(policies, "POLICY_FACTORIES", dict(policies.POLICY_FACTORIES))
    monkeypatch.setattr(policies, "POLICIES", policies.POLICIES)
    register_policy("still", lambda env, seed, noise, prob: FunctionPolicy(lambda obs: np.zeros(2, np.float32)))
    assert "still" in policies.POLICIES
    assert np.all(make_policy("still", env)(None) == 0)
    with pytest.raises(ConfigError, match="Did you mean 'episode_mix'"):
        make_policy("episode_mx", env)
    with pytest.raises(ConfigError, match="module:factory"):
        register_policy("a:b", lambda *a: None)
