"""benchmarks/forecasting.py on its tiny configuration: every file, every row, every metric."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import forecasting


def test_tiny_run_writes_every_file(tmp_path: Path, lpips_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBVC_LPIPS_DIR", str(lpips_dir))  # random weights: fast and always present
    threads = torch.get_num_threads()
    try:
        assert forecasting.main(["--tiny", "--out", str(tmp_path / "fc"), "--runs-dir", str(tmp_path / "runs")]) == 0
    finally:
        torch.set_num_threads(threads)
    for suffix in (".json", ".md", ".png"):
        assert (tmp_path / f"fc_mnist{suffix}").stat().st_size > 0
    report = json.loads((tmp_path / "fc_mnist.json").read_text())
    assert (report["context"], report["short_horizon"], report["long_horizon"]) == (10, 10, 30)
    labels = [row["label"] for row in report["rows"]]
    assert labels == ["PredRNN", "PredRNN-V2", "ConvLSTM", "copy-last-frame", "mean-frame"]
    for row in report["rows"]:
        assert set(row["per_frame"]) == set(forecasting.METRICS)
        assert all(len(v) == 30 for v in row["per_frame"].values())
        assert all(row[span][m] is not None for span in ("short", "long") for m in forecasting.METRICS)
        if row["kind"] == "model":
            assert row["cost"]["parameters"] > 0 and row["cost"]["flops_per_sequence"] > 0
            assert row["cost"]["frames_per_s"] > 0 and row["training"]["iterations"] == 2
    # The two LPIPS conventions are different numbers on the same predictions.
    assert report["rows"][3]["short"]["lpips_01"] != report["rows"][3]["short"]["lpips_pm1"]
    markdown = (tmp_path / "fc_mnist.md").read_text()
    assert "LPIPS [0,1]" in markdown and "LPIPS [-1,1]" in markdown and "## 10 -> 30" in markdown
