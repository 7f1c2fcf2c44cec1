"""Sampling-based trajectory optimisers over ``objective(actions N x H x A) -> costs N``.

They know nothing about world models or costs; :class:`agents.mpc.MPCAgent` composes those
into the objective.
"""
from __future__ import annotations

from .base import Objective, OptimizerInfo, SamplingOptimizer
from .cem import CEMOptimizer, icem
from .config import PLANNERS, PlannerConfig, build_planner
from .mppi import MPPIOptimizer
from .noise import colored_noise
from .trajectory import TrajectoryOptimizer

__all__ = [
    "PLANNERS",
    "CEMOptimizer",
    "MPPIOptimizer",
    "Objective",
    "OptimizerInfo",
    "PlannerConfig",
    "SamplingOptimizer",
    "TrajectoryOptimizer",
    "build_planner",
    "colored_noise",
    "icem",
]
