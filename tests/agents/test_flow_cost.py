"""The designated-pixel cost through a world model's predicted flow (agents.costs.flow), and its plumbing."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.core import Prediction
from agents.costs import build_cost, cost_config
from agents.costs.designated import DesignatedGoal
from agents.costs.flow import DesignatedFlowCost, centroid, point_distribution, propagate
from mbvc.errors import ConfigError

SIZE = 16


def _prediction(shifts: list[tuple[float, float]], steps: int = 3) -> Prediction:
    """Candidates whose content moves by ``(drow, dcol)`` per step everywhere (flow = minus the motion)."""
    n = len(shifts)
    flow = torch.zeros(n, steps, 2, SIZE, SIZE)
    for i, (dr, dc) in enumerate(shifts):
        flow[i, :, 0], flow[i, :, 1] = -dc, -dr  # channel 0 = dx (columns), 1 = dy (rows)
    masks = torch.zeros(n, steps, 3, SIZE, SIZE)
    masks[:, :, 0] = 1.0  # every pixel from the warped previous frame
    return Prediction(torch.zeros(n, steps, 3, SIZE, SIZE), flow, masks)


def test_a_point_distribution_sits_at_its_sub_pixel_and_moves_with_the_flow():
    p = point_distribution((3.25, 5.5), SIZE, SIZE)
    assert float(p.sum()) == pytest.approx(1.0) and centroid(p)[0].tolist() == pytest.approx([3.25, 5.5])
    moved = propagate((4.0, 4.0), _prediction([(0.0, 1.0), (0.5, -0.25)]).flow, _prediction([(0, 0)] * 2).masks)
    assert torch.allclose(moved[0], torch.tensor([[4.0, 5.0], [4.0, 6.0], [4.0, 7.0]]), atol=1e-5)
    assert moved[1, -1].tolist() == pytest.approx([5.5, 3.25], abs=1e-5)


def test_the_cost_prefers_the_candidate_whose_predicted_flow_brings_the_object_to_its_target():
    cost = DesignatedFlowCost(designation=DesignatedGoal((4, 4), (4, 10), agent=(4, 1)), approach_weight=0.0,
                              keep_out_weight=0.0)
    goal = cost.goal_for_env(object(), (SIZE, SIZE))
    costs = cost(_prediction([(0.0, 2.0), (0.0, 0.0), (0.0, -1.0)]), goal)
    assert costs[0] < costs[1] < costs[2]
    assert float(costs[1]) == pytest.approx(6.0)  # standing still: 6 px away every step
    with pytest.raises(ConfigError, match="model.output=flow"):
        cost(torch.zeros(1, 3, 3, SIZE, SIZE), goal)  # plain frames


def test_mpc_plans_with_the_flow_of_a_tiny_flow_model_and_refuses_a_pixel_model():
    from gymnasium import spaces

    from agents.models import PredRNNModel
    from agents.mpc import MPCAgent
    from mbvc.config import model_config_from_preset
    from mbvc.models import build_model

    torch.manual_seed(0)
    over = ["model.num_hidden=[4]", f"model.img_width={SIZE}", "model.total_length=4"]
    flow_net = build_model(model_config_from_preset("push-demo", [*over, "model.output=flow"]))
    pixel_net = build_model(model_config_from_preset("push-demo", over))
    cost = build_cost({"name": "designated_flow", "source": [5, 5], "target": [9, 9], "agent": [5, 2]})
    assert isinstance(cost, DesignatedFlowCost) and cost_config("designated_flow").name == "designated_flow"
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[4:7, 4:7] = (220, 40, 30)
    goal = cost.goal_for_env(object(), (SIZE, SIZE))
    agent = MPCAgent(PredRNNModel(flow_net), cost, "cem", horizon=3, action_space=spaces.Box(-1, 1, (2,)),
                     record_predictions=True)
    agent.reset({"image": image}, goal=goal, seed=0)
    assert agent.act({"image": image}).shape == (2,) and agent.last_prediction.shape == (3, 3, SIZE, SIZE)
    pixel = MPCAgent(PredRNNModel(pixel_net), cost, "cem", horizon=3, action_space=spaces.Box(-1, 1, (2,)))
    pixel.reset({"image": image}, goal=goal)
    with pytest.raises(ConfigError, match="predicts no transformations"):
        pixel.act({"image": image})
