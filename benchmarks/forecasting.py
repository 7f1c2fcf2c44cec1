"""Forecasting table to set beside the papers: PredRNN, PredRNN-V2, ConvLSTM and two baselines.

For one dataset, every model is trained ``context -> short`` with the library's trainer (the
functions ``mbvc train`` calls) for a fixed number of iterations, then scored with
:func:`mbvc.evaluation.evaluate` on one fixed test set out to a long horizon. The models are
autoregressive and deterministic, so the first ``short`` frames of the long rollout are exactly
the ``context -> short`` predictions: one rollout gives both figures, and the per-frame curves
show how the error grows past the training horizon.

* Moving MNIST: 10 -> 10 and 10 -> 30 (generated from the packaged digits; ``--test-size``
  sequences, seeded).
* KTH (``--kth PATH``): 10 -> 20 and 10 -> 40; BAIR (``--bair PATH``): 2 -> 10 and 2 -> 28,
  on their test splits (``--max-test-batches`` caps them).

Metrics per future frame: MSE and MAE (summed over pixels, the papers' convention), PSNR, SSIM
and AlexNet-LPIPS v0.1 in both input conventions: ``[0, 1]`` (what the PredRNN papers' code
feeds) and ``[-1, 1]`` (the ``lpips`` package's). Beside each model: parameters, FLOPs of one
``context -> short`` forward for one sequence (``torch.utils.flop_counter``, which counts a
multiply-add as 2 FLOPs; OpenSTL's fvcore figures count it as 1), and predicted frames per
second at batch ``--fps-batch``.

Sets:

* ``cpu``: the ``*-small`` presets, ``--iterations`` (default 300) each, curricula compressed
  to that length; minutes per model on one thread.
* ``gpu``: the full presets with their own iteration counts (80,000 for Moving MNIST).

Writes ``benchmarks/results/forecasting_<set>_<dataset>.{json,md,png}`` (``--out`` changes
the stem) and the trained models under ``--runs-dir`` (``--reuse`` evaluates those instead of
training again).

Usage:
    nohup python benchmarks/forecasting.py --set cpu --threads 1 > forecasting.log 2>&1 &
    python benchmarks/forecasting.py --set gpu --device cuda
    python benchmarks/forecasting.py --tiny --out runs/fc   # seconds: checks the plumbing
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
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine_info  # noqa: E402
from mbvc.io import atomic_write, write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
log = logging.getLogger("forecasting")

#: dataset -> (preset prefix, short horizon, long horizon)
DATASETS = {"mnist": ("mnist", 10, 30), "kth": ("kth", 20, 40), "bair": ("bair", 10, 28)}
#: table label -> preset family (``<prefix>-<family>[-small]``); ConvLSTM outside Moving MNIST
#: is the PredRNN preset with ConvLSTM cells.
MODELS = {"PredRNN": "predrnn", "PredRNN-V2": "predrnn-v2", "ConvLSTM": "convlstm"}
BASELINE_LABELS = {"copy_last": "copy-last-frame", "mean_frame": "mean-frame"}
METRICS = ("mse", "mae", "psnr", "ssim", "lpips_01", "lpips_pm1")
HEADERS = {"mse": "MSE ↓", "mae": "MAE ↓", "psnr": "PSNR ↑", "ssim": "SSIM ↑",
           "lpips_01": "LPIPS [0,1] ↓", "lpips_pm1": "LPIPS [-1,1] ↓"}
TINY = ["model.num_hidden=[4,4]", "train.batch_size=2", "eval.batch_size=2", "train.warmup_iters=1"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", dest="suite", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--iterations", type=int, help="training iterations per model (cpu default 300; gpu: the preset's)")
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--test-size", type=int, help="generated Moving MNIST test sequences (cpu default 128; "
                                                 "gpu: the preset's, 3000 as in the reference files)")
    p.add_argument("--test-seed", type=int, default=1234)
    p.add_argument("--kth", type=Path, help="KTH folder: adds the KTH rows")
    p.add_argument("--bair", type=Path, help="BAIR folder: adds the BAIR rows")
    p.add_argument("--no-mnist", action="store_true", help="skip Moving MNIST (with --kth / --bair)")
    p.add_argument("--max-test-batches", type=int, help="cap on KTH/BAIR test batches")
    p.add_argument("--fps-batch", type=int, default=16, help="batch of the frames/s measurement")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--runs-dir", type=Path, help="where trained models go (default runs/forecasting-<set>)")
    p.add_argument("--reuse", action="store_true", help="evaluate models already in --runs-dir instead of training")
    p.add_argument("--tiny", action="store_true", help="tiny models, 2 iterations, 2 test sequences (a check)")
    p.add_argument("--out", type=Path, help="output stem (default benchmarks/results/forecasting_<set>); "
                                            "the dataset name is appended")
    return p.parse_args(argv)


def compressed_curriculum(iterations: int) -> list[str]:
    """Both curricula scaled to a short run: teacher forcing gone by 60% of the iterations."""
    stop = max(2, int(0.6 * iterations))
    return [f"train.curriculum.sampling_stop_iter={stop}",
            f"train.curriculum.sampling_changing_rate={1.0 / stop:.6g}",
            f"train.curriculum.r_sampling_step_1={max(1, iterations // 10)}",
            f"train.curriculum.r_sampling_step_2={max(2, stop)}",
            f"train.curriculum.r_exp_alpha={max(1.0, iterations / 6):.6g}",
            f"train.warmup_iters={max(1, min(50, iterations // 10))}"]


def model_rows(dataset: str, args: argparse.Namespace) -> list[tuple[str, str, list[str]]]:
    """(label, preset, overrides) of each model of ``dataset`` in this set."""
    from mbvc.config import load_run_config, preset_names

    prefix = DATASETS[dataset][0]
    small = "-small" if args.suite == "cpu" or args.tiny else ""
    available = set(preset_names())
    rows = []
    for label in args.models:
        family = MODELS[label]
        overrides: list[str] = []
        preset = f"{prefix}-{family}{small}"
        if preset not in available:  # ConvLSTM where only the PredRNN preset exists
            preset = f"{prefix}-predrnn{small}"
            name = load_run_config(preset).model.name
            overrides.append(f"model.name={name.replace('predrnn', 'convlstm')}")
        if dataset != "mnist":
            overrides.append(f"data.root={getattr(args, dataset)}")
        iterations = 2 if args.tiny else args.iterations or (300 if args.suite == "cpu" else None)
        if iterations is not None:
            overrides += [f"train.iterations={iterations}", *compressed_curriculum(iterations)]
        if args.tiny:
            overrides += TINY
        rows.append((label, preset, overrides))
    return rows


def train_or_load(preset: str, overrides: list[str], run_dir: Path, args: argparse.Namespace
                  ) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """Train with the library trainer (what ``mbvc train`` runs), or load the model of an earlier run."""
    from mbvc.config import load_run_config
    from mbvc.data import build_dataset
    from mbvc.models import load_model
    from mbvc.training.setup import build_trainer, prepare_run_dir

    cfg = load_run_config(preset, [*overrides, f"train.device={args.device}", "train.progress=false",
                                   "train.tensorboard=false", "train.eval_interval=0"])
    cfg = load_run_config(preset, [*overrides, f"train.device={args.device}", "train.progress=false",
                                   "train.tensorboard=false", "train.eval_interval=0",
                                   f"train.checkpoint_interval={cfg.train.iterations}"])
    model_file = run_dir / "model.safetensors"
    if args.reuse and model_file.is_file():
        log.info("reusing %s", model_file)
        return load_model(model_file, args.device), cfg, {"reused": str(model_file)}
    prepare_run_dir(run_dir, cfg, resume=False)
    trainer = build_trainer(cfg, run_dir, datasets=(build_dataset(cfg.data_for("train"), "train"), None))
    result = trainer.fit()
    trainer.logger.close()
    losses = result.losses
    tail = losses[-max(1, len(losses) // 10):]
    info = {"iterations": result.iteration, "train_s": result.elapsed_s,
            "it_per_s": result.iteration / max(result.elapsed_s, 1e-9),
            "first_loss": losses[0] if losses else None, "final_loss_mean_last_10pct": sum(tail) / len(tail),
            "model_path": str(result.model_path)}
    return trainer.model, cfg, info


class Baseline(torch.nn.Module):
    """A parameter-free predictor from :data:`mbvc.evaluation.BASELINES`, scored like a model."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def predict(self, context: torch.Tensor, n_future: int, actions: torch.Tensor | None = None) -> torch.Tensor:
        from mbvc.evaluation.runner import BASELINES

        return BASELINES[self.name](context, n_future)


