"""Evaluation loop: per-future-frame metrics of a model and of two baselines, in one pass.

The model only needs ``predict(context, n_future, actions=None) -> (B, n_future, C, H, W)``
(the contract in ``docs/architecture.md``). Every sequence the loader yields is counted: sums
are accumulated per frame on the device and divided by the number of sequences at the end, so
a last batch smaller than the others weighs exactly its size.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from mbvc.data.checks import check_finite, check_frames
from mbvc.errors import ConfigError, DataError, DependencyNotInstalled, ShapeError, did_you_mean
from mbvc.metrics.frames import PSNR_MAX_DB, pixel_metrics
from mbvc.metrics.lpips import CONVENTIONS, LPIPS, MIN_SIZE, load_lpips

log = logging.getLogger(__name__)

METRICS = ("mse", "mae", "psnr", "ssim", "lpips")
#: True for metrics where higher is better.
HIGHER_IS_BETTER = {"mse": False, "mae": False, "psnr": True, "ssim": True, "lpips": False}


def copy_last_frame(context: torch.Tensor, horizon: int) -> torch.Tensor:
    """Baseline: repeat the last context frame.

    Args:
        context: ``(B, K, C, H, W)``.
        horizon: frames to predict.

    Returns:
        ``(B, horizon, C, H, W)`` (an expanded view, no copy).
    """
    return context[:, -1:].expand(-1, horizon, -1, -1, -1)


def mean_frame(context: torch.Tensor, horizon: int) -> torch.Tensor:
    """Baseline: the mean of the context frames, repeated.

    Args:
        context: ``(B, K, C, H, W)``.
        horizon: frames to predict.

    Returns:
        ``(B, horizon, C, H, W)``.
    """
    return context.mean(dim=1, keepdim=True).expand(-1, horizon, -1, -1, -1)


BASELINES: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "copy_last": copy_last_frame,
    "mean_frame": mean_frame,
}


class Predictor(Protocol):
    """What the runner needs from a model."""

    def predict(self, context: torch.Tensor, n_future: int,
                actions: torch.Tensor | None = None) -> torch.Tensor: ...


@dataclass(frozen=True)
class EvalConfig:
    """How a model is evaluated: the ``eval`` section of a run configuration, and the settings of
    one :func:`evaluate` call.

    The horizon is independent of the training length: KTH presets train 10 -> 10 and evaluate
    10 -> 20, BAIR presets train 2 -> 10 and evaluate 2 -> 28, as the papers report.

    Attributes:
        context: K, frames given to the model.
        horizon: frames predicted and scored after the context.
        batch_size: evaluation batch (every sequence is scored, the last batch may be smaller).
        val_split: split used for validation during training.
        test_split: split used by ``mbvc test``.
        val_batches: batches per validation during training (bounds its cost); null = whole split.
        lpips: compute LPIPS (reported unavailable, with the reason, if its weights are absent).
        lpips_convention: ``"standard"`` ([-1, 1] inputs) or ``"reference"`` ([0, 1] inputs,
            the reference's quirk).
        lpips_alexnet: explicit path of ``alexnet-owt-7be5be79.pth`` (else searched for).
        lpips_lin: explicit path of the LPIPS v0.1 ``alex.pth`` (else searched for).
        baselines: names from :data:`BASELINES` scored on the same data.
        psnr_max_db: PSNR given to identical frames (the cap).
        num_samples: sequences kept for the strips in the report.
        max_batches: stop after this many batches (``mbvc test --max-batches``); ``None`` = all.
    """

    context: int = 10
    horizon: int = 10
    batch_size: int = 16
    val_split: str = "val"
    test_split: str = "test"
    val_batches: int | None = 8
    lpips: bool = True
    lpips_convention: str = "standard"
    lpips_alexnet: str | None = None
    lpips_lin: str | None = None
    baselines: tuple[str, ...] = ("copy_last", "mean_frame")
    psnr_max_db: float = PSNR_MAX_DB
    num_samples: int = 4
    max_batches: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "baselines", tuple(self.baselines))
        if not math.isfinite(self.psnr_max_db) or self.psnr_max_db <= 0:
            raise ConfigError(f"eval.psnr_max_db must be a positive number, got {self.psnr_max_db}")
        if self.context < 1 or self.horizon < 1 or self.batch_size < 1:
            raise ConfigError(f"eval needs context, horizon and batch_size >= 1, got "
                              f"{self.context=} {self.horizon=} {self.batch_size=}")
        if self.lpips_convention not in CONVENTIONS:
            raise ConfigError(f"eval.lpips_convention must be one of {sorted(CONVENTIONS)}, "
                              f"got {self.lpips_convention!r}." + did_you_mean(self.lpips_convention, CONVENTIONS))
        for name in self.baselines:
            if name not in BASELINES:
                raise ConfigError(f"unknown baseline {name!r} in eval.baselines; choose from {sorted(BASELINES)}."
                                  + did_you_mean(name, BASELINES))
        for name in ("val_batches", "max_batches"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"eval.{name} must be >= 1 or null, got {value}")
        if self.num_samples < 0:
            raise ConfigError(f"eval.num_samples must be >= 0, got {self.num_samples}")

    @property
    def seq_len(self) -> int:
        """Frames an evaluation sequence needs: context + horizon."""
        return self.context + self.horizon

    def replace(self, **changes: Any) -> EvalConfig:
        """A copy with ``changes`` applied (validated again), e.g. ``replace(max_batches=2)``."""
        return dataclasses.replace(self, **changes)


@dataclass
class LPIPSStatus:
    """Whether LPIPS was computed, why not, and on which input convention."""

    available: bool
    convention: str
    input_range: str
    reason: str = ""


@dataclass
class EvalResult:
    """Figures of one evaluation.

    Attributes:
        config: the :class:`EvalConfig` used.
        num_sequences: sequences scored.
        per_frame: ``method -> metric -> [mean over sequences of future frame i]``; methods are
            ``"model"`` and the baseline names; LPIPS is absent when unavailable.
        lpips: LPIPS status.
        nonfinite_predictions: predicted values that were NaN or inf (clipping keeps NaN).
        samples: ``{"frames": (S, K + horizon, C, H, W), "predictions": (S, horizon, C, H, W)}``
            on the CPU, clipped, for the strips.
    """

    config: EvalConfig
    num_sequences: int
    per_frame: dict[str, dict[str, list[float]]]
    lpips: LPIPSStatus
    nonfinite_predictions: int = 0
    samples: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def methods(self) -> list[str]:
        """Method names, the model first."""
        return list(self.per_frame)

    def mean(self, method: str = "model", metric: str = "mse") -> float:
        """Average of a metric over future frames (the paper's headline number)."""
        values = self.per_frame[method][metric]
        return sum(values) / len(values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures (no tensors); non-finite numbers become ``None``."""
        return {
            "eval_config": asdict(self.config),
            "num_sequences": self.num_sequences,
            "context": self.config.context,
            "horizon": self.config.horizon,
            "lpips": asdict(self.lpips),
            "nonfinite_predictions": self.nonfinite_predictions,
            "methods": {
                method: {
                    "mean": {m: _finite(self.mean(method, m)) for m in metrics},
                    "per_frame": {m: [_finite(v) for v in vals] for m, vals in metrics.items()},
                }
                for method, metrics in self.per_frame.items()
            },
        }


def _finite(x: float) -> float | None:
    return x if x == x and abs(x) != float("inf") else None


class _Accumulator:
    """Per-frame sums kept on the device (no host sync per batch)."""

    def __init__(self) -> None:
        self.sums: dict[str, dict[str, torch.Tensor]] = {}
        self.count = 0

    def add(self, method: str, values: Mapping[str, torch.Tensor]) -> None:
        slot = self.sums.setdefault(method, {})
        for name, v in values.items():  # v: (B, horizon)
            total = v.to(torch.float64).sum(dim=0)
            slot[name] = slot[name] + total if name in slot else total

    def means(self) -> dict[str, dict[str, list[float]]]:
        return {method: {m: (s / self.count).cpu().tolist() for m, s in metrics.items()}
                for method, metrics in self.sums.items()}


def resolve_lpips(cfg: EvalConfig, device: torch.device,
                  module: LPIPS | None = None) -> tuple[LPIPS | None, LPIPSStatus]:
    """Load LPIPS for ``cfg`` or explain why it is unavailable (never raises on absent weights).

    Args:
        cfg: evaluation settings.
        device: where the module runs.
        module: an already loaded module to reuse (e.g. across validations); its convention
            must match ``cfg.lpips_convention``.

    Returns:
        ``(module or None, status)``.
    """
    conv = cfg.lpips_convention
    status = LPIPSStatus(False, conv, CONVENTIONS[conv])
    if not cfg.lpips:
        status.reason = "disabled in the evaluation config"
        return None, status
    if module is None:
        try:
            module = load_lpips(cfg.lpips_alexnet, cfg.lpips_lin, convention=conv)
        except DependencyNotInstalled as exc:
            status.reason = str(exc)
            log.warning("LPIPS unavailable: %s", exc)
            return None, status
    elif module.convention != conv:
        raise ConfigError(f"the LPIPS module given uses convention {module.convention!r}, "
                          f"the config asks for {conv!r}")
    status.available = True
    return module.to(device), status


def _split_batch(batch: Any, cfg: EvalConfig, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    if not isinstance(batch, Mapping) or "frames" not in batch:
        got = f"keys {sorted(batch)}" if isinstance(batch, Mapping) else type(batch).__name__
        raise DataError(f"evaluation needs batches that are dicts with a 'frames' key, got {got}")
    frames = batch["frames"]
    if not isinstance(frames, torch.Tensor) or frames.dim() != 5:
        got = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ShapeError(f"batch['frames'] must be (B, T, C, H, W), got {got}")
    need = cfg.context + cfg.horizon
    if frames.shape[1] < need:
        raise ShapeError(f"evaluating {cfg.context} -> {cfg.horizon} needs sequences of at least "
                         f"{need} frames, got {frames.shape[1]}")
    frames = frames[:, :need].to(device, non_blocking=True)
    check_frames(frames, "evaluation batch['frames']")  # 0..255 floats would score MSE in the thousands
    # Datasets may yield uint8 so that bytes, not floats, cross the bus.
    frames = frames.float() / 255 if frames.dtype == torch.uint8 else frames.float()
    actions = batch.get("actions")
    if actions is not None:
        actions = actions.to(device, non_blocking=True).float()
        check_finite(actions, "evaluation batch['actions']", "actions")
    return frames, actions


def _device_of(model: Any) -> torch.device:
    if isinstance(model, torch.nn.Module):
        param = next(model.parameters(), None)
        if param is not None:
            return param.device
    return torch.device("cpu")


def _score(pred: torch.Tensor, target: torch.Tensor, cfg: EvalConfig,
           lpips: LPIPS | None) -> dict[str, torch.Tensor]:
    values = pixel_metrics(pred, target, max_db=cfg.psnr_max_db)
    if lpips is not None:
        values["lpips"] = lpips.frame_distances(pred, target)
    return values


@torch.no_grad()
def evaluate(model: Predictor, loader: Iterable[Mapping[str, torch.Tensor]], cfg: EvalConfig, *,
             device: torch.device | str | None = None, lpips_module: LPIPS | None = None,
             progress: bool = False) -> EvalResult:
    """Score a model and the baselines on every sequence of ``loader``.

    Runs under ``torch.no_grad()`` with ``model.eval()`` (the previous train/eval mode is
    restored afterwards, so a trainer can call this for validation).

    Args:
        model: anything with ``predict(context, n_future, actions=None)``.
        loader: iterable of dicts ``{"frames": (B, T, C, H, W) float in [0, 1] or uint8,
            "actions": (B, T, A) optional}`` with ``T >= context + horizon``.
        cfg: evaluation settings.
        device: where to compute; defaults to the model's parameters' device (CPU if none).
        lpips_module: a loaded :class:`LPIPS` to reuse instead of loading one.
        progress: show a tqdm bar.

    Returns:
        An :class:`EvalResult` with per-future-frame means.

    Raises:
        DataError: the loader yielded no sequence or not dicts.
        ShapeError: sequences shorter than ``context + horizon`` or predictions of the wrong shape.
    """
    device = torch.device(device) if device is not None else _device_of(model)
    lpips, status = resolve_lpips(cfg, device, lpips_module)
    was_training = getattr(model, "training", None)
    if hasattr(model, "eval"):
        model.eval()
    acc, kept = _Accumulator(), {"frames": [], "predictions": []}
    nonfinite = torch.zeros((), dtype=torch.int64, device=device)
    try:
        for index, batch in enumerate(tqdm(loader, desc="evaluate", disable=not progress)):
            if cfg.max_batches is not None and index >= cfg.max_batches:
                break
            frames, actions = _split_batch(batch, cfg, device)
            if lpips is not None and min(frames.shape[-2:]) < MIN_SIZE:
                lpips, status.available = None, False
                status.reason = f"frames of {tuple(frames.shape[-2:])} are below AlexNet's {MIN_SIZE}x{MIN_SIZE}"
                log.warning("LPIPS unavailable: %s", status.reason)
            context, target = frames[:, : cfg.context], frames[:, cfg.context:]
            pred = model.predict(context, cfg.horizon, actions=actions)
            if tuple(pred.shape) != tuple(target.shape):
                raise ShapeError(f"model.predict returned {tuple(pred.shape)}, expected {tuple(target.shape)}")
            pred = pred.float()  # bf16/fp16 outputs (autocast) would truncate to the wrong uint8
            nonfinite += (~torch.isfinite(pred)).sum().to(device)  # no host sync per batch
            acc.add("model", _score(pred, target, cfg, lpips))
            for name in cfg.baselines:
                acc.add(name, _score(BASELINES[name](context, cfg.horizon), target, cfg, lpips))
            acc.count += frames.shape[0]
            _keep(kept, frames, pred, cfg.num_samples)
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    if acc.count == 0:
        raise DataError("the evaluation loader yielded no sequences")
    per_frame, nonfinite = acc.means(), int(nonfinite)
    if status.available is False:  # drop partial LPIPS sums if it became unavailable mid-run
        for metrics in per_frame.values():
            metrics.pop("lpips", None)
    if nonfinite:
        log.warning("%d predicted values were NaN or inf", nonfinite)
    samples = {k: torch.cat(v)[: cfg.num_samples] for k, v in kept.items() if v}
    log.info("evaluated %d sequences (%d -> %d)", acc.count, cfg.context, cfg.horizon)
    return EvalResult(cfg, acc.count, per_frame, status, nonfinite, samples)


def _keep(kept: dict[str, list[torch.Tensor]], frames: torch.Tensor, pred: torch.Tensor,
          limit: int) -> None:
    have = sum(t.shape[0] for t in kept["frames"])
    if have < limit:
        n = limit - have
        kept["frames"].append(frames[:n].cpu())
        kept["predictions"].append(pred[:n].clamp(0, 1).cpu())
