"""The ``train`` section of a run configuration, as a frozen dataclass.

It is a schema for OmegaConf (:func:`mbvc.config.load_run_config` merges a preset's YAML into
it), so an unknown key or a value of the wrong type is rejected with the file and key named.
The ``eval`` section is :class:`mbvc.evaluation.EvalConfig`.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from mbvc.errors import ConfigError, did_you_mean
from mbvc.models.curriculum import CurriculumConfig

log = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "adamw")
LR_SCHEDULES = ("constant", "cosine", "linear")
AMP_MODES = ("auto", "bf16", "off")
BEST_METRICS = ("mse", "mae", "psnr", "ssim", "lpips")


def _finite(section: str, obj: object) -> None:
    """Refuse NaN/inf in any float field (``lr <= 0`` is False for NaN, so range checks miss it)."""
    for name, value in vars(obj).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{section}.{name} must be a finite number, got {value}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {choices}, got {value!r}." + did_you_mean(value, choices))


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained (the ``train`` section of a preset).

    Attributes:
        seed: seeds the weights, the data order and the curriculum draws.
        iterations: optimiser iterations (the reference's ``max_iterations``).
        batch_size: global batch; under DDP each of the N processes takes batch_size / N.
        lr: peak learning rate.
        optimizer: ``adam`` (the reference) or ``adamw``.
        weight_decay: decoupled for ``adamw``, L2 for ``adam``.
        betas: Adam betas.
        lr_schedule: ``constant`` (the reference), ``cosine`` or ``linear`` decay to
            ``lr * min_lr_ratio`` at ``iterations``, after ``warmup_iters`` of linear warm-up.
        warmup_iters: warm-up iterations.
        min_lr_ratio: final learning rate as a fraction of ``lr`` for decaying schedules.
        grad_clip: clip the global gradient norm to this value; 0 disables clipping.
        ema_decay: keep an exponential moving average of the weights with this decay (e.g.
            0.999: about the last 1000 iterations; warmed up as ``(1 + n) / (10 + n)``) and
            validate and export it instead of the last step's weights; 0 (default) disables it.
        reverse_input: also train on the time-reversed sequence each iteration (a second
            optimiser step, the mean of both losses reported). Skipped for action models:
            reversing frames would pair every action with the wrong transition.
        curriculum: scheduled / reverse scheduled sampling parameters (reference flag names).
        amp: ``auto`` = bf16 autocast on CUDA, full precision on CPU; ``bf16``; ``off``.
        compile: wrap the model in ``torch.compile`` (CUDA; slow start-up).
        channels_last: keep weights and activations in channels-last memory format (faster
            convolutions on recent GPUs with bf16, a few percent on CPU; same results up to
            float rounding).
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        num_workers: DataLoader worker processes.
        log_interval: iterations between scalar dumps (means over the interval).
        eval_interval: iterations between validations (the reference's ``test_interval``); 0 = only at the end.
        checkpoint_interval: iterations between checkpoints (the reference's ``snapshot_interval``).
        keep_last: training checkpoints kept besides the best one.
        best_metric: validation metric choosing the best checkpoint.
        time_budget_min: opt-in: fit ``iterations`` to this many minutes of training steps, by
            timing the real step (AMP, clipping, channels_last, every update of an iteration)
            before the run; the fitted count is logged and kept on resume. Validation and
            checkpoints come on top. None (default): exactly ``iterations``, reproducibly.
        progress: tqdm bar with loss parts, it/s and ETA.
        tensorboard: write TensorBoard scalars and sample strips.
    """

    seed: int = 0
    iterations: int = 80000
    batch_size: int = 8
    lr: float = 1e-4
    optimizer: str = "adam"
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: str = "constant"
    warmup_iters: int = 0
    min_lr_ratio: float = 0.0
    grad_clip: float = 0.0
    ema_decay: float = 0.0
    reverse_input: bool = True
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    amp: str = "auto"
    compile: bool = False
    channels_last: bool = False
    device: str = "auto"
    num_workers: int = 0
    log_interval: int = 100
    eval_interval: int = 5000
    checkpoint_interval: int = 5000
    keep_last: int = 2
    best_metric: str = "mse"
    time_budget_min: float | None = None
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        _finite("train", self)
        for name in ("iterations", "batch_size", "log_interval", "checkpoint_interval", "keep_last"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_interval", "warmup_iters", "num_workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError(f"train needs lr > 0, weight_decay >= 0, grad_clip >= 0, got "
                              f"{self.lr=} {self.weight_decay=} {self.grad_clip=}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must be in [0, 1) (0 = off), got {self.ema_decay}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"train.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.time_budget_min is not None and self.time_budget_min <= 0:
            raise ConfigError(f"train.time_budget_min must be > 0 or null, got {self.time_budget_min}")
        _choice("train.optimizer", self.optimizer, OPTIMIZERS)
        _choice("train.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _choice("train.amp", self.amp, AMP_MODES)
        _choice("train.best_metric", self.best_metric, BEST_METRICS)
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``lr`` after ``step`` completed iterations (a LambdaLR function)."""
        if step < self.warmup_iters:
            return (step + 1) / self.warmup_iters
        if self.lr_schedule == "constant":
            return 1.0
        span = max(1, self.iterations - self.warmup_iters)
        progress = min(1.0, (step - self.warmup_iters) / span)
        if self.lr_schedule == "linear":
            decay = 1.0 - progress
        else:  # cosine
            import math

            decay = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * decay


#: Keys of removed ``train`` options, with the value that meant "off". A run configuration that
#: an older mbvc wrote still loads: the key is dropped, with a warning when it was in use.
RETIRED = {
    "motion_weight": (0.0, "the motion-weighted loss was removed"),
    "l1_weight": (0.0, "the L1 loss term was removed"),
    "time_limit_min": (None, "stopping after N minutes was removed; train.time_budget_min fits iterations"),
}


def without_retired(values: Any, source: str = "config") -> Any:
    """A ``train`` mapping without the :data:`RETIRED` keys (other values are returned as they are)."""
    if not isinstance(values, dict) or not set(RETIRED) & set(values):
        return values
    values = dict(values)
    for key in sorted(set(RETIRED) & set(values)):
        value = values.pop(key)
        default, why = RETIRED[key]
        if value != default:
            log.warning("%s: train.%s=%r is ignored (%s)", source, key, value, why)
    return values
