"""The push cost reading a world model's state readout where the rod hides the block (``cost.block_entries``)."""
from __future__ import annotations

import json

import pytest
import torch

from agents.costs import FramesAndStates, cost_config
from agents.costs.push import PushCost
from agents.models import PredRNNModel
from agents.plan import check_model_states
from mbvc.errors import ConfigError, ShapeError
from mbvc.models import build_model
from tests.agents.test_push_cost import FLOOR, _scene
from tests.models.conftest import tiny_config

# Table (x, y) metres -> pixel (row, col): row = 16 - 50 y, col = 16 + 50 x.
CAMERA = torch.tensor([[0.0, 50.0], [-50.0, 0.0], [16.0, 16.0]])


def _xy(row: float, col: float) -> list[float]:
    """The table position the test camera shows at pixel (row, col)."""
    return [(col - 16) / 50, (16 - row) / 50]


def _readout_cost(**kwargs) -> PushCost:
    background = FLOOR[:, None, None].repeat(1, 32, 32)
    whole = float(PushCost(background).block_position(_scene((20, 10), (5, 25)))[1])
    return PushCost(background, block_entries=(2, 3), camera=CAMERA, block_mass=whole, **kwargs)


def _states(*blocks: tuple[float, float]) -> torch.Tensor:
    """States N x 1 x 4 (pusher x, y, block x, y) with the blocks at the given pixels."""
    return torch.tensor([[[0.0, 0.0, *_xy(*b)]] for b in blocks])


def test_a_hidden_block_is_where_the_readout_says_a_visible_one_where_the_frames_show_it():
    cost = _readout_cost(pusher_weight=0.0, keep_out_weight=0.0)
    goal = _scene((20, 20), (5, 5))
    hidden = torch.stack([_scene(None, (20, 5)), _scene(None, (20, 5))])[:, None]  # the rod hides the block
    # the readout carries the hidden block: at the goal it costs nothing, away from it the distance
    costs = cost(FramesAndStates(hidden, _states((20, 20), (20, 10))), goal)
    assert costs[0] < 0.05 and abs(costs[1] - 10) < 0.05
    # frames alone lose it: both candidates cost the image diagonal, the planner cannot choose
    blind = PushCost(cost.background, pusher_weight=0.0, keep_out_weight=0.0)(hidden, goal)
    assert torch.allclose(blind, torch.full((2,), 32 * 2**0.5))
    # a whole block in the frames is read there, whatever the readout believes
    seen = torch.stack([_scene((20, 14), (5, 25))] * 2)[:, None]
    costs = cost(FramesAndStates(seen, _states((20, 20), (20, 2))), goal)
    assert torch.allclose(costs, torch.full((2,), 6.0), atol=0.05)


def test_a_partly_hidden_block_is_blended_by_the_weight_the_frame_misses():
    cost = _readout_cost()
    frames_pos = torch.tensor([[[20.0, 10.0]]])
    readout = _states((20, 20))
    whole = torch.full((1, 1), cost.block_mass)
    assert torch.allclose(cost._blend_readout(frames_pos, whole, readout), frames_pos, atol=1e-4)
    assert torch.allclose(cost._blend_readout(frames_pos, whole / 2, readout), torch.tensor([[[20.0, 15.0]]]), atol=1e-4)
    assert torch.allclose(cost._blend_readout(frames_pos, whole * 0, readout), torch.tensor([[[20.0, 20.0]]]), atol=1e-4)
    assert torch.allclose(cost.table_to_pixels(torch.tensor(_xy(7.0, 3.0))), torch.tensor([7.0, 3.0]), atol=1e-4)


def test_the_cost_says_what_it_reads_and_refuses_what_it_cannot_use():
    cost = _readout_cost()
    assert cost.reads == "frames+states" and PushCost(cost.background).reads == "frames"
    frames = _scene((20, 10), (5, 25))[None, None]
    goal = _scene((20, 20), (5, 5))
    with pytest.raises(ShapeError, match=r"needs FramesAndStates .* got frames only"):
        cost(frames, goal)
    with pytest.raises(ShapeError, match=r"S > 3\) beside frames \(1, 1, 3, 32, 32\), got states of shape \(1, 1, 3\)"):
        cost(FramesAndStates(frames, torch.zeros(1, 1, 3)), goal)
    with pytest.raises(ConfigError, match="needs the calibration's camera and block_mass"):
        PushCost(cost.background, block_entries=(2, 3))
    with pytest.raises(ConfigError, match="block_entries must be two state entries"):
        PushCost(cost.background, block_entries=(2,), camera=CAMERA, block_mass=7.0)
    with pytest.raises(ShapeError, match=r"camera must be \(3, 2\)"):
        PushCost(cost.background, block_entries=(2, 3), camera=torch.zeros(2, 2), block_mass=7.0)
    # a frames-only push cost takes a model's states and ignores them
    plain = PushCost(cost.background)
    assert torch.equal(plain(FramesAndStates(frames, torch.zeros(1, 1, 4)), goal), plain(frames, goal))


