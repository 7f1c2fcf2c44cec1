"""Costs by name (agents.costs.registry): one config class per cost, a user's module:name, clear errors."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from agents.costs import COSTS, Cost, CostConfig, GoalImageCost, build_cost, cost_config, register_cost
from agents.costs.registry import PushCostConfig, with_cost_name
from mbvc.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ZeroConfig(CostConfig):
    name: str = "zero"
    scale: float = 0.0

    def build(self, data_root=None):
        return lambda frames, goal: self.scale * frames.new_ones(len(frames))


def test_registered_and_user_costs(tmp_path, monkeypatch):
    assert isinstance(build_cost("goal_image"), GoalImageCost)
    monkeypatch.setitem(COSTS, "zero", ZeroConfig)
    frames = torch.rand(3, 2, 3, 4, 4)
    cfg = cost_config({"name": "zero", "scale": 2.0})
    assert isinstance(cfg, ZeroConfig)
    assert build_cost(cfg)(frames, None).tolist() == [2.0, 2.0, 2.0]
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
    assert isinstance(plain, Cost)  # a plain function gets the protocol's default hooks
    scaled = build_cost({"name": "user_costs:Scaled", "kwargs": {"scale": 2.0}})
    assert torch.allclose(scaled(frames, None), 2 * plain(frames, None))


def test_each_cost_takes_its_own_fields_only():
    assert cost_config({"name": "push", "pusher_weight": 0.3}).pusher_weight == 0.3
    with pytest.raises(ConfigError, match="unknown key 'cost.pusher_weight'"):
        cost_config({"name": "goal_image", "pusher_weight": 0.3})  # a push field on another cost
    with pytest.raises(ConfigError, match="unknown key 'cost.mask'"):
        cost_config({"name": "push", "mask": "m.npy"})
    # --cost NAME switches the section: the former cost's fields are dropped, final_weight kept
    assert with_cost_name({"name": "push", "pusher_weight": 0.3, "final_weight": 2.0}, "lpips") == {
        "name": "lpips", "final_weight": 2.0}
    assert cost_config(with_cost_name({"name": "push", "pusher_weight": 0.3}, "goal_image")).name == "goal_image"


def test_bad_costs_are_clear_errors():
    with pytest.raises(ConfigError, match="Did you mean 'push'"):
        cost_config("pussh")
    with pytest.raises(ConfigError, match="cannot import"):
        build_cost("no_such_module_xyz:cost")
    with pytest.raises(ConfigError, match="unknown key 'cost.kwargs'"):
        cost_config({"name": "push", "kwargs": {"a": 1}})
    with pytest.raises(ConfigError, match="give their folder"):
        build_cost("push")  # the push cost learns the empty scene from training rollouts
    with pytest.raises(ConfigError, match="cost.pusher_weight must be >= 0"):
        PushCostConfig(pusher_weight=-1.0)
    with pytest.raises(ConfigError, match="cost.min_mass must be >= 0"):
        cost_config({"name": "push", "min_mass": -0.1})
    with pytest.raises(ConfigError, match="cost.colour"):
        cost_config("designated_pixel")  # the object's colour is the user's to give
    with pytest.raises(ConfigError, match="module:name"):
        register_cost("a:b", ZeroConfig)
    with pytest.raises(ConfigError, match="CostConfig dataclass"):
        register_cost("f", lambda cfg, root: None)  # type: ignore[arg-type]
