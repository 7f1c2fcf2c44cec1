"""The training loop of any :class:`~mbvc.models.WorldModel`.

The trainer only uses the model interface: ``setup_training``, ``training_updates`` and
``training_loss`` for training (the family owns its procedure, e.g. PredRNN's curricula),
``training_state`` in checkpoints, and ``predict`` (through :func:`mbvc.evaluation.evaluate`)
for validation. Everything else (datasets, the model, the run folder, the process group) is
built by the caller and handed over (:func:`mbvc.training.setup.build_trainer`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from mbvc.data import to_float
from mbvc.errors import CheckpointError, DataError, MbvcError
from mbvc.models import Batch, WorldModel, build_model, save_model
from mbvc.models.checkpoint import load_state_dict_checked
from mbvc.training.checkpoint import CheckpointManager, rng_states, set_rng_states
from mbvc.training.config import TrainConfig
from mbvc.training.distributed import BatchStream, DistInfo, all_reduce_mean, barrier
from mbvc.training.ema import WeightEMA
from mbvc.training.logger import Logger

if TYPE_CHECKING:
    from mbvc.evaluation import EvalConfig

log = logging.getLogger(__name__)


class TrainingDivergedError(MbvcError, RuntimeError):
    """The loss or the gradient norm became NaN or infinite."""


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`.

    Attributes:
        iteration: last completed iteration.
        model_path: the exported mbvc model file (rank 0), else None.
        elapsed_s: wall time of this call.
        last_eval: means of the last validation (``eval/mse``...), empty without validation.
        best: ``{"metric", "value", "iteration"}`` of the best validation, or None.
        losses: ``train/loss`` of every iteration of this call (all ranks see the same values).
        planned_iterations: the iterations aimed at (``train.iterations``, or the count fitted
            to ``train.time_budget_min``).
        seconds_per_iteration: the timed training step behind a time budget, else None.
    """

    iteration: int
    model_path: Path | None
    elapsed_s: float
    last_eval: dict[str, float] = field(default_factory=dict)
    best: dict[str, Any] | None = None
    losses: list[float] = field(default_factory=list)
    planned_iterations: int = 0
    seconds_per_iteration: float | None = None


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """``auto`` -> this process's CUDA device when there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{info.local_rank}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MbvcError(f"train.device={name!r} but CUDA is not available; use train.device=cpu")
    return torch.device(name)


class _Objective(torch.nn.Module):
    """Runs ``model.training_loss`` as a module's forward, so that DDP and ``torch.compile``,
    which wrap modules, see the whole training computation."""

    def __init__(self, model: WorldModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.model.training_loss(batch, step)


class Trainer:
    """Trains one model; rank 0 logs, validates and writes checkpoints.

    Args:
        model: a :class:`~mbvc.models.WorldModel` (moved to ``device``).
        cfg: the ``train`` section.
        train_set: map-style dataset of ``{"frames": (T', C, H, W), "actions"?: (T', A)}``, T' >= T.
        run_dir: where checkpoints, metrics and the model file go (rank 0 writes).
        val_set: validation sequences of at least ``eval.context + eval.horizon`` frames.
        eval_settings: the ``eval`` section, an :class:`mbvc.evaluation.EvalConfig` (context, horizon, metrics).
        config_yaml: the resolved run configuration, stored in every checkpoint.
        info: rank and world size.
        device: defaults to :func:`resolve_device` of ``cfg.device``.
        logger: metric logger (rank 0); None records nothing.
    """

    def __init__(self, model: WorldModel, cfg: TrainConfig, train_set: Dataset, run_dir: str | Path, *,
                 val_set: Dataset | None = None, eval_settings: EvalConfig | None = None,
                 config_yaml: str = "", info: DistInfo = DistInfo(), device: torch.device | None = None,
                 logger: Logger | None = None) -> None:
        self.cfg, self.info, self.run_dir = cfg, info, Path(run_dir)
        self.device = device or resolve_device(cfg.device, info)
        self.model = model.to(self.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.mcfg = model.config
        self.config_yaml, self.logger = config_yaml, logger or Logger([])
        self.amp = cfg.amp == "bf16" or (cfg.amp == "auto" and self.device.type == "cuda")
        self.net: torch.nn.Module = _Objective(self.model)
        if info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        if cfg.compile:
            self.net = torch.compile(self.net)
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt_cls(self.model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas),
                                 weight_decay=cfg.weight_decay)
        # Reads self.cfg at every step: a time budget replaces ``iterations`` after construction.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: self.cfg.lr_factor(step))
        self.stream = BatchStream(train_set, cfg.batch_size, cfg.seed, info, cfg.num_workers,
                                  pin_memory=self.device.type == "cuda")
        self.model.setup_training(cfg, batch_size=cfg.batch_size, rank=info.rank, world_size=info.world_size)
        # Every rank keeps the average (the same weights everywhere): any rank can export it.
        self.ema = WeightEMA(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.ckpts = CheckpointManager(self.run_dir / "checkpoints", cfg.keep_last)
        self.eval_settings = eval_settings
        self.val_loader = None
        if val_set is not None and eval_settings is not None:
            self.val_loader = DataLoader(val_set, batch_size=eval_settings.batch_size, shuffle=False,
                                         num_workers=cfg.num_workers)
        self._lpips: Any = None
        self._val_lpips = bool(eval_settings and eval_settings.lpips)
        self.iteration, self.best = 0, None
        self._metric_names = ["loss"]
        self.seconds_per_iteration: float | None = None  # measured for train.time_budget_min

    @property
    def inference_model(self) -> WorldModel:
        """The weights validated and exported: the moving average with ``train.ema_decay``, else the model."""
        return self.ema.module if self.ema is not None else self.model  # type: ignore[return-value]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`load_state_dict` needs to continue exactly (plain data only)."""
        return {
            "iteration": self.iteration,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "model_config": self.mcfg.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "data": self.stream.state_dict(),
            "training_state": self.model.training_state(),
            "rng": rng_states(),
            "best": self.best,
            "iterations": self.cfg.iterations,
            "seconds_per_iteration": self.seconds_per_iteration,
            "config": self.config_yaml,
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        """Restore a state from :meth:`state_dict` (model, optimiser, scheduler, data, RNGs)."""
        saved = state.get("model_config", {})
        with contextlib.suppress(MbvcError):  # what an older mbvc wrote, without removed keys
            saved = type(self.mcfg).from_dict(saved).to_dict()
        if saved != self.mcfg.to_dict():
            diff = sorted(k for k in set(saved) | set(self.mcfg.to_dict())
                          if saved.get(k) != self.mcfg.to_dict().get(k))
            details = ", ".join(f"{k}: checkpoint {saved.get(k)!r}, config {self.mcfg.to_dict().get(k)!r}"
                                for k in diff[:6])
            raise CheckpointError(f"{source} belongs to another model ({details})")
        load_state_dict_checked(self.model, state["model"], source)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.stream.load_state_dict(state["data"])
        # Checkpoints written before the WorldModel interface kept PredRNN's curriculum
        # generator at the top level.
        legacy = {"mask_rng": state["mask_rng"]} if "mask_rng" in state else {}
        self.model.load_training_state(state.get("training_state", legacy))
        set_rng_states(state["rng"])
        self.iteration, self.best = int(state["iteration"]), state.get("best")
        if self.ema is not None:
            if "ema" in state:
                self.ema.load_state_dict(state["ema"], source)
            else:  # a run resumed with train.ema_decay newly set: average from here on
                log.warning("%s has no weight average: train.ema_decay starts averaging at iteration %d",
                            source, self.iteration)
                self.ema = WeightEMA(self.model, self.cfg.ema_decay)
        if self.cfg.time_budget_min is not None and state.get("seconds_per_iteration") is not None:
            # Keep the count the budget was fitted to: timing again would change the schedule.
            self.seconds_per_iteration = float(state["seconds_per_iteration"])
            self.cfg = dataclasses.replace(self.cfg, iterations=int(state["iterations"]))

    def resume(self) -> bool:
        """Load the newest checkpoint of the run folder; False when there is none."""
        found = self.ckpts.latest()
        if found is None:
            log.info("no checkpoint in %s: starting from iteration 0", self.ckpts.folder)
            return False
        path, state = found
        self.load_state_dict(state, str(path))
        log.info("resumed from %s (iteration %d)", path, self.iteration)
        return True

    # ------------------------------------------------------------------ one iteration
    def _batch(self) -> Batch:
        batch = next(self.stream)
        frames = batch["frames"]
        if frames.dim() != 5:
            raise DataError(f"training sequences must be (T, C, H, W), got a batch of shape {tuple(frames.shape)}")
        out = {k: v.to(self.device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        out["frames"] = to_float(out["frames"])
        return out

    def _update(self, batch: Batch) -> tuple[torch.Tensor, float]:
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            loss, metrics = self.net(batch, self.iteration)
        self._metric_names = ["loss", *metrics]
        parts = all_reduce_mean(torch.stack([loss, *metrics.values()]).detach().float(), self.info)
        if not bool(torch.isfinite(parts).all()):
            shown = ", ".join(f"{k} {v}" for k, v in zip(self._metric_names[1:], parts[1:].tolist()))
            self._diverged(f"loss {parts[0].item()}" + (f" ({shown})" if shown else ""))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = math.nan
        if self.cfg.grad_clip > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip))
            if not math.isfinite(norm):
                self._diverged(f"gradient norm {norm}")
        self.optimizer.step()
        return parts, norm

    def _diverged(self, what: str) -> None:
        done = self.ckpts.list()
        keep = f"the last good checkpoint is {done[-1]}" if done else "no checkpoint was written yet"
        raise TrainingDivergedError(
            f"training diverged at iteration {self.iteration}: {what}; stopped, {keep}. "
            "Try a lower train.lr or train.grad_clip=1.0")

    def step(self) -> list[float]:
        """Run one iteration (the model's updates, e.g. two with PredRNN's reverse_input).

        Returns:
            ``[loss, *metrics]`` averaged over the updates (PredRNN: loss, mse, decouple).
        """
        self.iteration += 1
        updates = self.model.training_updates(self._batch(), self.iteration)
        results = [self._update(update) for update in updates]
        parts = sum(p for p, _ in results) / len(results)
        norm = max(n for _, n in results)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        values = parts.tolist()
        for key, v in zip(self._metric_names, values):
            self.logger.record_mean(f"train/{key}", v)
        if self.cfg.grad_clip > 0:
            self.logger.record_mean("train/grad_norm", norm)
        return values

    # ------------------------------------------------------------------ validation
    def validate(self) -> dict[str, float]:
        """Score the model and the baselines on the validation set (rank 0; others wait)."""
        if self.val_loader is None or self.eval_settings is None:
            return {}
        scores: dict[str, float] = {}
        if self.info.is_main:
            from mbvc.evaluation import evaluate, resolve_lpips
            from mbvc.evaluation.strips import strip_image

            settings = self.eval_settings
            if self._val_lpips and self._lpips is None:
                self._lpips, status = resolve_lpips(settings, self.device)
                self._val_lpips = status.available  # absent weights: warn once, not every validation
            cfg = settings.replace(max_batches=settings.val_batches, lpips=self._val_lpips)
            result = evaluate(self.inference_model, self.val_loader, cfg, device=self.device,
                              lpips_module=self._lpips)
            for method in result.methods:
                prefix = "eval" if method == "model" else f"eval_{method}"
                for metric in result.per_frame[method]:
                    scores[f"{prefix}/{metric}"] = result.mean(method, metric)
            for k, v in scores.items():
                self.logger.record(k, v)
            if result.samples:
                self.logger.record_image("eval/samples", strip_image(result.samples["frames"],
                                                                     result.samples["predictions"]))
            self._update_best(scores)
        barrier(self.info)
        return scores

    def _update_best(self, scores: dict[str, float]) -> None:
        from mbvc.evaluation.runner import HIGHER_IS_BETTER

        metric = self.cfg.best_metric
        value = scores.get(f"eval/{metric}")
        if value is None or not math.isfinite(value):
            return
        sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
        if self.best is None or sign * (value - self.best["value"]) > 0:
            self.best = {"metric": metric, "value": value, "iteration": self.iteration}
            self.ckpts.save_best(self.state_dict())
            save_model(self.inference_model, self.run_dir / "best.safetensors", self.model_metadata())
            log.info("new best eval/%s %.4f at iteration %d", metric, value, self.iteration)

    # ------------------------------------------------------------------ loop
    def model_metadata(self) -> dict[str, Any]:
        """What an exported model file records: the iteration, the run's config, which weights."""
        meta: dict[str, Any] = {"iteration": self.iteration, "run_config": self.config_yaml}
        if self.ema is not None:
            meta["weights"] = f"exponential moving average, decay {self.ema.decay:g}"
        return meta

    def _save(self) -> None:
        # A finite loss can still be followed by a step that leaves NaN/inf weights (e.g. an
        # overflowing gradient without clipping): such a state must never become "the last
        # good checkpoint".
        bad = [n for n, p in self.model.named_parameters() if not bool(torch.isfinite(p).all())]
        if bad:
            self._diverged(f"non-finite weights after the update ({', '.join(bad[:3])})")
        if self.info.is_main:
            self.ckpts.save(self.iteration, self.state_dict())
        barrier(self.info)

    def fit(self, resume: bool = False) -> TrainResult:
        """Train until ``cfg.iterations`` (fitted first to ``cfg.time_budget_min`` if set), then export the model.

        Args:
            resume: continue from the newest checkpoint of the run folder.

        Returns:
            A :class:`TrainResult`.

        Raises:
            TrainingDivergedError: NaN/inf loss; the checkpoints written so far are kept.
        """
        if resume:
            self.resume()
        if self.cfg.time_budget_min is not None and self.seconds_per_iteration is None:
            self.fit_time_budget()
        cfg, start = self.cfg, time.monotonic()
        last_eval: dict[str, float] = {}
        losses: list[float] = []
        saved_at = evaluated_at = self.iteration
        bar = tqdm(total=cfg.iterations, initial=self.iteration, desc="train", unit="it", dynamic_ncols=True,
                   disable=not (cfg.progress and self.info.is_main))
        tick, tick_itr = time.monotonic(), self.iteration
        with logging_redirect_tqdm(), bar:
            while self.iteration < cfg.iterations:
                values = self.step()
                losses.append(values[0])
                bar.update(1)
                # Long names shortened to keep the bar on one line (decouple -> dec).
                bar.set_postfix({k if len(k) <= 4 else k[:3]: f"{v:.4g}" for k, v in zip(self._metric_names, values)},
                                refresh=False)
                itr = self.iteration
                if itr % cfg.log_interval == 0:
                    now = time.monotonic()
                    self.logger.record("time/it_per_s", (itr - tick_itr) / max(now - tick, 1e-9))
                    self.logger.record("time/elapsed_s", now - start)
                    self.logger.record("train/lr", self.scheduler.get_last_lr()[0])
                    for k, v in self.model.training_scalars(itr).items():
                        self.logger.record(f"train/{k}", v)
                    tick, tick_itr = now, itr
                if cfg.eval_interval and itr % cfg.eval_interval == 0:
                    last_eval, evaluated_at = self.validate(), itr
                if itr % cfg.checkpoint_interval == 0:
                    self._save()
                    saved_at = itr
                if itr % cfg.log_interval == 0 or evaluated_at == itr:
                    self.logger.dump(itr)
        if evaluated_at != self.iteration or (not last_eval and self.val_loader is not None):
            last_eval = self.validate()
            self.logger.record("time/elapsed_s", time.monotonic() - start)
            self.logger.dump(self.iteration)
        if saved_at != self.iteration:
            self._save()
        model_path = None
        if self.info.is_main:
            model_path = save_model(self.inference_model, self.run_dir / "model.safetensors", self.model_metadata())
            log.info("model written to %s (iteration %d)", model_path, self.iteration)
        return TrainResult(self.iteration, model_path, time.monotonic() - start, last_eval, self.best, losses,
                           cfg.iterations, self.seconds_per_iteration)

    def fit_time_budget(self, steps: int = 3) -> int:
        """Time the real training step and set ``iterations`` to what fits ``train.time_budget_min``.

        Returns:
            The fitted number of iterations (at least the one already done, and at least 1).
        """
        budget = self.cfg.time_budget_min
        if budget is None:
            raise MbvcError("fit_time_budget needs train.time_budget_min")
        per_it = seconds_per_iteration(self.model, self.cfg, self.stream.dataset, steps=steps,
                                       info=self.info, device=self.device)
        # Every process must stop at the same iteration: they agree on the mean.
        per_it = float(all_reduce_mean(torch.tensor([per_it], device=self.device), self.info).item())
        iterations = max(1, self.iteration, int(budget * 60 / per_it))
        self.seconds_per_iteration, planned = per_it, self.cfg.iterations
        self.cfg = dataclasses.replace(self.cfg, iterations=iterations)
        log.info("time budget %.3g min: a training iteration takes %.1f ms here (timed with amp=%s, grad_clip=%g, "
                 "channels_last=%s, compile=%s) -> %d iterations (train.iterations=%d replaced)", budget,
                 1000 * per_it, self.amp, self.cfg.grad_clip, self.cfg.channels_last, self.cfg.compile,
                 iterations, planned)
        return iterations


def seconds_per_iteration(model: WorldModel, cfg: TrainConfig, train_set: Dataset, *, steps: int = 3,
                          info: DistInfo = DistInfo(), device: torch.device | None = None) -> float:
    """Median wall time of one real training iteration of ``model`` under ``cfg``.

    Runs ``steps + 1`` iterations (the first is a warm-up) of a throwaway :class:`Trainer` on a
    copy of the model, so the timing includes everything the run does per iteration: AMP,
    gradient clipping, channels_last, ``torch.compile``, every update of an iteration (PredRNN's
    reverse_input makes two) and the data loading. The model, the global random states and the
    caller's run folder are left as they were.

    Args:
        model: the model to time (its weights are copied, not trained).
        cfg: the ``train`` section of the run.
        train_set: the training set (at least ``cfg.batch_size`` sequences).
        steps: timed iterations.
        info: rank and world size (under DDP every process must call this).
        device: defaults to :func:`resolve_device` of ``cfg.device``.
    """
    saved = rng_states()
    probe_cfg = dataclasses.replace(cfg, progress=False, time_budget_min=None)
    device = device or resolve_device(cfg.device, info)
    try:
        copy = build_model(model.config)
        copy.load_state_dict(model.state_dict())
        with tempfile.TemporaryDirectory(prefix="mbvc-timing-") as tmp:
            probe = Trainer(copy, probe_cfg, train_set, tmp, info=info, device=device)
            times = []
            for i in range(steps + 1):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                begin = time.perf_counter()
                probe.step()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i:
                    times.append(time.perf_counter() - begin)
            del probe, copy  # the run's own model is about to train on this device
    finally:
        set_rng_states(saved)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return float(statistics.median(times))
