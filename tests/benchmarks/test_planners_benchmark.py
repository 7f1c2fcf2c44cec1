"""benchmarks/planners.py: a smoke run gives every planner the same evaluations per plan."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("mujoco")


def test_quick_run_compares_planners_at_equal_evaluations(tmp_path):
    from benchmarks.planners import main

    out = tmp_path / "planners.json"
    assert main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert {(r["planner"], r["budget"]) for r in rows} == {(p, b) for p in ("cem", "icem", "mppi") for b in (6, 12)}
    for budget in (6, 12):
        assert {r["evaluations_per_plan"] for r in rows if r["budget"] == budget} == {budget}
    assert all(r["plan_ms_per_step"] > 0 and r["episodes"] == 2 for r in rows)
    assert "| planner |" in out.with_suffix(".md").read_text()
