"""Costs of predicted frames, behind one protocol (:class:`Cost`), and their registry.

* :mod:`agents.costs.base`: the :class:`Cost` protocol (``cost(frames N x H x C x h x w, goal) -> N``
  and the agent's optional hooks) and the tensor helpers every cost shares;
* :mod:`agents.costs.image`: goal-image MSE (with a mask), LPIPS, a coloured object's pixel;
* :mod:`agents.costs.designated`: a designated object (and agent) tracked by its looks;
* :mod:`agents.costs.push`: the push task's cost and its calibration from rollouts;
* :mod:`agents.costs.registry`: costs by name, one config class each (``--cost NAME``).
"""
from __future__ import annotations

from .base import (
    Cost,
    FramesAndStates,
    FunctionCost,
    as_cost,
    check_frames,
    env_goal_image,
    goal_as_frames,
    push_shaping,
    require_goal,
    step_weights,
    weighted_sum,
)
from .designated import DesignatedGoal, DesignatedObjectCost, DesignatedPushCost
from .image import (
    DesignatedPixelCost,
    GoalImageCost,
    LPIPSCost,
    MaskedGoalImageCost,
    SumCost,
    blob_position,
    colour_mass,
    goal_mse,
    load_mask,
)
from .registry import COSTS, CostConfig, build_cost, cost_config, register_cost

__all__ = ["COSTS", "Cost", "CostConfig", "DesignatedGoal", "DesignatedObjectCost", "DesignatedPixelCost",
           "DesignatedPushCost", "FramesAndStates", "FunctionCost", "GoalImageCost", "LPIPSCost", "MaskedGoalImageCost", "SumCost",
           "as_cost", "blob_position", "build_cost", "check_frames", "colour_mass", "cost_config", "env_goal_image",
           "goal_as_frames", "goal_mse", "load_mask", "push_shaping", "register_cost", "require_goal", "step_weights",
           "weighted_sum"]
