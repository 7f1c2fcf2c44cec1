"""benchmarks/output_stage_speed.py: every output stage timed side by side, ratios to the pixel model."""
from __future__ import annotations

import json


def test_every_variant_is_timed_and_tabulated(tmp_path):
    from benchmarks.output_stage_speed import VARIANTS, main

    assert main(["--repeats", "1", "--candidates", "2", "--threads", "1", "--out", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["variants"]) == set(VARIANTS)
    assert all(v["train_s"] > 0 and v["plan_s"] > 0 for v in report["variants"].values())
    text = (tmp_path / "r.md").read_text()
    assert "| pixels | " in text and "1.00x" in text and "3 x 2 x 10 steps" in text
