"""CEM, iCEM and MPPI at the same number of objective evaluations on a known quadratic."""
from __future__ import annotations

import pytest
import torch

from agents.planners import build_planner

H, A = 10, 2
#: Objective evaluations per plan for every planner: 150 candidates x 8 iterations.
POPULATION, ITERATIONS = 150, 8


@pytest.mark.parametrize("name", ["cem", "icem", "mppi"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planners_reach_the_optimum_at_equal_evaluations(name, seed):
    target = torch.linspace(-0.6, 0.6, H * A).reshape(H, A)  # optimum: cost 0 at ``target``
    evaluations = []

    def objective(actions: torch.Tensor) -> torch.Tensor:
        evaluations.append(actions.shape[0])
        return ((actions - target) ** 2).sum(dim=(1, 2))

    start_cost = float((target**2).sum())  # the cost of the initial mean (zeros), 2.65
    planner = build_planner(name, -1.0, 1.0, num_iterations=ITERATIONS, population_size=POPULATION, seed=seed)
    plan = planner.optimize(objective, torch.zeros(H, A))
    assert sum(evaluations) == POPULATION * ITERATIONS == planner.info.num_evaluations == 1200
    assert float(((plan - target) ** 2).sum()) < 0.1 * start_cost
    assert (plan - target).abs().max() < 0.3
