"""Evaluation of video-prediction models: runner, baselines, reports, decoupling plots.

Example:
    >>> from mbvc.evaluation import EvalConfig
    >>> EvalConfig(context=10, horizon=10).baselines
    ('copy_last', 'mean_frame')
"""
from __future__ import annotations

from mbvc.evaluation.decoupling import (
    DecouplingResult,
    decoupling_analysis,
    increment_features,
    plot_decoupling,
)
from mbvc.evaluation.report import (
    markdown_report,
    plot_per_frame,
    report_dict,
    write_json_report,
    write_markdown_report,
    write_report,
    write_strips,
)
from mbvc.evaluation.runner import (
    BASELINES,
    EvalConfig,
    EvalResult,
    LPIPSStatus,
    copy_last_frame,
    evaluate,
    mean_frame,
    resolve_lpips,
)

__all__ = [
    "BASELINES",
    "DecouplingResult",
    "EvalConfig",
    "EvalResult",
    "LPIPSStatus",
    "copy_last_frame",
    "decoupling_analysis",
    "evaluate",
    "increment_features",
    "markdown_report",
    "mean_frame",
    "plot_decoupling",
    "plot_per_frame",
    "report_dict",
    "resolve_lpips",
    "write_json_report",
    "write_markdown_report",
    "write_report",
    "write_strips",
]
