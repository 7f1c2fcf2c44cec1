"""Train a preset for a wall-clock budget on this machine and record quality against time.

The CPU "reach past the reference" run: PredRNN-V2 (``mnist-predrnn-v2-small``) on Moving MNIST
generated from the packaged digits, trained for ``--budget-min`` minutes of *training* time
through the library's ``train.time_budget_min``: the real training iteration is timed before the
run and the iteration count fitted to the budget (evaluations are timed separately and do not
eat into it), or for exactly ``--iterations`` iterations. At ``--evals`` points spread over the
iterations, and at iteration 0, the model is scored on a fixed, seeded test set
(``--test-size`` sequences, ``context -> horizon`` from the preset's eval section, 10 -> 10 for
Moving MNIST): MSE / MAE (summed per frame), PSNR, SSIM, and LPIPS when its weights are
present (else its unavailability and the reason are recorded), next to the copy-last-frame and
mean-frame baselines on the same sequences.

With a budget the learning rate follows the preset's warm-up, then a cosine decay over the
fitted iterations (``--schedule cosine``, i.e. ``train.lr_schedule=cosine``), ending at
``lr * min_lr_ratio``, or the preset's own schedule (``--schedule preset``). Everything else
(curriculum, clipping, optimiser) is the preset's.

Writes ``<out>.json`` (every figure, the config, the command and machine info: CPU count,
load average, torch threads), ``<out>.md`` (tables) and ``<out>.png`` (curves), and the trained
model in ``--run-dir`` (``model.safetensors``, usable by ``mbvc test`` / ``mbvc predict``).

Usage:
    nohup python benchmarks/train_budget.py --threads 1 > train_budget.log 2>&1 &   # 20 min
    python benchmarks/train_budget.py --budget-min 2 --evals 2 --test-size 64 --out runs/trial
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine_info  # noqa: E402
from mbvc.errors import MbvcError  # noqa: E402
from mbvc.io import atomic_write, write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("mse", "mae", "psnr", "ssim", "lpips")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="mnist-predrnn-v2-small")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="preset override (repeatable), e.g. train.batch_size=4")
    p.add_argument("--budget-min", type=float, default=20.0, help="training wall-clock budget, minutes")
    p.add_argument("--iterations", type=int, default=None, metavar="N",
                   help="train exactly N iterations instead of a time budget (reproducible): the preset's own "
                        "learning-rate schedule over N, its curriculum and warm-up scaled to N")
    p.add_argument("--evals", type=int, default=8,
                   help="evaluations spread evenly over the iterations (plus one at 0)")
    p.add_argument("--eval-every", type=int, default=None, metavar="N",
                   help="evaluate every N iterations instead of --evals points spread over the run")
    p.add_argument("--schedule", choices=("cosine", "preset"), default="cosine",
                   help="with a budget: warm-up then cosine over the fitted iterations, or the preset's own schedule")
    p.add_argument("--test-size", type=int, default=256, help="fixed, seeded test sequences")
    p.add_argument("--test-seed", type=int, default=1234, help="seed of the generated test set")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--run-dir", type=Path, help="where the model goes (default runs/train-budget-<time>)")
    p.add_argument("--out", type=Path, default=RESULTS / "train_budget_cpu",
                   help="output stem: <out>.json, <out>.md, <out>.png")
    args = p.parse_args(argv)
    if args.iterations is not None and args.iterations < 1:
        p.error(f"--iterations must be >= 1, got {args.iterations}")
    return args


def scaled_overrides(cfg: Any, iterations: int) -> list[str]:
    """``train.*`` overrides that run ``iterations`` with the preset's curriculum and warm-up
    compressed (or stretched) in the preset's own proportions."""
    factor, cur = iterations / cfg.train.iterations, cfg.train.curriculum
    scale = lambda v: max(1, round(v * factor))  # noqa: E731
    return [f"train.iterations={iterations}", f"train.warmup_iters={scale(cfg.train.warmup_iters)}",
            f"train.curriculum.r_sampling_step_1={scale(cur.r_sampling_step_1)}",
            f"train.curriculum.r_sampling_step_2={max(scale(cur.r_sampling_step_2), scale(cur.r_sampling_step_1) + 1)}",
            f"train.curriculum.r_exp_alpha={scale(cur.r_exp_alpha)}"]


def budget_machine(threads: int) -> dict[str, Any]:
    """What the figures depend on: CPUs, their load, torch's threads."""
    info = machine_info()
    return {**info, "threads_requested": threads, "load_average_start": info["load_average"]}


