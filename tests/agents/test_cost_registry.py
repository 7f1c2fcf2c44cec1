"""Costs by name (agents.cost_registry): registered names, a user's module:name, clear errors."""
from __future__ import annotations

import pytest
import torch

from agents.cost_registry import COSTS, CostConfig, build_cost, register_cost
from agents.costs import GoalImageCost
from mbvc.errors import ConfigError


def test_registered_and_user_costs(tmp_path, monkeypatch):
    assert isinstance(build_cost("goal_image"), GoalImageCost)
    monkeypatch.setitem(COSTS, "zero", lambda cfg, data_root: (lambda frames, goal: frames.new_zeros(len(frames))))
    frames = torch.rand(3, 2, 3, 4, 4)
    assert build_cost(CostConfig(name="zero"))(frames, None).tolist() == [0.0, 0.0, 0.0]
    (tmp_path / "user_costs.py").write_text(
        "import torch\n"
        "def brightness(frames, goal):\n"
        "    return frames.mean(dim=(1, 2, 3, 4))\n"
        "class Scaled:\n"
        "    def __init__(self, scale=1.0):\n"
        "        self.scale = scale\n"
        "    def __call__(self, frames, goal):\n"
        "        return self.scale * frames.mean(dim=(1, 2, 3, 4))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plain = build_cost("user_costs:brightness")
    scaled = build_cost(CostConfig(name="user_costs:Scaled", kwargs={"scale": 2.0}))
    assert torch.allclose(scaled(frames, None), 2 * plain(frames, None))


def test_bad_costs_are_clear_errors():
    with pytest.raises(ConfigError, match="Did you mean 'push'"):
        CostConfig(name="pussh")
    with pytest.raises(ConfigError, match="cannot import"):
        build_cost("no_such_module_xyz:cost")
    with pytest.raises(ConfigError, match="kwargs are only for"):
        CostConfig(name="push", kwargs={"a": 1})
    with pytest.raises(ConfigError, match="needs|give their folder"):
        build_cost("push")  # the push cost learns the empty scene from training rollouts
    with pytest.raises(ConfigError, match=">= 0"):
        CostConfig(pusher_weight=-1.0)
    with pytest.raises(ConfigError, match="cost.min_mass must be >= 0"):
        CostConfig(name="push", min_mass=-0.1)
    with pytest.raises(ConfigError, match="module:name"):
        register_cost("a:b", lambda cfg, root: None)
