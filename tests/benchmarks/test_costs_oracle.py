"""benchmarks/costs_oracle.py: a smoke run plans on the goals that --seeds names."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("mujoco")


def test_costs_oracle_plans_on_the_given_seeds(tmp_path):
    from benchmarks.costs_oracle import main

    out = tmp_path / "costs_oracle.json"
    assert main(["--env", "mbvc/Push-v0", "--costs", "goal_image", "--seeds", "7,10-11", "--planner", "icem",
                 "--population", "4", "--iterations", "1", "--horizon", "2", "--image-size", "16",
                 "--env-kwargs", '{"episode_length": 1}', "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["seeds"] == [7, 10, 11]
    assert [r["cost"] for r in report["rows"]] == ["goal_image"] and report["rows"][0]["episodes"] == 3
