"""benchmarks/train_budget.py with a fixed iteration count: reproducible, the schedule scaled to the count."""
from __future__ import annotations

import json

TINY = ["--set", "model.num_hidden=[4,4]", "--set", "train.batch_size=2", "--set", "eval.batch_size=4",
        "--test-size", "4", "--evals", "2", "--iterations", "4"]


def test_fixed_iterations_run_is_reproducible_and_scales_the_curriculum(tmp_path):
    from benchmarks.train_budget import main

    curves = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main([*TINY, "--run-dir", str(tmp_path / f"run-{name}"), "--out", str(out)]) == 0
        report = json.loads(out.with_suffix(".json").read_text())
        curves.append([(p["iteration"], p["model"]["mse"]) for p in report["curve"]])
    assert [it for it, _ in curves[0]] == [0, 2, 4]  # iteration 0, then --evals points over the 4 iterations
    assert curves[0] == curves[1]  # seeded: the same scores, whatever the machine's load
    train = report["config"]["train"]
    # the preset's 1000 iterations with s1 = 100, s2 = 600, warm-up 50, scaled to 4
    assert train["iterations"] == 4 and train["curriculum"]["r_sampling_step_1"] == 1
    assert train["curriculum"]["r_sampling_step_2"] == 2 and train["warmup_iters"] == 1
    assert report["iterations"] == 4 and report["budget_min"] is None
    assert out.with_suffix(".md").read_text().startswith("# Training for 4 iterations")


def test_a_run_folder_already_used_is_refused_in_one_line(tmp_path, capsys):
    from benchmarks.train_budget import main

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("model: {}\n")  # what a started run leaves first
    assert main([*TINY, "--run-dir", str(run_dir), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("benchmarks/train_budget.py: error:") and str(run_dir) in err and "\n" not in err
    assert not (tmp_path / "out.json").exists()


def test_a_time_budget_goes_through_train_time_budget_min(tmp_path):
    """The benchmark's budget is the library's one (``train.time_budget_min``): it fixes the count first."""
    from benchmarks.train_budget import main

    args = TINY[:-2]  # without --iterations 4
    out = tmp_path / "budget"
    assert main([*args, "--budget-min", "0.02", "--run-dir", str(tmp_path / "run"), "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["budget_min"] == 0.02 and report["fitted_iterations"] >= 1
    assert report["config"]["train"]["time_budget_min"] == 0.02
    assert report["curve"][-1]["iteration"] == report["fitted_iterations"]  # trained the fitted count, no more
