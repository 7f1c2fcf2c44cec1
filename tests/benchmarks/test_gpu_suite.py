"""The GPU suite's CPU dry run: the one command a GPU session runs must keep working between them.

``bash benchmarks/gpu_suite.sh --device cpu --tiny`` runs every section (train, planning, eval,
curve; train_fast is CUDA-only) with tiny models and must write every result file with the keys
the Markdown report and the README's GPU figures read. A section that overruns its cap is
killed and recorded as such, keeping what the other sections wrote.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.gpu_report import markdown
from benchmarks.gpu_sections import FULL_PRESETS, PAPER_MSE, extrapolate

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_suite.sh"


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    env["PYTHON"] = sys.executable
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gpu_suite")
    proc = _run("--device", "cpu", "--tiny", "--out-dir", str(out))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return out


def test_dry_run_writes_every_result_file(dry_run: Path) -> None:
    for name in ("gpu_suite.json", "gpu_suite.md", "gpu_curve.json", "gpu_curve.md", "gpu_curve.png"):
        assert (dry_run / name).stat().st_size > 0, name
    results = json.loads((dry_run / "gpu_suite.json").read_text())
    assert results["tiny"] and results["finished"] and results["machine"]["cpu"]
    status = {name: s["status"] for name, s in results["sections"].items()}
    assert status == {"train": "ok", "train_fast": "skipped", "planning": "ok", "eval": "ok", "curve": "ok"}
    md = (dry_run / "gpu_suite.md").read_text()
    for heading in ("## Training step", "## Planning latency", "## Evaluation throughput", "## Training curve"):
        assert heading in md


def test_train_rows_cover_every_preset_and_precision(dry_run: Path) -> None:
    train = json.loads((dry_run / "gpu_suite.json").read_text())["sections"]["train"]
    assert train["matmul_peak"]["tflops"] > 0
    rows = {(r["preset"], r["variant"]): r for r in train["rows"]}
    assert set(rows) == {(p, v) for p in FULL_PRESETS for v in ("reference", "fp32", "tf32", "bf16")}
    for (preset, variant), r in rows.items():
        assert r["it_s"] > 0 and r["flops_per_step"] > 0 and 0 < r["fraction_of_matmul_peak"]
        assert r["ratio_vs_reference"] == pytest.approx(rows[(preset, "reference")]["s_per_it"] / r["s_per_it"])


def test_planning_rows_compare_cem_and_icem_at_equal_model_calls(dry_run: Path) -> None:
    rows = json.loads((dry_run / "gpu_suite.json").read_text())["sections"]["planning"]["rows"]
    assert {(r["preset"], r["precision"], r["planner"]) for r in rows} == {
        (m, p, q) for m in ("push-demo", "bair-predrnn-v2") for p in ("tf32", "bf16") for q in ("cem", "icem")}
    for r in rows:
        assert r["model_calls_per_step"] == r["population"] * r["iterations"]
        assert r["median_ms"] > 0
        assert isinstance(r["meets_target"], bool) == (r["preset"] == "bair-predrnn-v2")
        # counted work: the same per model call for every planner and precision of a model
        assert r["flops_per_step"] > 0 and r["tflops"] == pytest.approx(r["flops_per_step"] / r["median_ms"] / 1e9)
        assert 0 < r["fraction_of_matmul_peak"] and r["ms_at_matmul_peak"] > 0
    per_call = {(r["preset"], r["flops_per_step"] / r["model_calls_per_step"]) for r in rows}
    assert len(per_call) == 2


def test_eval_and_curve_rows(dry_run: Path) -> None:
    sections = json.loads((dry_run / "gpu_suite.json").read_text())["sections"]
    assert [r["case"] for r in sections["eval"]["rows"]] == ["mnist", "bair", "kth"]
    for r in sections["eval"]["rows"]:
        assert r["speedup"] > 0 and r["lpips_speedup"] > 0 and r["all_speedup"] > 0 and r["lpips_agree"]
        assert isinstance(r["meets_target"], bool)
    assert "random weights" in sections["eval"]["lpips_weights"] or sections["eval"]["lpips_weights"] == "real weights"
    curve = sections["curve"]
    assert curve["rows"][0]["iteration"] == 0 and curve["rows"][-1]["iteration"] > 0
    assert curve["extrapolation"]["target_mse"] == PAPER_MSE and curve["final"]["it_per_s"] > 0
    report = json.loads((dry_run / "gpu_curve.json").read_text())
    assert report["schedule"] == "preset" and len(report["curve"]) == len(curve["rows"])


def test_a_section_over_its_cap_is_killed_and_recorded_and_the_others_kept(dry_run: Path, tmp_path: Path) -> None:
    shutil.copytree(dry_run, tmp_path, dirs_exist_ok=True)  # a rerun into the first run's folder
    # The full-size train section on a CPU: its first timed step (mnist-predrnn-v2, 5 warm-up and
    # 20 timed iterations of several seconds each) cannot end within a 16 s budget on any CPU, so
    # the child is killed at its cap. (A tiny section only skips its rows once under 5 s are
    # left and then ends in time on a fast machine, which made a tiny cap test flaky.)
    proc = _run("--device", "cpu", "--sections", "train", "--budget-s", "16", "--out-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "gpu_suite.json").read_text())
    train = results["sections"]["train"]
    # Killed at its cap: depending on the machine's speed, before its first row or after a few.
    measured = [r for r in train.get("rows", []) if "it_s" in r]
    assert train["status"] == "timed_out" and len(measured) < 4 * len(FULL_PRESETS)
    assert results["sections"]["planning"]["status"] == "ok" and results["sections"]["planning"]["rows"]
    assert [r["sections"] for r in results["runs"]] == [["train", "train_fast", "planning", "eval", "curve"], ["train"]]
    md = (tmp_path / "gpu_suite.md").read_text()
    assert "| train | timed_out |" in md and "Earlier runs into this file" in md


def test_help_names_the_device_invocation() -> None:
    proc = _run("--help", timeout=30)
    assert proc.returncode == 0
    for words in ("--prepare", 'carry:     [".whl"]', "timeout_s: 540", "command:   bash benchmarks/gpu_suite.sh"):
        assert words in proc.stdout


def test_unknown_section_is_a_one_line_error() -> None:
    proc = _run("--device", "cpu", "--sections", "train,speed", timeout=60)
    assert proc.returncode == 2 and "--sections" in proc.stderr and "Traceback" not in proc.stderr


def test_extrapolation_fits_a_power_law_and_reports_a_reached_target() -> None:
    curve = [{"iteration": i, "model": {"mse": 400.0 * (i or 1) ** -0.25}} for i in (0, 100, 200, 400, 800, 1600, 3200)]
    ex = extrapolate(curve, it_per_s=20.0)
    fit = ex["power_law"]
    assert fit["b"] == pytest.approx(-0.25) and fit["a"] == pytest.approx(400.0)
    assert fit["iterations_to_target"] == pytest.approx((400.0 / PAPER_MSE) ** 4, rel=1e-6)
    assert ex["minutes_for_paper_iterations"] == pytest.approx(80000 / 20.0 / 60)
    assert ex["reached_at_iteration"] is None
    flat = extrapolate([{"iteration": i, "model": {"mse": 40.0}} for i in (0, 10, 20, 30, 40, 50)], it_per_s=1.0)
    assert flat["power_law"] is None and flat["reached_at_iteration"] == 10
    # a short, nearly flat curve far above the target (a tiny dry run): no overflow, no guess
    creep = extrapolate([{"iteration": i, "model": {"mse": 300.0 - 1e-3 * i}} for i in range(0, 70, 10)], it_per_s=1.0)
    assert creep["power_law"] is None and "too slowly" in creep["power_law_note"]
    md = markdown({"sections": {"curve": {"rows": [{"iteration": 0, "train_s": 0, "train_loss": None, "mse": 40.0,
                                                    "ssim": 0.9, "psnr": 20.0}], "extrapolation": ex}}})
    assert "a guess, not a measurement" in md
