"""Visual model-predictive control and baselines for mbvc world models.

* :mod:`agents.planners`: CEM / iCEM / MPPI over ``objective(actions N x H x A) -> costs N``.
* :mod:`agents.costs`: costs of predicted frames ``N x H x C x h x w`` behind one protocol
  (:class:`~agents.costs.Cost`): goal images, designated objects, the push task; by name in
  :mod:`agents.costs.registry`.
* :mod:`agents.models`: PredRNN (encode once, roll N candidates), oracle simulator,
  copy-last-frame, behind ``PlanningModel.rollout(context, actions)``.
* :mod:`agents.mpc`: :class:`MPCAgent` joining the three.
* :mod:`agents.baselines` and :mod:`agents.evaluation`: random, scripted, SB3; seeded scoring.
* :mod:`agents.plan` (``mbvc plan``: the driver, with :mod:`agents.plan_records` and
  :mod:`agents.plan_workers`), :mod:`agents.gif`, :mod:`agents.demo` (the end-to-end demo's
  pipeline); imported on use.

stable-baselines3, ``envs`` and LPIPS weights are loaded only when used.
"""
from __future__ import annotations

from agents.baselines import PolicyAgent, RandomAgent, SB3Agent, scripted_agent, train_sb3
from agents.core import Agent, goal_from_env, image_to_tensor
from agents.costs import Cost, DesignatedPixelCost, GoalImageCost, LPIPSCost, SumCost, goal_mse, step_weights
from agents.evaluation import EpisodeResult, EvalResult, evaluate_agent
from agents.models import CopyLastFrameModel, OracleModel, OracleStateCost, PlanningModel, PredRNNModel
from agents.mpc import MPCAgent
from agents.planners import (
    CEMOptimizer,
    MPPIOptimizer,
    PlannerConfig,
    TrajectoryOptimizer,
    build_planner,
    icem,
)

__all__ = [
    "Agent",
    "CEMOptimizer",
    "CopyLastFrameModel",
    "Cost",
    "DesignatedPixelCost",
    "EpisodeResult",
    "EvalResult",
    "GoalImageCost",
    "LPIPSCost",
    "MPCAgent",
    "MPPIOptimizer",
    "OracleModel",
    "OracleStateCost",
    "PlannerConfig",
    "PlanningModel",
    "PolicyAgent",
    "PredRNNModel",
    "RandomAgent",
    "SB3Agent",
    "SumCost",
    "TrajectoryOptimizer",
    "build_planner",
    "evaluate_agent",
    "goal_from_env",
    "goal_mse",
    "icem",
    "image_to_tensor",
    "scripted_agent",
    "step_weights",
    "train_sb3",
]