@pytest.mark.parametrize("entries", [[2], [2, 3, 4], [-1, 3], "23", [2.0, 3], [True, 3]])
def test_block_entries_must_be_two_indices(entries):
    with pytest.raises(ConfigError, match=r"cost.block_entries(:| must be \[\] or two indices >= 0)") as e:
        cost_config({"name": "push", "block_entries": entries})
    assert "\n" not in str(e.value)
    assert cost_config({"name": "push", "block_entries": [2, 3]}).block_entries == (2, 3)


def _model(**kw):
    return build_model(tiny_config("action_cond_predrnn_v2", num_action_ch=2, input_length=2, total_length=6,
                                   patch_size=1, **kw))


def test_the_planning_model_returns_frames_and_the_readout_for_such_a_cost():
    torch.manual_seed(0)
    model = _model(state_targets=(0, 1, 4, 5))
    context, past = torch.rand(1, 2, 1, 16, 16), torch.zeros(1, 1, 2)
    actions = torch.rand(5, 4, 2) * 2 - 1
    both = PredRNNModel(model, predict="frames+states", chunk_size=3).bind(context, past)(actions)
    assert isinstance(both, FramesAndStates)
    assert both.frames.shape == (5, 4, 1, 16, 16) and both.states.shape == (5, 4, 4)
    frames = PredRNNModel(model).bind(context, past)(actions)
    assert torch.equal(both.frames, frames)  # the same frames as a frames-only plan, chunked or not
    with pytest.raises(ConfigError, match="needs a world model trained with model.state_targets"):
        PredRNNModel(_model(), predict="frames+states")
    with pytest.raises(ConfigError, match="predict must be 'frames' or 'frames\\+states'"):
        PredRNNModel(model, predict="states")


def test_plan_refuses_block_entries_the_model_cannot_feed():
    cost = cost_config({"name": "push", "block_entries": [2, 3]})
    with pytest.raises(ConfigError, match=r"the model has no readout: train it with model.state_targets"):
        check_model_states(_model().config, cost)
    with pytest.raises(ConfigError, match=r"cost.block_entries=\[2, 3\] indexes the model's 2 predicted entries"):
        check_model_states(_model(state_targets=(0, 1)).config, cost)
    check_model_states(_model(state_targets=(0, 1, 4, 5)).config, cost)


def test_the_camera_is_fitted_on_recorded_rollouts_saved_and_refitted_for_an_older_calibration(tmp_path):
    pytest.importorskip("mujoco")
    import agents.costs.push_calibration as push
    from agents.costs import build_cost
    from envs.collect import CollectConfig, collect

    root = tmp_path / "rollouts"
    collect(root, CollectConfig(env_id="mbvc/Push-v0", num_episodes=10, policy="episode_mix", seed=3, image_size=32,
                                episode_length=20, num_envs=1, progress=False))
    fit = push.fit_camera(PushCost(push.background_image(root)), *push.rollout_frames(root))
    assert fit["camera"].shape == (3, 2) and fit["frames"] >= 50 and fit["block_mass"] > 0
    assert fit["error_px"] < 1.0  # the block's detected pixel is an affine function of its table position
    cost = build_cost({"name": "push", "block_entries": [2, 3]}, root)
    assert cost.reads == "frames+states" and torch.equal(cost.camera, fit["camera"])
    saved = push.PushCalibration.load(root / push.CALIBRATION_FILE)
    assert torch.equal(saved.camera, fit["camera"]) and saved.block_mass == fit["block_mass"]
    # a calibration written before the camera fit existed is computed again, the same
    old = push.PushCalibration(saved.background, saved.finger_map, saved.episodes, {"frames": 1})
    old.save(root / push.CALIBRATION_FILE)
    again = push.load_calibration(root)
    assert torch.equal(again.camera, fit["camera"]) and torch.equal(again.finger_map, saved.finger_map)
    # a saved calibration without a camera cannot feed block_entries: one line naming it
    moved = tmp_path / "old.safetensors"
    old.save(moved)
    with pytest.raises(ConfigError, match=r"cost.block_entries needs the calibration's table-to-pixel map.*old.safetensors"):
        build_cost({"name": "push", "block_entries": [2, 3], "calibration": str(moved)})


def test_the_tiny_demo_trains_the_readout_and_plans_with_it(tmp_path):
    pytest.importorskip("mujoco")
    from agents.demo import demo_settings, run_demo

    settings = demo_settings(tiny=True, overrides=["demo.progress=false"])
    assert settings.run.model.state_targets == (0, 1, 4, 5)  # the preset's readout
    report = run_demo(settings, tmp_path / "out")
    assert report["results"]["mpc"]["episodes"] == settings.eval_episodes
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert plan["settings"]["cost"]["block_entries"] == [2, 3]
    metrics = (tmp_path / "out" / "model" / "metrics.jsonl").read_text()
    assert '"train/state"' in metrics  # the readout's loss was trained and logged
