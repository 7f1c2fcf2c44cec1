"""An action-conditioned ConvLSTM plans through the same adapter and MPC agent as PredRNN."""
from __future__ import annotations

import types

import numpy as np
import torch

from agents.costs import GoalImageCost
from agents.models import PredRNNModel
from agents.mpc import MPCAgent
from agents.planners import PlannerConfig
from mbvc.models import ConvLSTM, ModelConfig, build_model

A = 2


def test_mpc_agent_plans_with_a_tiny_convlstm():
    torch.manual_seed(0)
    cfg = ModelConfig(name="action_cond_convlstm", num_hidden=(8, 8), filter_size=3, patch_size=1, img_channel=3,
                      img_width=16, input_length=3, total_length=7, num_action_ch=A)
    net = build_model(cfg)
    assert isinstance(net, ConvLSTM)
    model = PredRNNModel(net)
    context = torch.rand(1, 3, 3, 16, 16)
    fn = model.bind(context, torch.zeros(1, 2, A))
    candidates = torch.rand(6, 4, A) * 2 - 1
    out = fn(candidates)
    assert out.shape == (6, 4, 3, 16, 16)
    with torch.no_grad():  # the adapter's encode-once rollout equals a plain predict per candidate
        expected = net.predict(context.expand(6, -1, -1, -1, -1),
                               4, torch.cat([torch.zeros(6, 2, A), candidates], dim=1)).clamp(0, 1)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    space = types.SimpleNamespace(low=-np.ones(A, np.float32), high=np.ones(A, np.float32), shape=(A,))
    agent = MPCAgent(model, GoalImageCost(), PlannerConfig("cem", num_iterations=2, population_size=8, seed=0),
                     horizon=3, action_space=space)
    rng = np.random.default_rng(0)
    agent.reset(goal=rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), seed=0)
    action = agent.act({"image": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)})
    assert action.shape == (A,) and np.all(np.abs(action) <= 1)
