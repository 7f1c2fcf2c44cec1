"""benchmarks/designated_replay.py: the per-step record of where a designated cost saw the object."""
from __future__ import annotations

import pytest

pytest.importorskip("mujoco")


def test_replay_records_the_true_and_tracked_pixels_of_every_step():
    from agents.costs.designated import DesignatedPushCost
    from agents.models import CopyLastFrameModel
    from agents.mpc import MPCAgent
    from agents.plan import make_env
    from benchmarks.designated_replay import replay_episode

    env = make_env("mbvc/Push-v0", 32, {"episode_length": 3})
    agent = MPCAgent(CopyLastFrameModel(), DesignatedPushCost(), "cem", horizon=2, replan_every=1,
                     action_space=env.action_space, image_size=(32, 32))
    try:
        record = replay_episode(agent, env, seed=3)
    finally:
        env.close()
    assert record["seed"] == 3 and len(record["steps"]) == 3
    step = record["steps"][0]
    assert set(step) == {"object", "object_seen", "agent", "agent_seen"}
    # In the real first observation the cost finds what the env says a user would click.
    assert record["object_error"]["max"] >= record["object_error"]["mean"]
    assert step["object_seen"] == pytest.approx(step["object"], abs=1.5)
    assert step["agent_seen"] == pytest.approx(step["agent"], abs=1.5)