def cost(model: torch.nn.Module, sample: dict[str, torch.Tensor], context: int, short: int,
         fps_batch: int, device: str) -> dict[str, Any]:
    """Parameters, FLOPs of one ``context -> short`` forward (batch 1) and predicted frames/s."""
    from torch.utils.flop_counter import FlopCounterMode

    frames = sample["frames"].to(device).float()
    frames = frames / 255 if sample["frames"].dtype == torch.uint8 else frames
    actions = sample.get("actions")
    actions = None if actions is None else actions.to(device).float()
    model.eval()
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            model.predict(frames[:1, :context], short, None if actions is None else actions[:1])
        flops = counter.get_total_flops()
        batch = frames[:1, :context].expand(fps_batch, -1, -1, -1, -1).contiguous()
        acts = None if actions is None else actions[:1].expand(fps_batch, -1, -1).contiguous()
        model.predict(batch, short, acts)  # warm-up
        times = []
        for _ in range(3):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model.predict(batch, short, acts)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    best = sorted(times)[1]  # the median of three
    return {"parameters": sum(p.numel() for p in model.parameters()), "flops_per_sequence": flops,
            "flops_per_predicted_frame": flops / short, "frames_per_s": fps_batch * short / best,
            "fps_batch": fps_batch}


def score(model: torch.nn.Module, loader: Any, context: int, long: int, lpips: dict[str, Any],
          device: str) -> tuple[dict[str, list[float]], int, dict[str, Any]]:
    """Per-frame means of every metric out to ``long``; LPIPS in both conventions (two passes)."""
    from mbvc.evaluation import EvalConfig, evaluate

    per_frame: dict[str, list[float]] = {}
    status = {}
    for key, conv in (("lpips_pm1", "standard"), ("lpips_01", "reference")):
        module = lpips.get(conv)
        cfg = EvalConfig(context=context, horizon=long, lpips=module is not None, lpips_convention=conv,
                         baselines=(), num_samples=0)
        result = evaluate(model, loader, cfg, device=device, lpips_module=module)
        values = result.per_frame["model"]
        if conv == "standard":
            per_frame.update({m: values[m] for m in ("mse", "mae", "psnr", "ssim")})
        if "lpips" in values:
            per_frame[key] = values["lpips"]
        status[key] = dataclasses.asdict(result.lpips)
    return per_frame, result.num_sequences, status


