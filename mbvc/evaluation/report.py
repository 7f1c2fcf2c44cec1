"""Report writers for an :class:`~mbvc.evaluation.runner.EvalResult`.

:func:`write_report` writes, into one folder, each file atomically through :mod:`mbvc.io`:

* ``metrics.json``: every figure (per future frame and mean, model and baselines), the LPIPS
  status and convention, the evaluation settings and the caller's config dict;
* ``metrics.md``: a summary table and a per-frame table of the model;
* ``per_frame.png``: one panel per metric, one line per method;
* ``samples.png`` / ``samples.gif``: ground truth vs prediction strips.
"""
from __future__ import annotations

import io
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mbvc.evaluation.runner import HIGHER_IS_BETTER, METRICS, EvalResult
from mbvc.evaluation.strips import strip_animation, strip_image, write_gif, write_png
from mbvc.io import atomic_write, write_json

log = logging.getLogger(__name__)

LABELS = {"mse": "MSE / frame", "mae": "MAE / frame", "psnr": "PSNR (dB)", "ssim": "SSIM",
          "lpips": "LPIPS"}
_MEANING = {
    "mse": "squared error summed over a frame's pixels and channels, [0, 1] scale",
    "mae": "absolute error summed over a frame's pixels and channels, [0, 1] scale",
    "psnr": "on uint8(x * 255) frames, 20 log10(255) - 10 log10(per-pixel MSE); capped for identical frames",
    "ssim": "scikit-image structural_similarity on uint8 frames, 7x7 window",
    "lpips": "AlexNet-LPIPS v0.1",
}


def _metrics_of(result: EvalResult) -> list[str]:
    present = set().union(*(m.keys() for m in result.per_frame.values()))
    return [m for m in METRICS if m in present]


def report_dict(result: EvalResult, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything :func:`write_json_report` writes, as a dict."""
    out = result.to_dict()
    out["config"] = dict(config) if config is not None else {}
    out["conventions"] = {m: _MEANING[m] for m in _metrics_of(result)}
    out["conventions"]["psnr_max_db"] = result.config.psnr_max_db
    return out


def write_json_report(result: EvalResult, path: str | os.PathLike,
                      config: Mapping[str, Any] | None = None) -> Path:
    """Write every figure and ``config`` as JSON (``None`` for non-finite numbers)."""
    write_json(path, report_dict(result, config))
    return Path(path)


def _fmt(x: float | None, metric: str) -> str:
    if x is None:
        return "n/a"
    return f"{x:.4f}" if metric in ("ssim", "lpips") else f"{x:.2f}"


def markdown_report(result: EvalResult) -> str:
    """Markdown with the mean per method and the model's figures per future frame."""
    metrics = _metrics_of(result)
    data = result.to_dict()["methods"]
    arrows = {m: "↑" if HIGHER_IS_BETTER[m] else "↓" for m in metrics}
    cfg = result.config
    lines = [
        f"# Evaluation: {cfg.context} -> {cfg.horizon} frames, {result.num_sequences} sequences",
        "",
        "| method | " + " | ".join(f"{LABELS[m]} {arrows[m]}" for m in metrics) + " |",
        "| --- |" + " --- |" * len(metrics),
    ]
    for method, figures in data.items():
        lines.append(f"| {method} | " + " | ".join(_fmt(figures["mean"][m], m) for m in metrics) + " |")
    lp = result.lpips
    lines += ["", f"LPIPS: {'computed' if lp.available else 'unavailable'}, inputs in "
                  f"{lp.input_range} (convention `{lp.convention}`)."]
    if not lp.available:
        lines.append(f"Reason: {lp.reason}")
    if result.nonfinite_predictions:
        lines.append(f"Warning: {result.nonfinite_predictions} predicted values were NaN or inf.")
    lines += ["", "## Model, per future frame", "",
              "| frame | " + " | ".join(LABELS[m] for m in metrics) + " |",
              "| --- |" + " --- |" * len(metrics)]
    model = data["model"]["per_frame"]
    for i in range(cfg.horizon):
        lines.append(f"| {cfg.context + i + 1} | " + " | ".join(_fmt(model[m][i], m) for m in metrics) + " |")
    lines += ["", "Conventions: " + "; ".join(f"{m}: {_MEANING[m]}" for m in metrics)
              + f". Predictions clipped to [0, 1]; PSNR cap {cfg.psnr_max_db:g} dB."]
    return "\n".join(lines) + "\n"


def write_markdown_report(result: EvalResult, path: str | os.PathLike) -> Path:
    """Write :func:`markdown_report` atomically."""
    with atomic_write(path, "w") as f:
        f.write(markdown_report(result))
    return Path(path)


def plot_per_frame(result: EvalResult, path: str | os.PathLike) -> Path:
    """Plot each metric against the future-frame index, one line per method, as PNG."""
    # A bare Figure renders through Agg without pyplot: no display, no global backend change.
    from matplotlib.figure import Figure

    metrics = _metrics_of(result)
    fig = Figure(figsize=(3.2 * len(metrics), 3.0), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    xs = [result.config.context + i + 1 for i in range(result.config.horizon)]
    for ax, metric in zip(axes, metrics):
        for method, figures in result.per_frame.items():
            style = "-o" if method == "model" else "--"
            ax.plot(xs, figures[metric], style, markersize=3, label=method)
        ax.set_title(LABELS[metric])
        ax.set_xlabel("frame")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())
    return Path(path)


def write_strips(result: EvalResult, out_dir: str | os.PathLike, scale: int = 1,
                 fps: float = 4.0) -> dict[str, Path]:
    """Write ``samples.png`` and ``samples.gif`` from the sequences kept in ``result``."""
    if not result.samples:
        return {}
    frames, preds = result.samples["frames"], result.samples["predictions"]
    out_dir = Path(out_dir)
    return {
        "samples_png": write_png(out_dir / "samples.png", strip_image(frames, preds, scale)),
        "samples_gif": write_gif(out_dir / "samples.gif", strip_animation(frames, preds, scale), fps),
    }


def write_report(result: EvalResult, out_dir: str | os.PathLike,
                 config: Mapping[str, Any] | None = None, strip_scale: int = 1) -> dict[str, Path]:
    """Write the JSON, Markdown, per-frame plot and sample strips into ``out_dir``.

    Args:
        result: from :func:`mbvc.evaluation.evaluate`.
        out_dir: folder (created if needed); existing files of the same names are replaced
            atomically, nothing else is touched.
        config: the run's resolved configuration, stored verbatim in the JSON.
        strip_scale: integer upscaling of strip tiles (e.g. 2 for 64x64 frames).

    Returns:
        ``{"json", "markdown", "plot", "samples_png", "samples_gif"} -> path`` of the files written.
    """
    out_dir = Path(out_dir)
    paths = {
        "json": write_json_report(result, out_dir / "metrics.json", config),
        "markdown": write_markdown_report(result, out_dir / "metrics.md"),
        "plot": plot_per_frame(result, out_dir / "per_frame.png"),
    }
    paths.update(write_strips(result, out_dir, strip_scale))
    log.info("evaluation report written to %s", out_dir)
    return paths
