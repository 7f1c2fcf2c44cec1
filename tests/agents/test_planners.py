"""Planners: CEM / iCEM / MPPI on known quadratics, bounds, batching, seeding, warm start."""
from __future__ import annotations

import pytest
import torch

from agents.planners import (
    CEMOptimizer,
    MPPIOptimizer,
    PlannerConfig,
    TrajectoryOptimizer,
    build_planner,
    colored_noise,
)
from mbvc.errors import ConfigError, ShapeError

NAMES = ["cem", "icem", "mppi"]
H, A = 5, 2


def quadratic(target: torch.Tensor):
    calls = []

    def objective(actions: torch.Tensor) -> torch.Tensor:
        calls.append(actions.clone())
        return ((actions - target) ** 2).sum(dim=(1, 2))

    return objective, calls


@pytest.mark.parametrize("name", NAMES)
def test_finds_quadratic_minimum_in_few_iterations(name):
    target = torch.linspace(-0.6, 0.6, H * A).reshape(H, A)
    planner = build_planner(name, -1.0, 1.0, num_iterations=6, population_size=300, seed=0)
    objective, calls = quadratic(target)
    plan = planner.optimize(objective, torch.zeros(H, A))
    assert plan.shape == (H, A)
    assert (plan - target).abs().max() < 0.15
    # The search improves: the last iteration's best is far below the first's.
    costs = planner.info.iteration_costs
    assert costs[-1] < 0.2 * costs[0]


@pytest.mark.parametrize("name", NAMES)
def test_one_objective_call_per_iteration_with_all_candidates(name):
    planner = build_planner(name, -1.0, 1.0, num_iterations=4, population_size=32, seed=0)
    objective, calls = quadratic(torch.zeros(H, A))
    planner.optimize(objective, torch.zeros(H, A))
    assert len(calls) == 4
    assert all(c.shape == (32, H, A) for c in calls)
    assert planner.info.num_evaluations == 4 * 32


@pytest.mark.parametrize("name", NAMES)
def test_bounds_respected_by_candidates_and_solution(name):
    lo, hi = torch.tensor([-0.5, 0.0]), torch.tensor([0.2, 1.0])
    planner = build_planner(name, lo, hi, num_iterations=8, population_size=64, init_std=2.0, seed=0)
    objective, calls = quadratic(torch.full((H, A), 3.0))  # minimum outside the box
    plan = planner.optimize(objective, torch.zeros(H, A))
    for cand in calls + [plan[None]]:
        assert (cand >= lo - 1e-6).all() and (cand <= hi + 1e-6).all()
    assert torch.allclose(plan, hi.expand(H, A), atol=0.2)  # pushed against the upper bound


def test_cem_returns_best_sequence_ever_seen():
    planner = CEMOptimizer(-1.0, 1.0, num_iterations=3, population_size=16, seed=1)
    objective, calls = quadratic(torch.full((H, A), 0.4))
    plan = planner.optimize(objective, torch.zeros(H, A))
    every = torch.cat(calls)
    best = every[((every - 0.4) ** 2).sum((1, 2)).argmin()]
    assert torch.equal(plan, best)
    assert planner.info.best_cost == pytest.approx(float(((best - 0.4) ** 2).sum()))


def test_icem_carries_elites_and_evaluates_mean():
    planner = build_planner("icem", -1.0, 1.0, num_iterations=3, population_size=20, elite_ratio=0.5, seed=0)
    objective, calls = quadratic(torch.zeros(H, A))
    planner.optimize(objective, torch.zeros(H, A))
    # 30% of the 10 elites of iteration 1 reappear at the front of iteration 2.
    costs1 = ((calls[0]) ** 2).sum((1, 2))
    elites = calls[0][costs1.argsort()[:3]]
    assert torch.equal(calls[1][:3], elites)


def test_same_seed_same_plan_and_different_seed_differs():
    objective, _ = quadratic(torch.full((H, A), 0.3))
    plans = [CEMOptimizer(-1.0, 1.0, population_size=16, seed=s).optimize(objective, torch.zeros(H, A)) for s in (3, 3, 4)]
    assert torch.equal(plans[0], plans[1])
    assert not torch.equal(plans[0], plans[2])