def summarise(per_frame: dict[str, list[float]], short: int) -> dict[str, dict[str, float | None]]:
    """Means over the first ``short`` frames and over the whole rollout."""
    out: dict[str, dict[str, float | None]] = {"short": {}, "long": {}}
    for m in METRICS:
        values = per_frame.get(m)
        out["short"][m] = None if values is None else sum(values[:short]) / short
        out["long"][m] = None if values is None else sum(values) / len(values)
    return out


def plot(report: dict[str, Any], path: Path) -> None:
    """Per-frame MSE, SSIM, PSNR and LPIPS ([0, 1]) of every method, training horizon marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.4), layout="constrained")
    axes = fig.subplots(1, 4)
    short = report["short_horizon"]
    for ax, metric in zip(axes, ("mse", "ssim", "psnr", "lpips_01")):
        for row in report["rows"]:
            values = row["per_frame"].get(metric)
            if values:
                style = "--" if row["kind"] == "baseline" else "-"
                ax.plot(range(1, len(values) + 1), values, style, label=row["label"])
        ax.axvline(short + 0.5, color="grey", linewidth=0.8)
        ax.set_xlabel("future frame")
        ax.set_title(HEADERS[metric], fontsize="medium")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.suptitle(f"{report['dataset_title']}: trained {report['context']} -> {short}, "
                 f"rolled out to {report['long_horizon']} (grey line: training horizon)", fontsize="medium")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())


def _fmt(x: float | None, metric: str) -> str:
    if x is None:
        return "n/a"
    return f"{x:.4f}" if metric in ("ssim", "lpips_01", "lpips_pm1") else f"{x:.2f}"


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables."""
    c, s, lg = report["context"], report["short_horizon"], report["long_horizon"]
    m = report["machine"]
    lines = [f"# Forecasting, {report['set']} set: {report['dataset_title']}", "",
             f"Command: `{report['command']}`", "",
             f"Test set: {report['num_sequences']} sequences ({report['test_description']}). Every model is "
             f"trained {c} -> {s} and rolled out to {lg}; the {c} -> {s} columns are the first {s} frames of "
             "that rollout. MSE/MAE are summed per frame over pixels in [0, 1] (the papers' convention), "
             "means over future frames; LPIPS is AlexNet v0.1, with [0, 1] inputs (the PredRNN code's) "
             "and [-1, 1] inputs (the lpips package's).", "",
             f"Machine: {m['cpu']}, {m['cpus_usable']} usable CPUs, torch threads {m['torch_threads']}, "
             f"device {report['device']}, load average {m['load_average'][0]:.2f} at start, "
             f"{report['load_average_end'][0]:.2f} at end (a shared machine: frames/s are indicative only).", ""]
    for span, horizon in (("short", s), ("long", lg)):
        lines += [f"## {c} -> {horizon}", "",
                  "| method | " + " | ".join(HEADERS[x] for x in METRICS) + " |",
                  "| --- |" + " --- |" * len(METRICS)]
        for row in report["rows"]:
            lines.append(f"| {row['label']} | " + " | ".join(_fmt(row[span][x], x) for x in METRICS) + " |")
        lines.append("")
    lines += ["## Models", "",
              "| model | preset | iterations | train min | it/s | params | GFLOPs / sequence | "
              "MFLOPs / frame | frames/s |", "| --- |" + " --- |" * 8]
    for row in report["rows"]:
        if row["kind"] != "model":
            continue
        t, k = row["training"], row["cost"]
        trained = (f"{t['iterations']} | {t['train_s'] / 60:.1f} | {t['it_per_s']:.2f}" if "train_s" in t
                   else "reused | | ")
        lines.append(f"| {row['label']} | {row['preset']} | {trained} | {k['parameters']:,} | "
                     f"{k['flops_per_sequence'] / 1e9:.2f} | {k['flops_per_predicted_frame'] / 1e6:.1f} | "
                     f"{k['frames_per_s']:.1f} |")
    lines += ["", f"FLOPs: one {c} -> {s} forward for one sequence, counted by torch.utils.flop_counter "
              "(a multiply-add is 2 FLOPs); per frame = that / " + f"{s}. Frames/s: predicted frames per second "
              f"at batch {report['rows'][0]['cost']['fps_batch'] if report['rows'] else ''}, median of three.", ""]
    for row in report["rows"]:
        if row["kind"] == "model":
            lines.append(f"- {row['label']}: {row['summary']}; overrides `{' '.join(row['overrides'])}`.")
    lines.append("")
    return "\n".join(lines)


