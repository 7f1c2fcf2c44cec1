"""The push cost's detectors and finger calibration (agents.push) and the data policy (envs.policies)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.push import PushCost
from envs.policies import EpisodeMixPolicy
from mbvc.errors import ConfigError

FLOOR = torch.tensor([0.69, 0.56, 0.42])


def _scene(block_rc: tuple[int, int] | None, pusher_rc: tuple[int, int], size: int = 32) -> torch.Tensor:
    """A 3 x size x size frame: floor, a 3x3 red block, a grey rod from the top edge down to the pusher."""
    frame = FLOOR[:, None, None].repeat(1, size, size)
    if block_rc is not None:
        r, c = block_rc
        frame[:, r - 1 : r + 2, c - 1 : c + 2] = torch.tensor([0.95, 0.18, 0.14])[:, None, None]
    r, c = pusher_rc
    frame[:, : r + 1, c : c + 2] = torch.tensor([0.85, 0.85, 0.88])[:, None, None]
    return frame


def _cost(**kwargs) -> PushCost:
    return PushCost(FLOOR[:, None, None].repeat(1, 32, 32), **kwargs)


def test_push_cost_locates_block_and_finger_by_background_subtraction():
    cost = _cost()
    frame = _scene((20, 10), (14, 25))
    block, _ = cost.block_position(frame)
    pusher, _ = cost.pusher_position(frame)
    assert torch.allclose(block, torch.tensor([20.0, 10.0]), atol=0.2)
    assert abs(pusher[0].item() - 14) <= 1.0 and abs(pusher[1].item() - 25.5) < 0.2  # the rod's lower end
    # a faded (blurry) prediction is still found where it is
    faded = 0.4 * frame + 0.6 * FLOOR[:, None, None]
    assert torch.allclose(cost.block_position(faded)[0], block, atol=0.5)


def test_push_cost_prefers_block_at_goal_and_pusher_behind_it():
    cost = _cost(pusher_weight=0.5)
    goal = _scene((20, 20), (5, 5))
    far, near = _scene((20, 10), (20, 7)), _scene((20, 17), (20, 14))
    costs = cost(torch.stack([far, near])[:, None], goal)  # N=2, H=1
    assert costs[1] < costs[0]
    # the same block position: the pusher behind the block (away from the goal) is better
    behind, ahead = _scene((20, 10), (20, 7)), _scene((20, 10), (20, 13))
    costs = cost(torch.stack([behind, ahead])[:, None], goal)
    assert costs[0] < costs[1]
    # a block that vanished from the prediction never looks like success
    gone = _scene(None, (5, 5))
    costs = cost(torch.stack([gone, goal])[:, None], goal)
    assert costs[0] > costs[1]


def test_push_cost_min_mass_decides_whether_a_faint_block_is_lost():
    goal = _scene((20, 20), (5, 5))
    start = _scene((20, 10), (20, 7))
    # the block pushed towards the goal but predicted faint (hidden behind the rod, or blurred away)
    faint = 0.3 * _scene((20, 12), (20, 9)) + 0.7 * FLOOR[:, None, None]
    frames = torch.stack([start, faint])[None]  # N=1, H=2
    lost = _cost(pusher_weight=0.0, keep_out_weight=0.0)  # default: below min_mass the step costs the diagonal
    kept = _cost(pusher_weight=0.0, keep_out_weight=0.0, min_mass=0.0)  # occluded, not gone: its tracked position
    assert lost.track_block(frames)[1][0, 1] < lost.min_mass
    assert kept(frames, goal) < lost(frames, goal)
    assert torch.allclose(kept(frames, goal), torch.tensor([(10.0 + 8.0) / 2]), atol=0.3)  # 10 px, then ~8 px
    from agents.cost_registry import CostConfig

    assert CostConfig(name="push", min_mass=0.0).min_mass == 0.0


def test_push_cost_checks_shapes():
    from mbvc.errors import ShapeError

    with pytest.raises(ShapeError, match="background"):
        PushCost(torch.zeros(32, 32))
    with pytest.raises(ShapeError, match="do not match"):
        _cost()(torch.zeros(2, 3, 3, 16, 16), _scene((20, 20), (5, 5)))


class _Const:
    def __init__(self, value: float) -> None:
        self.value, self.seeds = value, []

    def reset(self, seed=None):
        self.seeds.append(seed)

    def __call__(self, obs):
        return np.full(2, self.value, np.float32)


def test_episode_mix_policy_draws_from_the_seed():
    a, b = _Const(0.0), _Const(1.0)
    mix = EpisodeMixPolicy([(0.5, a), (0.5, b)])
    draws = []
    for seed in range(40):
        mix.reset(seed)
        draws.append(float(mix(None)[0]))
    again = []
    for seed in range(40):
        mix.reset(seed)
        again.append(float(mix(None)[0]))
    assert draws == again and 0 < sum(draws) < 40  # deterministic per seed, both policies used
    with pytest.raises(ConfigError):
        EpisodeMixPolicy([(0.0, a)])


def test_finger_calibration_on_recorded_rollouts_beats_the_bar_heuristic(tmp_path):
    pytest.importorskip("mujoco")
    from agents.push import background_image, calibrate_finger
    from envs.collect import CollectConfig, collect
    from mbvc.errors import ShapeError

    root = tmp_path / "rollouts"
    collect(root, CollectConfig(env_id="mbvc/Push-v0", num_episodes=10, policy="episode_mix", seed=3,
                                image_size=32, episode_length=20, num_envs=1, progress=False))
    cost = PushCost(background_image(root))
    fit = calibrate_finger(cost, root)
    assert fit["finger_map"].shape == (2, 6) and fit["frames"] >= 50
    # the fitted map puts the finger where the block would be seen at the pusher's position
    assert fit["error_px"] < 1.5 and fit["error_px"] < 0.75 * fit["bar_error_px"]
    calibrated = PushCost(cost.background, finger_map=fit["finger_map"])
    frame = _scene((20, 10), (14, 25))
    assert calibrated.pusher_position(frame)[0].shape == (2,)
    with pytest.raises(ShapeError, match="finger_map"):
        PushCost(cost.background, finger_map=torch.zeros(2, 3))


def test_two_view_push_cost_from_recorded_rollouts_locates_the_block_on_the_table(tmp_path):
    pytest.importorskip("mujoco")
    import gymnasium as gym

    from agents.cost_registry import CostConfig, build_cost
    from agents.push import MultiViewPushCost, calibrate_view, clear_goal_image
    from envs.collect import CollectConfig, collect

    root = tmp_path / "rollouts"
    collect(root, CollectConfig(env_id="mbvc/Push-v0", num_episodes=10, policy="episode_mix", seed=3, image_size=32,
                                episode_length=20, num_envs=1, progress=False, env_kwargs={"camera": "bair+side"}))
    cost = build_cost(CostConfig(name="push", views=2), root)
    assert isinstance(cost, MultiViewPushCost) and 40 < cost.scale < 120  # pixels per metre of the first view
    fit = calibrate_view(cost.costs[1], root, view=1, views=2)
    assert fit["block_error_m"] < 0.015 and fit["pusher_error_m"] < 0.06
    env = gym.make("mbvc/Push-v0", image_size=32, camera="bair+side")
    obs, _ = env.reset(seed=11)
    frame = torch.as_tensor(obs["image"]).permute(2, 0, 1).float()[None, None] / 255
    goal = torch.as_tensor(clear_goal_image(env)).permute(2, 0, 1).float() / 255
    block, pusher, lost, _ = cost.table_positions(frame, cost.split(goal))
    assert not lost.any() and np.linalg.norm(block[0, 0].numpy() - env.unwrapped.target_position) < 0.02
    assert np.linalg.norm(pusher[0, 0].numpy() - obs["state"][:2]) < 0.04
    target = cost.goal_table_position(cost.split(goal), frame)
    assert np.linalg.norm(target.numpy() - env.unwrapped.goal) < 0.02
    with pytest.raises(ConfigError, match="cost.views=3"):
        build_cost(CostConfig(name="push", views=3), root)
    env.close()


def _behind_rod(block_rc: tuple[int, int] | None, finger_rc: tuple[int, int]) -> torch.Tensor:
    """A frame whose 5-px-wide rod (top edge down to the finger) hides a block straight above the finger."""
    frame = _scene(block_rc, (0, 0))
    frame[:, :1, :2] = FLOOR[:, None, None]  # no rod from _scene
    r, c = finger_rc
    frame[:, : r + 1, c - 2 : c + 3] = torch.tensor([0.85, 0.85, 0.88])[:, None, None]
    return frame


def test_push_cost_observe_carries_a_block_hidden_by_the_rod_and_finds_it_again():
    from agents.push import PushGoal

    cost = _cost(carry_below=0.5)
    g = cost.observe(torch.tensor([4.0, 16.0]), _scene((12, 16), (16, 5)))  # in full view, the rod far left
    assert isinstance(g, PushGoal) and g.block == pytest.approx((12.0, 16.0), abs=0.2) and g.full_mass > 0
    g = cost.observe(g, _behind_rod(None, (15, 16)))  # the rod slid in front: hidden, the finger was far: held
    assert g.block == pytest.approx((12.0, 16.0), abs=0.2)
    g = cost.observe(g, _behind_rod(None, (12, 16)))  # the finger advanced 3 px into it: pushed 3 px
    assert g.block == pytest.approx((9.0, 16.0), abs=0.3)
    g = cost.observe(g, _scene((8, 17), (16, 5)))  # out of hiding, a pixel off the estimate: found again
    assert g.block == pytest.approx((8.0, 17.0), abs=0.2)
    # off: the plain track, which loses a hidden block
    plain = _cost()
    h = plain.observe(plain.observe(torch.tensor([4.0, 16.0]), _scene((12, 16), (16, 5))), _behind_rod(None, (15, 16)))
    h = plain.observe(h, _behind_rod(None, (12, 16)))
    assert h.block == pytest.approx((12.0, 16.0), abs=0.2)


def test_push_cost_plans_a_push_behind_the_rod_only_with_carry():
    goal = torch.tensor([6.0, 16.0])  # straight up: away from the camera, the rod in front of the block
    first, ready = _scene((12, 16), (16, 5)), _behind_rod(None, (15, 16))
    push = torch.stack([_behind_rod(None, (13, 16)), _behind_rod(None, (10, 16))])  # the model fades the block
    stay = torch.stack([_behind_rod(None, (15, 16)), _behind_rod(None, (15, 16))])
    frames = torch.stack([push, stay])  # N=2 candidates, H=2
    carry = _cost(carry_below=0.5)
    g = carry.observe(carry.observe(goal, first), ready)
    costs = carry(frames, g)
    assert costs[0] < costs[1]  # pushing moves the hidden block towards the goal
    blocks, masses = carry.track_block(frames, carry.pusher_position(frames)[0], g)
    assert blocks[0, -1].tolist() == pytest.approx([7.0, 16.0], abs=0.3) and (masses >= carry.min_mass).all()
    assert blocks[1, -1].tolist() == pytest.approx([12.0, 16.0], abs=0.3)
    off = _cost()  # the default: a faded block is lost, whatever the rod does
    h = off.observe(off.observe(goal, first), ready)
    assert torch.equal(off(frames, h), off(frames, goal))  # observing changes nothing when carry is off
    with pytest.raises(ConfigError, match="carry_below"):
        _cost(carry_below=1.5)
    from agents.cost_registry import CostConfig

    with pytest.raises(ConfigError, match="cost.carry_below"):
        CostConfig(name="push", carry_below=-0.1)


def _two_views(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    return torch.cat([left, right], dim=-1)


def _mirror_views_cost(**kwargs):
    """Two 32x32 views of the table: the first sees table (x, y) = (col, row) / 100, the second mirrored."""
    from agents.push import MultiViewPushCost

    first = torch.zeros(2, 6)
    first[0, 1], first[1, 0] = 0.01, 0.01  # features [r, c, r^2, rc, c^2, 1]
    second = first.clone()
    second[0, 1], second[0, 5] = -0.01, 0.31  # x = (31 - col) / 100
    cal = [{"block": first, "pusher": first, "block_error_m": 0.005, "pusher_error_m": 0.01},
           {"block": second, "pusher": second, "block_error_m": 0.005, "pusher_error_m": 0.01}]
    return MultiViewPushCost([_cost(**kwargs), _cost(**kwargs)], cal, scale=100.0)


def test_multi_view_push_cost_places_the_block_with_the_view_that_sees_it():
    cost = _mirror_views_cost(pusher_weight=0.0, keep_out_weight=0.0)
    goal = _two_views(_scene((20, 20), (5, 5)), _scene((20, 11), (5, 28)))  # table (0.20, 0.20) in both
    # candidate 0: the rod hides the block from the first camera, the second shows it at its goal;
    # candidate 1: both show it 6 cm short of the goal
    hidden_at_goal = _two_views(_scene(None, (20, 20)), _scene((20, 11), (5, 28)))
    half_way = _two_views(_scene((20, 14), (5, 5)), _scene((20, 17), (5, 28)))
    frames = torch.stack([hidden_at_goal, half_way])[:, None]
    block, _, lost, _ = cost.table_positions(frames, cost.split(goal))
    assert torch.allclose(block[:, 0], torch.tensor([[0.20, 0.20], [0.14, 0.20]]), atol=2e-3) and not lost.any()
    costs = cost(frames, goal)
    assert costs[0] < 0.5 and abs(costs[1] - 6.0) < 0.3  # in the first view's pixels
    # the single-view cost on the first view alone reads the hidden block as lost (the image diagonal)
    assert _cost(pusher_weight=0.0, keep_out_weight=0.0)(hidden_at_goal[None, None, ..., :32], goal[..., :32]) > 40
    # lost only when every view loses it
    gone = _two_views(_scene(None, (5, 5)), _scene(None, (5, 28)))
    assert cost(gone[None, None], goal) > 40
    # the goals observed per view give the same costs
    goals = cost.observe(goal, half_way)
    assert len(goals) == 2 and goals[1].block is not None and abs(goals[1].block[1] - 17) < 0.5
    assert torch.allclose(cost(frames, goals), costs)


def test_multi_view_push_cost_shapes_the_approach_from_the_fused_pusher():
    cost = _mirror_views_cost()
    goal = _two_views(_scene((20, 20), (2, 2)), _scene((20, 11), (2, 29)))
    # the same block, the finger behind it (away from the goal) or ahead of it, in both views
    behind = _two_views(_scene((20, 10), (20, 7)), _scene((20, 21), (20, 23)))
    ahead = _two_views(_scene((20, 10), (20, 13)), _scene((20, 21), (20, 17)))
    costs = cost(torch.stack([behind, ahead])[:, None], goal)
    assert costs[0] < costs[1]


def test_multi_view_push_cost_refuses_one_view_and_odd_widths():
    from agents.push import MultiViewPushCost, split_views
    from mbvc.errors import ShapeError

    with pytest.raises(ConfigError, match="at least 2 views"):
        MultiViewPushCost([_cost()], [{"block": torch.zeros(2, 6), "pusher": torch.zeros(2, 6)}], 1.0)
    with pytest.raises(ShapeError, match="'block' and 'pusher' maps"):
        MultiViewPushCost([_cost(), _cost()], [{"block": torch.zeros(2, 6)}] * 2, 1.0)
    with pytest.raises(ShapeError, match="3 views"):
        split_views(torch.zeros(3, 8, 64), 3)
