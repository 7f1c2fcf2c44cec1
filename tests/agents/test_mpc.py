"""The MPC agent end to end on the 1-D point mass, plus its history and timing bookkeeping."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.baselines import RandomAgent
from agents.costs import DesignatedPixelCost, GoalImageCost
from agents.evaluation import evaluate_agent
from agents.models import OracleModel, OracleStateCost
from agents.mpc import MPCAgent
from agents.planners import PlannerConfig
from mbvc.errors import ConfigError, ShapeError

from .conftest import RED, LineEnv, LineModel


def _agent(cost=None, name="cem", iterations=3, **kwargs):
    env = LineEnv()
    cfg = PlannerConfig(name=name, num_iterations=iterations, population_size=48, seed=0)
    agent = MPCAgent(LineModel(), cost or GoalImageCost(), cfg, horizon=6, action_space=env.action_space, **kwargs)
    return env, agent


@pytest.mark.parametrize("name", ["cem", "icem", "mppi"])
def test_mpc_solves_point_mass_with_known_model(name):
    # Success is judged at the last step, so the agent must also hold the goal within 0.06, a
    # quarter of one action's reach: white-noise CEM restarts from the full std every plan and
    # needs a fourth iteration to shrink it that far (with three, ~3% of its steps near the
    # goal jitter just past 0.06; iCEM's smooth noise and MPPI's weighting do not).
    env, agent = _agent(name=name, iterations=4)
    result = evaluate_agent(agent, env, seeds=[0, 1, 2], max_steps=15)
    assert result.success_rate == 1.0, result.to_dict()
    assert result.final_distance < 0.04
    assert result.episodes[0].plan_ms is not None


def test_mpc_solves_point_mass_with_designated_pixel_cost():
    env, agent = _agent(DesignatedPixelCost(RED, tolerance=0.9), replan_every=2)
    assert evaluate_agent(agent, env, seeds=[3]).success_rate == 1.0


def test_mpc_with_oracle_and_true_state_cost():
    env = LineEnv()
    oracle = OracleModel(env, make_env=LineEnv, render=False)
    cfg = PlannerConfig(num_iterations=2, population_size=16, seed=0)
    agent = MPCAgent(oracle, OracleStateCost(), cfg, horizon=4, action_space=env.action_space)
    assert evaluate_agent(agent, env, seeds=[0]).success_rate == 1.0


def test_random_agent_does_not_solve_it():
    env = LineEnv()
    assert evaluate_agent(RandomAgent(env.action_space, seed=0), env, seeds=[0, 1, 2]).success_rate < 1.0


def test_replans_every_k_steps_with_shifted_warm_start():
    env, agent = _agent(replan_every=3)
    obs, _ = env.reset(seed=0)
    agent.reset(obs, goal=env.goal_image())
    executed = []
    original = agent.trajectory.optimize
    agent.trajectory.optimize = lambda obj, executed_steps=0, **kw: executed.append(  # type: ignore[method-assign]
        kw.get("executed", executed_steps)
    ) or original(obj, **kw)
    for _ in range(7):
        action = agent.act(obs)
        assert action.shape == (1,) and action.dtype == np.float32 and -1 <= action[0] <= 1
        obs, *_ = env.step(action)
    assert executed == [0, 3, 3]
    assert len(agent.step_times) == 7 and sum(t > 0 for t in agent.step_times) == 3
    stats = agent.stats()
    assert stats["plans"] == 3 and stats["plan_ms"] > 0


def test_context_history_is_padded_then_slides():
    env = LineEnv()
    model = LineModel()
    agent = MPCAgent(model, GoalImageCost(), "cem", horizon=3, action_space=env.action_space, context_length=3)
    obs, _ = env.reset(seed=0)
    agent.reset(obs, goal=env.goal_image())
    taken = []
    for _ in range(4):
        taken.append(agent.act(obs))
        obs, *_ = env.step(taken[-1])
    first_ctx, first_acts = model.contexts[0]
    assert first_ctx.shape == (1, 3, 3, 8, 32) and torch.equal(first_ctx[0, 0], first_ctx[0, 2])
    assert torch.equal(first_acts, torch.zeros(1, 2, 1))
    last_ctx, last_acts = model.contexts[-1]
    assert torch.allclose(last_acts[0], torch.tensor(np.stack(taken[1:3])))


def test_goal_conversion_and_record_predictions():
    env, agent = _agent(record_predictions=True)
    obs, _ = env.reset(seed=0)
    agent.reset(obs, goal=env.goal_image())  # uint8 H x W x 3 -> C x h x w float
    assert agent.goal.shape == (3, 8, 32) and agent.goal.max() <= 1.0
    agent.act(obs)
    assert agent.last_prediction.shape == (6, 3, 8, 32)
    assert agent.last_plan.shape == (6, 1)


def test_image_size_resizes_observations_and_goals():
    env = LineEnv(height=16, width=64)
    agent = MPCAgent(LineModel(), GoalImageCost(), "cem", horizon=2, action_space=env.action_space, image_size=(8, 32))
    obs, _ = env.reset(seed=0)
    agent.reset(obs, goal=env.goal_image())
    assert agent.goal.shape == (3, 8, 32)
    agent.act(obs)


def test_invalid_arguments():
    env = LineEnv()
    with pytest.raises(ConfigError, match="replan_every"):
        MPCAgent(LineModel(), GoalImageCost(), "cem", horizon=3, action_space=env.action_space, replan_every=4)
    with pytest.raises(ConfigError, match="action_space"):
        MPCAgent(LineModel(), GoalImageCost(), "cem", horizon=3)
    with pytest.raises(ShapeError, match="image"):
        MPCAgent(LineModel(), GoalImageCost(), "cem", horizon=3, action_space=env.action_space).act({"state": 0})


def test_seeded_episodes_are_reproducible():
    runs = []
    for _ in range(2):
        env, agent = _agent()
        runs.append(evaluate_agent(agent, env, seeds=[5], max_steps=4).episodes[0].final_distance)
    assert runs[0] == runs[1]


class _NaNModel(LineModel):
    """A damaged world model: its predictions are NaN."""

    def bind(self, context, context_actions=None):
        inner = super().bind(context, context_actions)
        return lambda actions: inner(actions) * float("nan")


def test_a_world_model_predicting_nan_stops_the_agent():
    from mbvc.errors import DataError

    env = LineEnv()
    agent = MPCAgent(_NaNModel(), GoalImageCost(), PlannerConfig(num_iterations=2, population_size=8, seed=0),
                     horizon=3, action_space=env.action_space)
    obs, _ = env.reset(seed=0)
    agent.reset(obs, goal=env.goal_image())
    with pytest.raises(DataError, match="predicted frames.*NaN"):
        agent.act(obs)


@pytest.mark.parametrize("horizon", [2.5, 0, True])
def test_horizon_must_be_a_positive_int(horizon):
    with pytest.raises(ConfigError, match="horizon"):
        MPCAgent(LineModel(), GoalImageCost(), PlannerConfig(), horizon=horizon, action_space=LineEnv().action_space)


@pytest.mark.parametrize("cost", [GoalImageCost(), DesignatedPixelCost(RED)])
def test_a_missing_goal_is_a_config_error(cost):
    env, agent = _agent(cost)
    obs, _ = env.reset(seed=0)
    agent.reset(goal=None)
    with pytest.raises(ConfigError, match="goal=None"):
        agent.act(obs)