def run_dataset(dataset: str, args: argparse.Namespace, lpips: dict[str, Any], machine: dict[str, Any],
                command: str) -> Path:
    """Train, score and write the report of one dataset; returns the JSON path."""
    from torch.utils.data import DataLoader, Subset

    from mbvc.config import load_run_config
    from mbvc.data import build_dataset

    _, short, long = DATASETS[dataset]
    rows_spec = model_rows(dataset, args)
    runs = args.runs_dir or Path("runs") / f"forecasting-{'tiny' if args.tiny else args.suite}"
    # One test set for every method: the first model's data config, windows of context + long.
    first = load_run_config(rows_spec[0][1], [*rows_spec[0][2], f"eval.horizon={long}"])
    context = first.eval.context
    test_cfg = first.data_for("test")
    if dataset == "mnist":
        size = 2 if args.tiny else args.test_size or (128 if args.suite == "cpu" else test_cfg.test_size)
        test_cfg = dataclasses.replace(test_cfg, test_size=size, seed=args.test_seed)
        description = f"Moving MNIST generated from the packaged test digits, seed {args.test_seed}"
    else:
        description = f"the {dataset.upper()} test split under {getattr(args, dataset)}"
    test_set = build_dataset(test_cfg, "test")
    batch = first.eval.batch_size
    if args.max_test_batches and dataset != "mnist":
        test_set = Subset(test_set, range(min(len(test_set), args.max_test_batches * batch)))
    loader = DataLoader(test_set, batch_size=batch, shuffle=False)
    sample = next(iter(DataLoader(test_set, batch_size=1)))

    rows: list[dict[str, Any]] = []
    for label, preset, overrides in rows_spec:
        t0 = time.monotonic()
        model, cfg, training = train_or_load(preset, overrides, runs / f"{dataset}-{MODELS[label]}", args)
        mcfg = cfg.model
        per_frame, n, status = score(model, loader, context, long, lpips, args.device)
        k = cost(model, sample, context, short, 2 if args.tiny else args.fps_batch, args.device)
        rows.append({"label": label, "kind": "model", "preset": preset, "overrides": overrides,
                     "summary": f"{mcfg.name}, hidden {list(mcfg.num_hidden)}, filter {mcfg.filter_size}, patch "
                                f"{mcfg.patch_size}, batch {cfg.train.batch_size}, lr {cfg.train.lr}",
                     "training": training, "cost": k, "per_frame": per_frame, **summarise(per_frame, short)})
        log.info("%s: %s -> %s MSE %.2f SSIM %.4f (%.1f min)", label, context, short,
                 rows[-1]["short"]["mse"], rows[-1]["short"]["ssim"], (time.monotonic() - t0) / 60)
    for name, label in BASELINE_LABELS.items():
        per_frame, n, status = score(Baseline(name), loader, context, long, lpips, args.device)
        rows.append({"label": label, "kind": "baseline", "per_frame": per_frame, **summarise(per_frame, short)})
    titles = {"mnist": "Moving MNIST", "kth": "KTH", "bair": "BAIR"}
    report = {
        "benchmark": "forecasting", "set": "tiny" if args.tiny else args.suite, "dataset": dataset,
        "dataset_title": titles[dataset], "command": command, "device": args.device,
        "context": context, "short_horizon": short, "long_horizon": long, "num_sequences": n,
        "test_description": description, "lpips": status, "machine": machine,
        "load_average_end": list(os.getloadavg()), "rows": rows,
    }
    stem = args.out or RESULTS / f"forecasting_{args.suite}"
    out = stem.with_name(f"{stem.name}_{dataset}")
    write_json(out.with_suffix(".json"), report)
    with atomic_write(out.with_suffix(".md"), "w") as f:
        f.write(markdown(report))
    plot(report, out.with_suffix(".png"))
    log.info("wrote %s (.json, .md, .png)", out)
    return out.with_suffix(".json")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    from mbvc.evaluation import EvalConfig, resolve_lpips

    machine = machine_info(args.device)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0] if argv is None else
                                                            "benchmarks/forecasting.py",
                                                            *(sys.argv[1:] if argv is None else argv)])
    lpips = {}
    for conv in ("standard", "reference"):
        module, status = resolve_lpips(EvalConfig(context=1, horizon=1, lpips_convention=conv),
                                       torch.device(args.device))
        if module is not None:
            lpips[conv] = module
    datasets = ([] if args.no_mnist else ["mnist"]) + [d for d in ("kth", "bair") if getattr(args, d)]
    for dataset in datasets:
        run_dataset(dataset, args, lpips, machine, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
