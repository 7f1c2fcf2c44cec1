"""What a world model's output stage costs: training iterations and plans, side by side.

The push demo's model (preset ``push-demo``) is built with each output stage (pixels, flow;
without the preset's state readout) and with pixels and the readout (the preset), and their training
iterations (batch 8, 12 frames, Adam) and planning rollouts (encode once, 3 iterations x 67
candidates x 10 steps, one thread as a plan worker has) are timed interleaved in one process, so
that load from elsewhere hits all alike. Figures are medians and ratios to the pixel model.

Usage:
    python benchmarks/output_stage_speed.py                 # writes benchmarks/results/output_stage_speed_cpu.*
    python benchmarks/output_stage_speed.py --repeats 3     # a quick look
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info, save_results  # noqa: E402
from mbvc.config import model_config_from_preset  # noqa: E402
from mbvc.models import CurriculumConfig, build_model, curriculum_mask  # noqa: E402

#: Changes to the preset's model; with a readout the step trains it and the plans return it.
VARIANTS = {"pixels": {"state_targets": ()}, "pixels + readout (the preset)": {},
            "flow": {"output": "flow", "state_targets": ()}}


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(repeats: int, batch: int = 8, candidates: int = 67) -> dict[str, dict[str, float]]:
    """Median seconds per training iteration and per plan of every variant, interleaved."""
    base = model_config_from_preset("push-demo")
    gen = torch.Generator().manual_seed(0)
    frames = torch.rand(batch, base.total_length, base.img_channel, base.img_height, base.img_width, generator=gen)
    actions = torch.rand(batch, base.total_length, base.num_action_ch, generator=gen) * 2 - 1
    plans = torch.rand(candidates, 10, base.num_action_ch, generator=gen) * 2 - 1
    context = frames[:1, : base.input_length]
    states = torch.rand(batch, base.total_length, 6, generator=gen) * 0.4 - 0.2  # table positions, metres
    mask = curriculum_mask(base, CurriculumConfig(), itr=10**6, batch=batch)  # closed loop, as late training
    steps: dict[str, Callable[[], None]] = {}
    rollouts: dict[str, Callable[[], None]] = {}
    for name, changes in VARIANTS.items():
        torch.manual_seed(0)
        model = build_model(dataclasses.replace(base, **changes))
        opt = torch.optim.Adam(model.parameters(), 1e-3)

        readout = bool(model.config.state_targets)

        def step(model: Any = model, opt: Any = opt, readout: bool = readout) -> None:
            out = model(frames, mask, actions, states=states if readout else None)
            opt.zero_grad()
            out.loss.backward()
            opt.step()

        @torch.no_grad()
        def plan(model: Any = model, readout: bool = readout) -> None:
            state = model.encode(context, actions[:1, : base.input_length - 1])
            for _ in range(3):
                model.rollout(state, 10, plans, states=readout)

        steps[name], rollouts[name] = step, plan
    out: dict[str, dict[str, list[float]]] = {name: {"train_s": [], "plan_s": []} for name in VARIANTS}
    threads = torch.get_num_threads()
    for r in range(repeats + 2):  # two warm-up rounds
        for name in VARIANTS:
            torch.set_num_threads(threads)
            t_train = _timed(steps[name])
            torch.set_num_threads(1)  # a plan worker's one thread
            t_plan = _timed(rollouts[name])
            if r >= 2:
                out[name]["train_s"].append(t_train)
                out[name]["plan_s"].append(t_plan)
    torch.set_num_threads(threads)
    return {name: {k: statistics.median(v) for k, v in times.items()} for name, times in out.items()}


def markdown(report: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    rows, base = report["variants"], report["variants"]["pixels"]
    m = report["machine"]
    lines = ["# Output stage: cost per training iteration and per plan", "",
             f"Command: `{report['command']}`. Machine: {m['cpu']}, {m['torch_threads']} torch threads for training, "
             f"1 for planning, torch {m['torch']}, {report['date']}. Medians of {report['repeats']} interleaved rounds.",
             "", f"| world model | training iteration (ms) | vs pixels | plan: 3 x {report['candidates']} x 10 steps (ms) | vs pixels |",
             "| --- | --- | --- | --- | --- |"]
    for name, r in rows.items():
        lines.append(f"| {name} | {1000 * r['train_s']:.1f} | {r['train_s'] / base['train_s']:.2f}x | "
                     f"{1000 * r['plan_s']:.0f} | {r['plan_s'] / base['plan_s']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=20, help="timed rounds (after two warm-up rounds)")
    p.add_argument("--threads", type=int, default=2, help="torch threads for training (the demo's 2)")
    p.add_argument("--candidates", type=int, default=67, help="candidates per planner iteration (the demo's 67)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "output_stage_speed_cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = {"benchmark": "output_stage_speed", "repeats": args.repeats, "candidates": args.candidates, "machine": machine_info("cpu"),
              "command": "python benchmarks/output_stage_speed.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
              "date": time.strftime("%Y-%m-%d %H:%M"), "variants": measure(args.repeats, candidates=args.candidates)}
    save_results(args.out.with_suffix(".json"), report, markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