def test_nan_costs_never_chosen():
    def objective(actions):
        cost = (actions**2).sum((1, 2))
        return torch.where(actions[:, 0, 0] > 0, torch.full_like(cost, float("nan")), cost)

    plan = CEMOptimizer(-1.0, 1.0, population_size=64, seed=0).optimize(objective, torch.zeros(H, A))
    assert plan[0, 0] <= 0


def test_objective_with_wrong_shape_raises():
    with pytest.raises(ShapeError, match=r"\(N,\)"):
        CEMOptimizer(-1.0, 1.0, population_size=8).optimize(lambda a: a.sum(-1), torch.zeros(H, A))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_iterations": 0},
        {"population_size": 1},
        {"elite_ratio": 0.0},
        {"alpha": 1.0},
        {"min_std": -1.0},
        {"noise_beta": -1.0},
        {"keep_elites": 2.0},
    ],
)
def test_invalid_cem_arguments(kwargs):
    with pytest.raises(ConfigError):
        CEMOptimizer(-1.0, 1.0, **kwargs)


def test_invalid_bounds_and_names():
    with pytest.raises(ConfigError):
        CEMOptimizer(1.0, -1.0)
    with pytest.raises(ShapeError):
        CEMOptimizer(torch.zeros(2), torch.ones(3))
    with pytest.raises(ConfigError):
        MPPIOptimizer(-1.0, 1.0, temperature=0.0)
    with pytest.raises(ConfigError, match="Did you mean 'icem'"):
        PlannerConfig(name="icme")
    with pytest.raises(ConfigError, match="population_size"):
        build_planner("cem", -1.0, 1.0, populaton_size=3)


def test_colored_noise_unit_variance_and_correlated():
    g = torch.Generator().manual_seed(0)
    white = colored_noise(4000, 12, 2, 0.0, generator=g)
    red = colored_noise(4000, 12, 2, 2.5, generator=g)
    for noise in (white, red):
        assert noise.shape == (4000, 12, 2)
        assert noise.std().item() == pytest.approx(1.0, abs=0.05)

    def lag1(n):
        return (n[:, 1:] * n[:, :-1]).mean().item()

    assert abs(lag1(white)) < 0.05
    assert lag1(red) > 0.5


def test_warm_start_shifts_previous_plan_and_pads_with_initial_value():
    planner = CEMOptimizer(-1.0, 1.0, num_iterations=2, population_size=16, seed=0)
    opt = TrajectoryOptimizer(planner, horizon=4, initial_value=0.25)
    seen = []
    original = planner.optimize

    def spy(objective, x0):
        seen.append(x0.clone())
        return original(objective, x0)

    planner.optimize = spy  # type: ignore[method-assign]
    objective, _ = quadratic(torch.zeros(4, 1))
    assert torch.equal(opt.previous_solution, torch.full((4, 1), 0.25))
    first = opt.optimize(objective)
    opt.optimize(objective, executed=2)
    assert torch.equal(seen[0], torch.full((4, 1), 0.25))
    assert torch.equal(seen[1], torch.cat([first[2:], torch.full((2, 1), 0.25)]))
    opt.reset()
    assert torch.equal(opt.previous_solution, torch.full((4, 1), 0.25))


def test_no_warm_start_uses_initial_value():
    planner = CEMOptimizer(-1.0, 1.0, num_iterations=1, population_size=8, seed=0)
    opt = TrajectoryOptimizer(planner, horizon=3, keep_last_solution=False)
    objective, _ = quadratic(torch.ones(3, 1))
    opt.optimize(objective)
    assert torch.equal(opt.shifted(0), opt.previous_solution)
    calls = []
    planner.optimize = lambda obj, x0, candidates=None: calls.append(x0) or x0  # type: ignore[method-assign]
    opt.optimize(objective, executed=1)
    assert torch.equal(calls[0], torch.zeros(3, 1))  # midpoint of the bounds


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_runs_on_device_of_initial_mean(name):
    planner = build_planner(name, -1.0, 1.0, population_size=16, seed=0)
    devices = []

    def objective(actions):
        devices.append(actions.device)
        return (actions**2).sum((1, 2))

    plan = planner.optimize(objective, torch.zeros(H, A, device="cuda"))
    assert plan.is_cuda and all(d.type == "cuda" for d in devices)