def score(result: Any) -> dict[str, dict[str, float | None]]:
    """Per-method means over future frames (None when a metric is absent)."""
    out = {}
    for method, metrics in result.per_frame.items():
        out[method] = {m: (result.mean(method, m) if m in metrics else None) for m in METRICS}
    return out


def plot(curve: list[dict[str, Any]], baselines: dict[str, dict[str, Any]], path: Path) -> None:
    """MSE and SSIM of the model against training minutes, baselines as horizontal lines."""
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    minutes = [p["train_s"] / 60 for p in curve]
    iters = [p["iteration"] for p in curve]
    for ax, metric, label in zip(axes, ("mse", "ssim", "psnr"), ("MSE / frame (lower is better)",
                                                                 "SSIM (higher is better)", "PSNR dB")):
        ax.plot(minutes, [p["model"][metric] for p in curve], "-o", markersize=3, label="PredRNN-V2 small")
        for name, style in (("copy_last", "--"), ("mean_frame", ":")):
            ax.axhline(baselines[name][metric], linestyle=style, color="grey" if name == "copy_last" else "k",
                       label=name.replace("_", "-"))
        ax.set_xlabel("training minutes")
        ax.set_title(label, fontsize="medium")
        ax.grid(alpha=0.3)
        if len(iters) > 1 and minutes[-1] > 0:
            top = ax.secondary_xaxis("top", functions=(lambda m: np.interp(m, minutes, iters),
                                                        lambda i: np.interp(i, iters, minutes)))
            top.set_xlabel("iterations", fontsize="small")
    axes[0].legend(fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables."""
    b, m, fin = report["baselines"], report["machine"], report["final"]
    lp = report["lpips"]
    what = (f"{report['iterations']} iterations" if report.get("iterations")
            else f"a {report['budget_min']:g}-minute budget"
            + (f" ({report['fitted_iterations']} iterations fitted to it)" if report.get("fitted_iterations") else ""))
    lines = [
        f"# Training for {what} on {report.get('device_label', 'CPU')}: {report['preset']}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Model: {report['model_summary']}; {report['parameters']:,} parameters. "
        f"Test set: {report['test_size']} generated Moving MNIST sequences (seed {report['test_seed']}), "
        f"{report['context']} -> {report['horizon']} frames; figures are means over future frames "
        "(MSE/MAE summed per frame, [0, 1] scale).",
        "",
        f"Machine: {m['cpu']}, {m['cpus_usable']} usable CPUs of {m['cpu_count']}, torch threads "
        f"{m['torch_threads']}, load average {m['load_average_start'][0]:.2f} at start, "
        f"{m['load_average_end'][0]:.2f} at end (the machine was shared).",
        "",
        "| iteration | train min | wall min | train loss | MSE ↓ | MAE ↓ | PSNR ↑ | SSIM ↑ | LPIPS ↓ |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def f(x: float | None, d: int = 2) -> str:
        return "n/a" if x is None else f"{x:.{d}f}"

    if any("raw_weights" in p for p in report["curve"]):  # train.ema_decay: the average is the model
        lines[-2] = lines[-2].rstrip(" |") + " | MSE, raw weights | SSIM, raw weights |"
        lines[-1] += " --- | --- |"

    for p in report["curve"]:
        s = p["model"]
        lines.append(f"| {p['iteration']} | {p['train_s'] / 60:.1f} | {p['wall_s'] / 60:.1f} | "
                     f"{f(p['train_loss'], 4)} | {f(s['mse'])} | {f(s['mae'])} | {f(s['psnr'])} | "
                     f"{f(s['ssim'], 4)} | {f(s['lpips'], 4)} |"
                     + (f" {f(p['raw_weights']['mse'])} | {f(p['raw_weights']['ssim'], 4)} |" if "raw_weights" in p else ""))
    for name in ("copy_last", "mean_frame"):
        s = b[name]
        lines.append(f"| {name.replace('_', '-')} baseline | | | | {f(s['mse'])} | {f(s['mae'])} | "
                     f"{f(s['psnr'])} | {f(s['ssim'], 4)} | {f(s['lpips'], 4)} |")
    lines += [
        "",
        f"Final (iteration {fin['iteration']}, {fin['train_s'] / 60:.1f} training minutes, "
        f"{fin['it_per_s']:.2f} it/s): MSE {fin['model']['mse']:.2f} = "
        f"{100 * report['mse_vs_copy_last']:.0f}% of copy-last-frame and "
        f"{100 * report['mse_vs_mean_frame']:.0f}% of mean-frame; "
        f"SSIM {fin['model']['ssim']:.4f} vs {b['copy_last']['ssim']:.4f} (copy-last).",
        "",
        *(["Iteration 0 is the untrained model (near-black output). On Moving MNIST copy-last-frame pays "
            "for each moved digit twice (where it was and where it is), so mean-frame and iteration 0 are the "
            "fairer MSE yardsticks; SSIM punishes a blurry prediction's faint background haze.", ""]
          if "mnist" in report["preset"] else []),
        f"LPIPS: {'computed' if lp['available'] else 'unavailable'}"
        + ("" if lp["available"] else f" ({lp['reason']})") + ".",
        "",
        f"Evaluation time (not in the budget): {report['eval_s'] / 60:.1f} min over {len(report['curve'])} evaluations.",
        "",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace, argv: list[str] | None = None,
        on_point: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train for the budget, evaluating along the way; return the report (nothing is written).

    Args:
        args: from :func:`parse_args`.
        argv: the command-line arguments, recorded in the report.
        on_point: called with each curve point as soon as it is measured (partial results).
    """
    torch.set_num_threads(args.threads)
    from torch.utils.data import DataLoader

    from mbvc.config import load_run_config
    from mbvc.data import build_dataset
    from mbvc.evaluation import evaluate, resolve_lpips
    from mbvc.models import save_model
    from mbvc.training.setup import build_trainer, prepare_run_dir

    machine = budget_machine(args.threads)
    fixed = args.iterations is not None
    if fixed:  # an iteration count stops the run; the preset's schedule and curriculum scaled to it
        schedule = scaled_overrides(load_run_config(args.preset, args.overrides), args.iterations)
    else:  # train.time_budget_min fits the iteration count to the budget before the run
        schedule = [f"train.time_budget_min={args.budget_min}",
                    *(["train.lr_schedule=cosine"] if args.schedule == "cosine" else [])]
    overrides = [*schedule, *args.overrides, f"train.device={args.device}", "train.progress=false",
                 "train.tensorboard=false", "train.checkpoint_interval=100000000"]
    cfg = load_run_config(args.preset, overrides)
    run_dir = args.run_dir or Path("runs") / f"train-budget-{time.strftime('%Y%m%d-%H%M%S')}"
    prepare_run_dir(run_dir, cfg, resume=False)
    train_set = build_dataset(cfg.data_for("train"), "train")
    # Test digits come from a pool disjoint from the training digits; the seed fixes the set.
    test_cfg = dataclasses.replace(cfg.data_for("test"), test_size=args.test_size, seed=args.test_seed)
    test_set = build_dataset(test_cfg, "test")
    loader = DataLoader(test_set, batch_size=cfg.eval.batch_size, shuffle=False)
    trainer = build_trainer(cfg, run_dir, datasets=(train_set, None))
    trainer.logger.writers = [w for w in trainer.logger.writers if type(w).__name__ != "LoggingWriter"]
    device = trainer.device
    lpips_module, lpips_status = resolve_lpips(cfg.eval, device)
    eval_cfg = cfg.eval.replace(lpips=lpips_status.available)
    iterations = args.iterations if fixed else trainer.fit_time_budget()

    clock = {"train_s": 0.0}
    marks = [] if args.eval_every else [iterations * (i + 1) / args.evals for i in range(args.evals)]
    curve: list[dict[str, Any]] = []
    baselines: dict[str, Any] = {}
    eval_s, losses, start = 0.0, [], time.monotonic()

    def checkpoint() -> None:
        nonlocal eval_s, losses
        t0 = time.monotonic()
        result = evaluate(trainer.inference_model, loader, eval_cfg, device=device, lpips_module=lpips_module)
        # with train.ema_decay the raw weights are scored too: the average's gain in the same run
        raw = (score(evaluate(trainer.model, loader, eval_cfg, device=device, lpips_module=lpips_module))["model"]
               if trainer.ema is not None else None)
        eval_s += time.monotonic() - t0
        scores = score(result)
        baselines.update({k: v for k, v in scores.items() if k != "model"})
        point = {"iteration": trainer.iteration, "train_s": clock["train_s"],
                 "wall_s": time.monotonic() - start, "eval_s": time.monotonic() - t0,
                 "lr": trainer.scheduler.get_last_lr()[0],
                 "train_loss": sum(losses) / len(losses) if losses else None,
                 "load_average": os.getloadavg()[0], "model": scores["model"],
                 **({"raw_weights": raw} if raw is not None else {}),
                 "per_frame_mse": result.per_frame["model"]["mse"]}
        curve.append(point)
        losses = []
        if on_point is not None:
            on_point(point)
        s = scores["model"]
        print(f"[{point['wall_s'] / 60:5.1f} min wall, {clock['train_s'] / 60:5.1f} train] it {trainer.iteration:5d} "
              f"loss {point['train_loss'] or float('nan'):.4f} | MSE {s['mse']:.2f} SSIM {s['ssim']:.4f} "
              f"PSNR {s['psnr']:.2f} | copy-last MSE {baselines['copy_last']['mse']:.2f} "
              f"mean-frame MSE {baselines['mean_frame']['mse']:.2f} | load {point['load_average']:.2f}", flush=True)

    checkpoint()
    while trainer.iteration < iterations:
        t0 = time.monotonic()
        loss, *_ = trainer.step()
        clock["train_s"] += time.monotonic() - t0
        losses.append(loss)
        if args.eval_every and trainer.iteration % args.eval_every == 0:
            checkpoint()
        elif marks and trainer.iteration >= marks[0]:
            while marks and trainer.iteration >= marks[0]:
                marks.pop(0)
            checkpoint()
    if curve[-1]["iteration"] != trainer.iteration:
        checkpoint()
    model_path = save_model(trainer.inference_model, run_dir / "model.safetensors", trainer.model_metadata())
    trainer.logger.close()

    machine["load_average_end"] = list(os.getloadavg())
    final = dict(curve[-1])
    final["it_per_s"] = trainer.iteration / max(clock["train_s"], 1e-9)
    mcfg = cfg.model
    report = {
        "benchmark": "train_budget",
        "command": "python benchmarks/train_budget.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "preset": args.preset, "overrides": args.overrides, "budget_min": None if fixed else args.budget_min,
        "iterations": args.iterations, "fitted_iterations": None if fixed else iterations,
        "seconds_per_iteration": trainer.seconds_per_iteration,
        "device_label": "CPU" if device.type == "cpu" else torch.cuda.get_device_name(device),
        "schedule": "preset" if fixed else args.schedule, "eval_every": args.eval_every,
        "model_summary": (f"{mcfg.name} hidden {list(mcfg.num_hidden)}, filter {mcfg.filter_size}, patch "
                          f"{mcfg.patch_size}, {mcfg.img_width}x{mcfg.img_height}, trained {mcfg.input_length} -> "
                          f"{mcfg.total_length}, batch {cfg.train.batch_size}, lr {cfg.train.lr}"),
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "test_size": args.test_size, "test_seed": args.test_seed,
        "context": eval_cfg.context, "horizon": eval_cfg.horizon,
        "lpips": {"available": lpips_status.available, "reason": lpips_status.reason,
                  "convention": lpips_status.convention},
        "machine": machine, "eval_s": eval_s, "wall_s": time.monotonic() - start,
        "curve": curve, "final": final, "baselines": baselines,
        "mse_vs_copy_last": final["model"]["mse"] / baselines["copy_last"]["mse"],
        "mse_vs_mean_frame": final["model"]["mse"] / baselines["mean_frame"]["mse"],
        "model_path": str(model_path), "config": cfg.to_dict(),
    }
    return report


def write_report(report: dict[str, Any], out: Path) -> None:
    """``<out>.json``, ``<out>.md`` and, where matplotlib is installed, ``<out>.png``."""
    write_json(out.with_suffix(".json"), report)
    with atomic_write(out.with_suffix(".md"), "w") as f:
        f.write(markdown(report))
    try:
        plot(report["curve"], report["baselines"], out.with_suffix(".png"))
    except ImportError as exc:  # matplotlib is optional on benchmark machines
        logging.getLogger(__name__).warning("no curve plot: %s", exc)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    try:
        report = run(args, argv)
    except MbvcError as exc:  # bad input (a taken run folder, a wrong --set): one line, no traceback
        print(f"benchmarks/train_budget.py: error: {exc}", file=sys.stderr)
        return 2
    final, out = report["final"], args.out
    write_report(report, out)
    print(f"final MSE {final['model']['mse']:.2f} ({100 * report['mse_vs_copy_last']:.0f}% of copy-last-frame); "
          f"wrote {out.with_suffix('.json')}, .md, .png; model {report['model_path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
