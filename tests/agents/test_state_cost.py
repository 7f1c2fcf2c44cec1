"""Planning on a world model's predicted simulator state: StateCost, PredRNNModel(predict="states")."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agents.costs import StateCost, StateGoal, build_cost, cost_config
from agents.models import PredRNNModel
from agents.plan import check_model_states
from mbvc.errors import ConfigError, ShapeError
from mbvc.models import build_model
from tests.models.conftest import tiny_config


def test_state_cost_is_the_objects_goal_distance_plus_pusher_shaping():
    cost = StateCost(object_entries=(2, 3), pusher_entries=(0, 1), pusher_weight=0.5)
    goal = StateGoal(torch.tensor([0.1, 0.0]))
    states = torch.zeros(2, 3, 4)
    states[0, :, 2:] = torch.tensor([0.1, 0.0])       # object on the goal, pusher at the origin: 0 + 0.5 * 0.1
    states[1, :, 2:] = torch.tensor([0.1, 0.3])       # object 0.3 from the goal: 0.3 + 0.5 * sqrt(0.1)
    states[1, :, :2] = torch.tensor([0.1, 0.3])       # ... with the pusher on it: 0.3
    assert torch.allclose(cost(states, goal), torch.tensor([0.05, 0.3]))
    with pytest.raises(ShapeError, match="N x H x S with S >= 4"):
        cost(torch.zeros(2, 3, 1, 8, 8), goal)
    with pytest.raises(ConfigError, match="needs a StateGoal"):
        cost(states, torch.zeros(2))


def test_state_cost_config_builds_and_refuses_bad_entries_in_one_line():
    cost = build_cost(cost_config({"name": "state", "object_entries": [2, 3], "pusher_weight": 1.0}))
    assert isinstance(cost, StateCost) and cost.reads == "states" and cost.pusher_weight == 1.0
    for bad in ([2], [2, -1], "23", [2, True]):
        with pytest.raises(ConfigError, match="cost.object_entries") as info:
            cost_config({"name": "state", "object_entries": bad})
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="unknown key.*keep_out_weight|keep_out_weight"):
        cost_config({"name": "state", "keep_out_weight": 1.0})


def _model(**kw):
    return build_model(tiny_config("action_cond_predrnn_v2", num_action_ch=2, input_length=2, total_length=6,
                                   patch_size=1, **kw))


def test_planning_model_returns_the_readout_for_a_state_cost():
    torch.manual_seed(0)
    model = _model(state_targets=(0, 1, 4, 5))
    planner = PredRNNModel(model, predict="states", chunk_size=3)
    rollout = planner.bind(torch.rand(1, 2, 1, 16, 16), torch.zeros(1, 1, 2))
    actions = torch.rand(5, 4, 2) * 2 - 1
    states = rollout(actions)
    assert states.shape == (5, 4, 4)
    with torch.no_grad():
        _, extras = model.rollout(model.encode(torch.rand(1, 2, 1, 16, 16) * 0, torch.zeros(1, 1, 2)), 4,
                                  actions, states=True)
    assert extras["states"].shape == (5, 4, 4)
    frames = PredRNNModel(model).bind(torch.rand(1, 2, 1, 16, 16), torch.zeros(1, 1, 2))(actions)
    assert frames.shape == (5, 4, 1, 16, 16)
    with pytest.raises(ConfigError, match="needs a world model trained with model.state_targets"):
        PredRNNModel(_model(), predict="states")
    with pytest.raises(ConfigError, match="predict must be 'frames' or 'states'"):
        PredRNNModel(model, predict="pixels")


def test_plan_refuses_a_state_cost_the_model_cannot_feed():
    with pytest.raises(ConfigError, match="train the model with model.state_targets"):
        check_model_states(_model().config, cost_config({"name": "state"}))
    with pytest.raises(ConfigError, match=r"cost.object_entries=\[2, 3\] indexes the model's 2 predicted entries"):
        check_model_states(_model(state_targets=(0, 1)).config, cost_config({"name": "state"}))
    check_model_states(_model(state_targets=(0, 1, 4, 5)).config, cost_config({"name": "state"}))


def test_goal_for_env_reads_the_push_envs_goal():
    pytest.importorskip("mujoco")
    from agents.plan import make_env

    env = make_env("mbvc/Push-v0", 16)
    try:
        env.reset(seed=3)
        goal = StateCost().goal_for_env(env, (16, 16))
        assert torch.allclose(goal.position, torch.as_tensor(env.unwrapped.goal[:2], dtype=torch.float32))
        assert goal.image is not None and goal.image.shape == (16, 16, 3)
        assert StateCost().picture(goal) is goal.image
    finally:
        env.close()


def test_tiny_demo_trains_a_readout_and_plans_on_the_predicted_state(tmp_path):
    pytest.importorskip("mujoco")
    from agents.demo import demo_settings, run_demo

    settings = demo_settings(tiny=True, cost="state",
                             overrides=["demo.progress=false", "model.state_targets=[0,1,4,5]"])
    report = run_demo(settings, tmp_path / "out")
    mpc = report["results"]["mpc"]
    assert mpc["planner"]["cost"] == "state" and mpc["episodes"] == settings.eval_episodes
    assert all(np.isfinite(e["final_distance"]) for e in mpc["per_episode"])
    train = json.loads((tmp_path / "out" / "train.json").read_text())
    assert "state" in json.dumps(train)  # the readout's loss was trained and logged
