"""Costs that need no environment knowledge, on hand-made frames with known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.costs import build_cost, cost_config
from agents.costs.designated import (
    DesignatedGoal,
    DesignatedObjectCost,
    DesignatedPushCost,
    extract_patch,
    match_template,
    track_template,
)
from agents.costs.image import MaskedGoalImageCost, load_mask
from mbvc.errors import ConfigError

SIZE = 24


def scene(positions: list[tuple[int, int]], size: int = SIZE, distractor: tuple[int, int] | None = None) -> torch.Tensor:
    """Frames ``T x 3 x size x size``: grey background, a 3x3 object with a bright centre at each position."""
    frames = torch.full((len(positions), 3, size, size), 0.4)
    for t, (r, c) in enumerate(positions):
        frames[t, :, r - 1 : r + 2, c - 1 : c + 2] = torch.tensor([0.9, 0.2, 0.1])[:, None, None]
        frames[t, :, r, c] = 1.0
        if distractor is not None:
            dr, dc = distractor
            frames[t, :, dr - 1 : dr + 2, dc - 1 : dc + 2] = torch.tensor([0.1, 0.3, 0.9])[:, None, None]
    return frames


def test_goal_image_equal_to_prediction_costs_zero_and_masked_pixels_are_ignored():
    goal = torch.rand(3, 8, 8)
    frames = goal.expand(2, 4, 3, 8, 8).clone()
    assert torch.allclose(MaskedGoalImageCost(final_weight=5.0)(frames, goal), torch.zeros(2))
    frames[1, :, :, :, :4] = 0.0  # candidate 1 differs on the left half only
    mask = torch.ones(8, 8)
    mask[:, :4] = 0.0  # ... which the user masks out (e.g. the agent's body)
    costs_all = MaskedGoalImageCost()(frames, goal)
    costs_masked = MaskedGoalImageCost(mask=mask)(frames, goal)
    assert costs_all[1] > 0 and torch.allclose(costs_masked, torch.zeros(2))


def test_goal_image_final_weight_favours_reaching_the_goal_at_the_end():
    goal = torch.ones(1, 4, 4)
    early = torch.zeros(1, 3, 1, 4, 4)
    early[:, :2] = 1.0  # at the goal for two steps, then away
    late = torch.zeros(1, 3, 1, 4, 4)
    late[:, 2] = 1.0  # at the goal at the last step only
    frames = torch.cat([early, late])
    flat, final = MaskedGoalImageCost(final_weight=1.0)(frames, goal), MaskedGoalImageCost(final_weight=10.0)(frames, goal)
    assert flat[0] < flat[1] and final[1] < final[0]


def test_masks_load_from_npy_and_png_and_bad_masks_are_one_line_errors(tmp_path):
    from PIL import Image

    np.save(tmp_path / "m.npy", np.ones((4, 4), dtype=np.float32))
    Image.fromarray(np.full((4, 4), 255, dtype=np.uint8)).save(tmp_path / "m.png")
    assert load_mask(tmp_path / "m.npy").sum() == 16 and load_mask(tmp_path / "m.png").sum() == 16
    with pytest.raises(ConfigError, match="no such file"):
        load_mask(tmp_path / "missing.png")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        load_mask(np.full((4, 4), 2.0))
    with pytest.raises(ConfigError, match="every pixel"):
        MaskedGoalImageCost(mask=np.zeros((4, 4)))


def test_template_matching_peaks_on_the_object():
    frames = scene([(6, 7)])
    scores = match_template(frames, extract_patch(frames[0], (6, 7), 5))
    assert divmod(int(scores[0].argmax()), SIZE) == (6, 7)
    assert float(scores.max()) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("search_radius", [None, 3.0])
@pytest.mark.parametrize("method, patch, temperature", [("ncc", 5, 0.05), ("ssd", 3, 0.001), ("ssd", 1, 0.001)])
def test_tracker_follows_the_object_through_a_sequence(search_radius, method, patch, temperature):
    path = [(5, 5), (6, 7), (8, 9), (10, 11), (12, 14), (15, 16)]
    frames = scene(path, distractor=(19, 4))
    template = extract_patch(frames[0], path[0], patch)
    pos = track_template(frames[None], template, path[0], temperature, search_radius, method)[0]
    assert pos.shape == (len(path), 2)
    assert torch.allclose(pos, torch.tensor(path, dtype=torch.float32), atol=0.5)


def test_search_radius_keeps_the_track_on_the_designated_object_among_lookalikes():
    # Two identical objects; the designated one is at (5, 5), its twin at (18, 18).
    frames = scene([(5, 5), (6, 6), (7, 7)])
    frames[:, :, 17:20, 17:20] = frames[0, :, 4:7, 4:7]
    template = extract_patch(frames[0], (5, 5), 5)
    pos = track_template(frames[None], template, (5, 5), search_radius=3.0)[0]
    assert torch.allclose(pos, torch.tensor([(5.0, 5.0), (6.0, 6.0), (7.0, 7.0)]), atol=0.5)


def test_designated_cost_decreases_as_the_object_moves_toward_its_target():
    first = scene([(5, 5)])[0]
    goal = DesignatedGoal(source=(5, 5), target=(16, 16)).with_observation(first)
    toward = scene([(8, 8), (11, 11), (14, 14)])
    stay = scene([(5, 5), (5, 5), (5, 5)])
    away = scene([(4, 3), (3, 2), (2, 2)])
    costs = DesignatedObjectCost(final_weight=3.0)(torch.stack([toward, stay, away]), goal)
    assert costs[0] < costs[1] < costs[2]
    at_target = DesignatedObjectCost()(scene([(16, 16)])[None], goal)
    assert float(at_target) < 0.5


def test_designated_cost_is_batched_on_the_frames_device_and_shaped_n():
    first = scene([(5, 5)])[0]
    goal = DesignatedGoal((5, 5), (10, 10)).with_observation(first)
    frames = scene([(5, 5)] * 4).expand(7, 4, 3, SIZE, SIZE).to(torch.float64)
    assert DesignatedObjectCost()(frames, goal).shape == (7,)


def test_designated_cost_errors_name_what_is_missing():
    frames = scene([(5, 5)])[None]
    with pytest.raises(ConfigError, match="first observation"):
        DesignatedObjectCost()(frames, DesignatedGoal((5, 5), (9, 9)))
    with pytest.raises(ConfigError, match="DesignatedGoal"):
        DesignatedObjectCost()(frames, torch.zeros(3, SIZE, SIZE))
    with pytest.raises(ConfigError, match="outside"):
        DesignatedObjectCost()(frames, DesignatedGoal((50, 5), (9, 9)).with_observation(frames[0, 0]))
    with pytest.raises(ConfigError, match="odd"):
        DesignatedObjectCost(patch_size=4)
    with pytest.raises(ConfigError, match="method"):
        DesignatedObjectCost(method="sift")
    with pytest.raises(ConfigError, match="cost.source"):
        DesignatedObjectCost().goal_for_env(object(), (SIZE, SIZE))


def test_registry_builds_the_generic_costs(tmp_path):
    np.save(tmp_path / "mask.npy", np.ones((4, 4), dtype=np.float32))
    masked = build_cost({"name": "goal_image", "mask": str(tmp_path / "mask.npy")})
    assert isinstance(masked, MaskedGoalImageCost)
    cost = build_cost({"name": "designated_object", "source": [3, 4], "target": [10, 12], "patch_size": 7})
    assert isinstance(cost, DesignatedObjectCost) and cost.patch_size == 7
    assert cost.goal_for_env(object(), (SIZE, SIZE)) == DesignatedGoal((3, 4), (10, 12))
    with pytest.raises(ConfigError, match="go together"):
        cost_config({"name": "designated_object", "source": [1, 2]})


def test_mpc_agent_binds_a_designation_to_the_first_observation():
    from gymnasium import spaces

    from agents.models import CopyLastFrameModel
    from agents.mpc import MPCAgent

    agent = MPCAgent(CopyLastFrameModel(), DesignatedObjectCost(), "cem", horizon=2,
                     action_space=spaces.Box(-1, 1, (2,)))
    image = (scene([(5, 5)])[0].movedim(0, -1).numpy() * 255).astype(np.uint8)
    agent.reset({"image": image}, goal=DesignatedGoal((5, 5), (9, 9)))
    assert agent.goal.image is not None and agent.goal.image.shape == (3, SIZE, SIZE)
    assert agent.act({"image": image}).shape == (2,)


def test_push_shaping_is_zero_behind_the_object_and_penalises_its_target_side():
    from agents.costs import push_shaping

    obj, target = torch.tensor([10.0, 10.0]), torch.tensor([10.0, 20.0])
    behind = torch.tensor([10.0, 7.0])  # 3 px beyond the object, away from the target
    approach, intrusion = push_shaping(obj, behind, target, behind=3.0, keep_out=6.0)
    assert float(approach) == pytest.approx(0.0) and float(intrusion) == pytest.approx(0.0)
    front = torch.tensor([10.0, 13.0])  # between the object and its target
    approach, intrusion = push_shaping(obj, front, target, behind=3.0, keep_out=6.0)
    assert float(approach) == pytest.approx(6.0) and float(intrusion) == pytest.approx(3.0)


def push_scene(obj: tuple[int, int], agent: tuple[int, int], size: int = SIZE) -> torch.Tensor:
    """One frame ``3 x size x size``: a red 3x3 object and a dark agent with a bright arm above it."""
    frame = scene([obj], size)[0]
    r, c = agent
    frame[:, :r, c] = 0.95  # the arm from the top edge
    frame[:, r - 1 : r + 2, c - 1 : c + 2] = 0.1
    return frame


def test_designated_push_cost_prefers_the_agent_behind_the_object_then_the_object_at_its_target():
    first = push_scene((12, 12), (12, 5))
    goal = DesignatedGoal((12, 12), (12, 20), agent=(12, 5)).with_observation(first)
    cost = DesignatedPushCost(agent_search_radius=None)  # whole-frame search: the shaping alone is tested
    far_side = push_scene((12, 12), (12, 17))  # the agent on the target side (it would push the wrong way)
    behind = push_scene((12, 12), (12, 9))  # the agent just behind the object
    pushed = push_scene((12, 14), (12, 11))  # the object pushed towards its target
    costs = cost(torch.stack([far_side, behind, pushed])[:, None], goal)
    # Both are tracked: each cost is the object's distance plus the shaping at the true positions.
    assert costs.tolist() == pytest.approx([8 + 0.5 * 8 + 2.0 * 1, 8.0, 6.0], abs=0.3)


def test_designated_push_keeps_the_objects_track_among_lookalikes_by_default():
    # The prediction shows the object one pixel on and, far from it, a lookalike (on Push-v0:
    # the agent's arm where the object's first patch took some in). A whole-frame search is
    # drawn to both; the default prior (2 px around where the object is now) keeps the object.
    first = push_scene((6, 6), (20, 20))
    goal = DesignatedGoal((6, 6), (6, 18), agent=(20, 20)).with_observation(first)
    later = push_scene((7, 7), (20, 20))
    later[:, 15:18, 3:6] = first[:, 5:8, 5:8]
    assert DesignatedPushCost().search_radius == 2.0
    on_object = DesignatedPushCost()._track(later[None, None], goal)[0, 0]
    assert on_object.tolist() == pytest.approx([7.0, 7.0], abs=0.3)
    whole_frame = DesignatedPushCost(search_radius=None)._track(later[None, None], goal)[0, 0]
    assert float(whole_frame[0]) > 9.0  # pulled towards the lookalike at row 16


def test_observe_follows_the_designated_object_and_agent_through_the_episode():
    first = push_scene((12, 10), (12, 4))
    cost = DesignatedPushCost(search_radius=2.0)
    goal = cost.observe(DesignatedGoal((12, 10), (12, 18), agent=(12, 4)), first)  # binds the first frame
    assert goal.image is first and goal.object_now == (12.0, 10.0)
    for step in range(1, 5):  # the agent walks up to the object, then both move right
        obj_col, agent_col = 10 + max(step - 2, 0), 4 + 2 * step if step <= 2 else 8 + (step - 2)
        goal = cost.observe(goal, push_scene((12, obj_col), (12, agent_col)))
        assert goal.object_now == pytest.approx((12.0, obj_col), abs=0.3)
        assert goal.agent_now == pytest.approx((12.0, agent_col), abs=0.3)
    assert goal.source == (12.0, 10.0)  # the designation itself is unchanged


def test_mpc_agent_updates_a_tracked_goal_with_every_observation():
    from gymnasium import spaces

    from agents.models import CopyLastFrameModel
    from agents.mpc import MPCAgent

    agent = MPCAgent(CopyLastFrameModel(), DesignatedObjectCost(search_radius=2.0), "cem", horizon=2,
                     replan_every=2, action_space=spaces.Box(-1, 1, (2,)))
    to_uint8 = lambda f: (f.movedim(0, -1).numpy() * 255).astype(np.uint8)  # noqa: E731
    agent.reset({"image": to_uint8(scene([(5, 5)])[0])}, goal=DesignatedGoal((5, 5), (9, 9)))
    for col in (5, 6, 7):  # the second step does not plan (replan_every=2): it still observes
        agent.act({"image": to_uint8(scene([(5, col)])[0])})
        assert agent.goal.object_now == pytest.approx((5.0, col), abs=0.3)


def test_designated_push_cost_config_names_what_is_missing():
    cost = build_cost({"name": "designated_push", "source": [3, 4], "target": [10, 12], "agent": [3, 1]})
    assert isinstance(cost, DesignatedPushCost) and cost.goal_for_env(object(), (SIZE, SIZE)).agent == (3.0, 1.0)
    with pytest.raises(ConfigError, match="cost.agent"):
        build_cost({"name": "designated_push", "source": [3, 4], "target": [10, 12]})
    with pytest.raises(ConfigError, match="cost.agent goes with"):
        cost_config({"name": "designated_push", "agent": [3, 1]})
    with pytest.raises(ConfigError, match="designates none"):
        build_cost("designated_push").goal_for_env(type("Env", (), {"designate": lambda self, s: ((1, 1), (2, 2))})(),
                                                   (SIZE, SIZE))
    with pytest.raises(ConfigError, match="agent's pixel"):
        build_cost("designated_push")(torch.zeros(1, 1, 3, SIZE, SIZE), DesignatedGoal((1, 1), (2, 2)))
    with pytest.raises(ConfigError, match="agent_patch_size"):
        DesignatedPushCost(agent_patch_size=4)


def test_the_designated_pixel_is_reported_to_sub_pixel_precision():
    # The patch is cut around the rounded pixel; the cost reports the pixel the user gave.
    first = scene([(8, 8)])[0]
    cost = DesignatedObjectCost(search_radius=2.0)
    goal = DesignatedGoal((8.4, 7.7), (8.4, 7.7)).with_observation(first)
    assert float(cost(first[None, None], goal)) == pytest.approx(0.0, abs=0.05)
    assert cost.observe(goal, first).object_now == pytest.approx((8.4, 7.7), abs=0.05)
