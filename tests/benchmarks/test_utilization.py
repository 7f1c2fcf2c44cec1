"""benchmarks/utilization.py: GFLOP/s of training steps and plans against a same-run sgemm."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from benchmarks.utilization import QUICK, RandomSequences, main, train_flops


@pytest.fixture(autouse=True)
def _keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_quick_run_writes_train_rows_and_plan_rows_only_where_a_preset_plans(tmp_path):
    out = tmp_path / "util.json"
    argv = ["--quick", "--presets", "mnist-predrnn-v2-small,push-demo", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["complete"] and report["threads"] == 1 and report["sgemm_size"] == 128
    assert report["command"] == "python benchmarks/utilization.py " + " ".join(argv)
    assert {(r["preset"], r["kind"]) for r in report["rows"]} == {
        ("mnist-predrnn-v2-small", "train"), ("push-demo", "train"), ("push-demo", "plan")}
    for r in report["rows"]:
        assert r["gflop"] > 0 and r["ms"] > 0 and r["sgemm_gflops"] > 0
        assert math.isclose(r["gflops"], r["gflop"] / (r["ms"] / 1000))
        assert math.isclose(r["fraction"], r["gflops"] / r["sgemm_gflops"])
        assert r["meets_target"] == (r["fraction"] >= 0.6)
    plan = next(r for r in report["rows"] if r["kind"] == "plan")
    assert plan["evaluations"] == 8 * 2  # the quick plan's population x iterations
    assert plan["cost"].startswith("goal_image")  # push's cost needs the training rollouts
    md = out.with_suffix(".md").read_text()
    assert report["command"] in md and "| push-demo | plan |" in md and "fraction" in md


@pytest.mark.parametrize("preset, extra", [("mnist-predrnn-v2-small", ["train.reverse_input=true"]),
                                           ("push-demo", [])])
def test_counted_flops_are_those_of_the_trainers_real_step(tmp_path, preset, extra):
    from torch.utils.flop_counter import FlopCounterMode

    from mbvc.config import load_run_config
    from mbvc.models import build_model
    from mbvc.training.trainer import Trainer

    torch.set_num_threads(1)
    run = load_run_config(preset, [*QUICK, *extra])
    cfg = dataclasses.replace(run.train, device="cpu", progress=False)
    trainer = Trainer(build_model(run.model), cfg, RandomSequences(run.model, 2, uint8=True), tmp_path)
    with FlopCounterMode(display=False) as counter:
        trainer.step()
    one_update = train_flops(load_run_config(preset, QUICK))
    assert train_flops(run) == counter.get_total_flops() > 0
    assert train_flops(run) == (2 if extra else 1) * one_update  # reverse_input: a second update


def test_unknown_preset_is_one_line_naming_it(capsys, tmp_path):
    assert main(["--quick", "--presets", "push-dmeo", "--out", str(tmp_path / "u.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "'push-dmeo'" in err and "Did you mean 'push-demo'?" in err
    assert not (tmp_path / "u.json").exists()


def test_nonpositive_steps_is_one_line(capsys, tmp_path):
    assert main(["--quick", "--presets", "push-demo", "--steps", "0", "--out", str(tmp_path / "u.json")]) == 2
    assert capsys.readouterr().err.strip() == "benchmarks/utilization.py: error: --steps must be a positive integer, got 0"


def test_random_sequences_have_the_presets_shapes_and_range():
    from mbvc.config import load_run_config

    run = load_run_config("push-demo", QUICK)
    item = RandomSequences(run.model, 3, uint8=False)[1]
    assert item["frames"].shape == (4, 3, 16, 16) and item["actions"].shape == (4, 2)
    assert 0 <= item["frames"].min() and item["frames"].max() <= 1 and item["frames"].dtype == torch.float32
    assert RandomSequences(run.model, 3, uint8=True)[0]["frames"].dtype == torch.uint8
    assert "actions" not in RandomSequences(load_run_config("mnist-predrnn-v2-small", QUICK).model, 2, True)[0]
