"""The push cost's detectors and finger calibration (agents.costs.push) and the data policy (envs.policies)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.costs.push import PushCost
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
    from agents.costs import cost_config

    assert cost_config({"name": "push", "min_mass": 0.0}).min_mass == 0.0


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
    from agents.costs.push_calibration import background_image, calibrate_finger, rollout_frames
    from envs.collect import CollectConfig, collect
    from mbvc.errors import ShapeError

    root = tmp_path / "rollouts"
    collect(root, CollectConfig(env_id="mbvc/Push-v0", num_episodes=10, policy="episode_mix", seed=3,
                                image_size=32, episode_length=20, num_envs=1, progress=False))
    cost = PushCost(background_image(root))
    fit = calibrate_finger(cost, *rollout_frames(root))
    assert fit["finger_map"].shape == (2, 6) and fit["frames"] >= 50
    # the fitted map puts the finger where the block would be seen at the pusher's position
    assert fit["error_px"] < 1.5 and fit["error_px"] < 0.75 * fit["bar_error_px"]
    calibrated = PushCost(cost.background, finger_map=fit["finger_map"])
    frame = _scene((20, 10), (14, 25))
    assert calibrated.pusher_position(frame)[0].shape == (2,)
    with pytest.raises(ShapeError, match="finger_map"):
        PushCost(cost.background, finger_map=torch.zeros(2, 3))


def test_push_calibration_is_computed_once_saved_next_to_the_data_and_loaded(tmp_path, monkeypatch):
    pytest.importorskip("mujoco")
    import agents.costs.push_calibration as push
    from agents.costs import build_cost
    from envs.collect import CollectConfig, collect
    from mbvc.errors import DataError

    root = tmp_path / "rollouts"
    spec = dict(env_id="mbvc/Push-v0", policy="episode_mix", seed=3, image_size=32, episode_length=20, num_envs=1,
                progress=False)
    collect(root, CollectConfig(num_episodes=10, **spec))
    first = build_cost({"name": "push"}, root)
    saved = push.PushCalibration.load(root / push.CALIBRATION_FILE)
    assert saved.episodes == 10 and saved.finger_map is not None
    assert torch.equal(saved.background, first.background) and torch.equal(saved.finger_map, first.finger_map)
    calls = []
    monkeypatch.setattr(push.PushCalibration, "fit", classmethod(lambda cls, *a, **k: calls.append(a)))
    again = build_cost({"name": "push", "pusher_weight": 0.3}, root)  # read back, not computed again
    assert calls == [] and torch.equal(again.finger_map, first.finger_map)
    # a model file alone plans with the saved calibration, wherever it is kept
    moved = tmp_path / "calibration.safetensors"
    (root / push.CALIBRATION_FILE).rename(moved)
    alone = build_cost({"name": "push", "calibration": str(moved)})
    assert torch.equal(alone.background, first.background)
    with pytest.raises(DataError, match="not a push-cost calibration"):
        push.PushCalibration.load(tmp_path / "missing.safetensors")
