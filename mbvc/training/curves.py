"""Learning curves of a run: validation metrics against iterations and wall time.

Reads ``<run>/metrics.jsonl`` (written by the trainer) and produces what
``benchmarks/results/training_*.{json,md,png}`` hold: per validation, the model's and the
baselines' mean MSE / SSIM / PSNR (and LPIPS when it was available), with the iteration and
the elapsed training time.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from mbvc.io import atomic_write, write_json
from mbvc.training.logger import read_jsonl

METRICS = ("mse", "mae", "psnr", "ssim", "lpips")
METHODS = {"model": "eval", "copy_last": "eval_copy_last", "mean_frame": "eval_mean_frame"}


def learning_curves(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Validation points and training-loss points of a run.

    Returns:
        ``{"validations": [{"iteration", "elapsed_s", "model": {metric: value}, "copy_last": {...},
        "mean_frame": {...}}], "train": [{"iteration", "elapsed_s", "loss", "mse"}]}``; the elapsed
        time of a validation is the latest time logged at or before it.
    """
    rows = read_jsonl(Path(run_dir) / "metrics.jsonl")
    validations, train, elapsed = [], [], 0.0
    for row in rows:
        elapsed = row.get("time/elapsed_s") or elapsed
        if "train/loss" in row:
            train.append({"iteration": row["step"], "elapsed_s": elapsed, "loss": row["train/loss"],
                          "mse": row.get("train/mse")})
        if "eval/mse" in row:
            point: dict[str, Any] = {"iteration": row["step"], "elapsed_s": elapsed}
            for method, prefix in METHODS.items():
                point[method] = {m: row[f"{prefix}/{m}"] for m in METRICS if f"{prefix}/{m}" in row}
            validations.append(point)
    return {"validations": validations, "train": train}


def plot_curves(curves: dict[str, Any], path: str | os.PathLike, title: str = "") -> Path:
    """MSE and SSIM of the model (and the baselines as lines) against iterations, with a time axis."""
    from matplotlib.figure import Figure

    vals = curves["validations"]
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    its = [v["iteration"] for v in vals]
    for ax, metric in zip(axes[:2], ("mse", "ssim")):
        ax.plot(its, [v["model"].get(metric) for v in vals], "-o", markersize=3, label="model")
        for method, style in (("copy_last", "--"), ("mean_frame", ":")):
            ax.plot(its, [v[method].get(metric) for v in vals], style, label=method)
        ax.set_xlabel("iteration")
        ax.set_title(f"validation {metric.upper()}" + (" / frame" if metric == "mse" else ""))
        ax.grid(alpha=0.3)
        if vals:  # second axis: training wall time at the same points
            top = ax.secondary_xaxis("top", functions=(_interp(its, [v["elapsed_s"] / 60 for v in vals]),
                                                       _interp([v["elapsed_s"] / 60 for v in vals], its)))
            top.set_xlabel("minutes")
    axes[0].legend(fontsize="small")
    train = curves["train"]
    axes[2].plot([t["iteration"] for t in train], [t["loss"] for t in train], lw=0.8)
    axes[2].set_yscale("log")
    axes[2].set_xlabel("iteration")
    axes[2].set_title("training loss")
    axes[2].grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize="medium")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())
    return Path(path)


def _interp(xs: list[float], ys: list[float]):  # noqa: ANN202 - a numpy ufunc-like callable
    import numpy as np

    def f(x):  # noqa: ANN001, ANN202
        return np.interp(x, xs, ys) if len(xs) > 1 else x

    return f


def markdown_curves(curves: dict[str, Any], header: str = "") -> str:
    """A Markdown table: iteration, minutes, model vs copy-last / mean-frame MSE and SSIM."""
    lines = [header, ""] if header else []
    lines += ["| iteration | minutes | MSE model | MSE copy-last | MSE mean-frame | SSIM model | SSIM copy-last | PSNR model |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for v in curves["validations"]:
        m, c, f = v["model"], v["copy_last"], v["mean_frame"]
        lines.append(f"| {v['iteration']} | {v['elapsed_s'] / 60:.1f} | {m['mse']:.1f} | {c['mse']:.1f} | "
                     f"{f['mse']:.1f} | {m['ssim']:.4f} | {c['ssim']:.4f} | {m['psnr']:.2f} |")
    return "\n".join(lines) + "\n"


def write_curves(run_dir: str | os.PathLike, prefix: str | os.PathLike, extra: dict[str, Any] | None = None,
                 title: str = "", header: str = "") -> dict[str, Path]:
    """Write ``<prefix>.json``, ``<prefix>.md`` and ``<prefix>.png`` for a run."""
    curves = learning_curves(run_dir)
    prefix = Path(prefix)
    json_path, md_path = prefix.with_suffix(".json"), prefix.with_suffix(".md")
    write_json(json_path, {**(extra or {}), **curves})
    with atomic_write(md_path, "w") as f:
        f.write(markdown_curves(curves, header))
    return {"json": json_path, "md": md_path, "png": plot_curves(curves, prefix.with_suffix(".png"), title)}
