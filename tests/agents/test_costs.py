"""Costs: batched evaluation equals per-candidate evaluation; weights; goals; errors."""
from __future__ import annotations

import pytest
import torch

from agents.costs import (
    DesignatedPixelCost,
    GoalImageCost,
    LPIPSCost,
    SumCost,
    blob_position,
    goal_mse,
    step_weights,
)
from mbvc.errors import DependencyNotInstalled, ShapeError

from .conftest import RED, render_line

N, H, C, S = 6, 4, 3, 8


@pytest.fixture
def frames() -> torch.Tensor:
    return torch.rand(N, H, C, S, S, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def goal() -> torch.Tensor:
    return torch.rand(C, S, S, generator=torch.Generator().manual_seed(1))


def _blob(row: int, col: int, size: int = 16) -> torch.Tensor:
    img = torch.zeros(3, size, size)
    img[:, row - 1 : row + 2, col - 1 : col + 2] = torch.tensor(RED)[:, None, None]
    return img


def test_step_weights():
    assert torch.allclose(step_weights(4), torch.full((4,), 0.25))
    w = step_weights(4, final_weight=5.0)
    assert w.sum().item() == pytest.approx(1.0) and w[-1] == 5 * w[0]
    assert torch.equal(step_weights(3, float("inf")), torch.tensor([0.0, 0.0, 1.0]))


def _fake_lpips(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).abs().mean(dim=(1, 2, 3)) ** 0.5


COSTS = {
    "mse": GoalImageCost(final_weight=3.0),
    "lpips": LPIPSCost(final_weight=3.0, metric=_fake_lpips, chunk=5),
    "pixel": DesignatedPixelCost(RED, tolerance=0.9, min_mass=0.0),
    "sum": SumCost((1.0, GoalImageCost()), (0.5, GoalImageCost(final_weight=10.0))),
}


@pytest.mark.parametrize("name", sorted(COSTS))
def test_batched_equals_per_candidate(name, frames, goal):
    cost = COSTS[name]
    batched = cost(frames, goal)
    assert batched.shape == (N,)
    single = torch.cat([cost(frames[i : i + 1], goal) for i in range(N)])
    assert torch.allclose(batched, single, atol=1e-6)


def test_goal_mse_values_and_goal_shapes(frames, goal):
    expected = ((frames - goal) ** 2).mean(dim=(2, 3, 4)).mean(1)
    assert torch.allclose(goal_mse(frames, goal), expected)
    per_candidate = goal.expand(N, C, S, S)
    assert torch.allclose(goal_mse(frames, per_candidate), expected)
    final_only = goal_mse(frames, goal, weights=torch.tensor([0.0, 0.0, 0.0, 1.0]))
    assert torch.allclose(final_only, ((frames[:, -1] - goal) ** 2).mean(dim=(1, 2, 3)))


def test_goal_errors(frames):
    with pytest.raises(ShapeError, match="goal image"):
        goal_mse(frames, torch.zeros(C, S + 1, S))
    with pytest.raises(ShapeError, match="image_to_tensor"):
        goal_mse(frames, torch.zeros(C, S, S, dtype=torch.uint8))
    with pytest.raises(ShapeError, match=r"\(N, H, C, h, w\)"):
        goal_mse(frames[0], torch.zeros(C, S, S))
    with pytest.raises(ShapeError, match=r"\(H,\)"):
        goal_mse(frames, torch.zeros(C, S, S), weights=torch.ones(H + 1))


def test_blob_position_and_designated_pixel_cost():
    pos, mass = blob_position(_blob(4, 10), RED)
    assert torch.allclose(pos, torch.tensor([4.0, 10.0])) and mass.item() == pytest.approx(9.0)
    frames = torch.stack([_blob(4, 4), _blob(4, 10)])[:, None]  # N=2, H=1
    cost = DesignatedPixelCost(RED)
    assert torch.allclose(cost(frames, torch.tensor([4.0, 10.0])), torch.tensor([6.0, 0.0]))
    # A goal image works too: the goal is where the object is in it.
    assert torch.allclose(cost(frames, _blob(4, 10)), torch.tensor([6.0, 0.0]))


def test_designated_pixel_lost_object_costs_the_diagonal():
    frames = torch.stack([torch.zeros(3, 16, 16), _blob(8, 8)])[:, None]
    costs = DesignatedPixelCost(RED)(frames, torch.tensor([8.0, 8.0]))
    assert costs[0].item() == pytest.approx((2 * 16**2) ** 0.5) and costs[1].item() == 0.0
    with pytest.raises(ShapeError, match="does not show"):
        DesignatedPixelCost(RED)(frames, torch.zeros(3, 16, 16))


def test_pixel_cost_is_monotonic_in_distance_on_soft_frames():
    xs = torch.linspace(-0.8, 0.8, 9)
    frames = render_line(xs, 8, 32)[:, None]  # N x 1 x 3 x h x w
    costs = DesignatedPixelCost(RED, tolerance=0.9)(frames, torch.tensor([3.5, 20.0]))
    assert (costs[1:] < costs[:-1]).all()


def test_lpips_cost_without_weights_raises_clear_error(monkeypatch, tmp_path, frames, goal):
    monkeypatch.delenv("MBVC_LPIPS_DIR", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr("mbvc.metrics.lpips._converted_weights", lambda: (None, []))
    with pytest.raises(DependencyNotInstalled, match="alexnet"):
        LPIPSCost()(frames, goal)


def test_costs_are_plain_callables(frames, goal):
    def my_cost(f, g):  # any function of (frames, goal) is a cost
        return (f.mean(dim=(2, 3, 4)) - g.mean()).abs().sum(1)

    combined = SumCost((1.0, my_cost), (2.0, goal_mse))
    assert torch.allclose(combined(frames, goal), my_cost(frames, goal) + 2 * goal_mse(frames, goal))
