"""The end-to-end demo as a pipeline of the calls ``mbvc collect``, ``mbvc train`` and ``mbvc plan`` make.

One preset (``push-demo``) holds every stage's settings in its sections, each validated by its
own dataclass before any work starts: ``collect`` (:class:`envs.collect.CollectConfig`),
``model``/``data``/``train``/``eval`` (:class:`mbvc.config.RunConfig`), ``cost``
(:class:`agents.cost_registry.CostConfig`), ``plan`` (:class:`agents.planners.PlannerConfig`)
and ``demo`` (:class:`DemoConfig`). The stages write into one folder and are skipped on the
next run when their record (``OUT/<stage>.json``) holds the same settings:

1. **collect**: :func:`envs.collect.collect` into ``OUT/data/{train,val}``;
2. **train**: the preset's world model for its fixed number of iterations into ``OUT/model``;
3. **plan**: :func:`agents.plan.run_plan` (MPC with the model, random, oracle) into ``OUT/plan``;
4. **report**: ``OUT/report.json`` (settings, iterations, time per stage, results, machine).

Example:
    >>> from agents.demo import demo_settings, run_demo
    >>> report = run_demo(demo_settings(tiny=True), "runs/demo-tiny")  # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mbvc.errors import ConfigError
from mbvc.io import write_json

log = logging.getLogger(__name__)

STAGES = ("collect", "train", "plan")
MARKER = "demo.json"
#: Seeds of evaluation episodes start here; collection seeds are hashed 32-bit numbers
#: (``envs.collect.episode_seed``), so the evaluation goals are held out.
EVAL_SEED_BASE = 1_000_000
#: ``--tiny`` (tests): a handful of 16x16 episodes, a tiny model trained 4 iterations, few candidates.
TINY_ITERATIONS = 4
TINY = ("model.num_hidden=[8]", "model.total_length=6", "model.img_width=16", "train.batch_size=4",
        "train.warmup_iters=1", "train.eval_interval=0", "train.checkpoint_interval=2", "train.log_interval=2",
        "eval.horizon=4", "eval.batch_size=2", "eval.val_batches=1", "collect.num_episodes=6",
        "collect.episode_length=8", "collect.num_envs=1", "demo.val_episodes=2", "demo.eval_episodes=2",
        "demo.eval_episode_length=5", "plan.population_size=12", "plan.num_iterations=2", "plan.horizon=4",
        "plan.replan_every=2", "demo.oracle_population=6", "demo.gif_scale=2",
        "demo.threads=1")  # a tiny model gains nothing from threads; on a busy CPU they only wait


@dataclass(frozen=True)
class DemoConfig:
    """The ``demo`` section: what ties the stages together and the evaluation task.

    Attributes:
        seed: the one seed of collection, training, planning and the evaluation goals (the
            preset's other sections refer to it).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for training and planning.
        progress: progress bars.
        threads: torch CPU threads (``None``: torch's default).
        val_episodes: validation episodes collected (seed + 1).
        eval_episodes: evaluation episodes per agent (the same seeded goals for every agent).
        goal_distance: ``(min, max)`` metres from the block's start to its goal.
        eval_episode_length: steps per evaluation episode (it ends early on success).
        oracle_planner: the oracle's planner (iCEM suits the true-state cost: 100% vs 83% for CEM on 12 goals).
        oracle_population: the oracle's candidates per iteration (it simulates each one).
        gif_scale: upscaling of the GIF's panels.
        train_minutes: opt-in time budget: fit the iterations to it (not reproducible); ``None``:
            the preset's fixed ``train.iterations``.
    """

    seed: int = 0
    device: str = "auto"
    progress: bool = True
    threads: int | None = None
    val_episodes: int = 25
    eval_episodes: int = 10
    goal_distance: tuple[float, float] = (0.05, 0.1)
    eval_episode_length: int = 40
    oracle_planner: str = "icem"
    oracle_population: int = 50
    gif_scale: int = 4
    train_minutes: float | None = None

    def __post_init__(self) -> None:
        for name in ("val_episodes", "eval_episodes", "eval_episode_length", "oracle_population", "gif_scale"):
            if getattr(self, name) < 1:
                raise ConfigError(f"demo.{name} must be a positive integer, got {getattr(self, name)!r}")
        lo, hi = self.goal_distance
        if not 0 < lo <= hi:
            raise ConfigError(f"demo.goal_distance must be (min, max) with 0 < min <= max, got {self.goal_distance}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"demo.threads must be >= 1 or null, got {self.threads}")
        if self.train_minutes is not None and not self.train_minutes > 0:
            raise ConfigError(f"demo.train_minutes must be > 0 or null, got {self.train_minutes}")


@dataclass(frozen=True)
class DemoSettings:
    """Every section of the demo's preset, validated (:func:`demo_settings`)."""

    run: Any  # mbvc.config.RunConfig
    collect: Any  # envs.collect.CollectConfig
    cost: Any  # agents.cost_registry.CostConfig
    plan: Any  # agents.planners.PlannerConfig
    demo: DemoConfig
    preset: str
    overrides: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """All sections as plain data (the run folder's ``config.yaml`` holds the same)."""
        return json.loads(json.dumps(self.run.to_dict()))

    def eval_seeds(self, count: int | None = None) -> list[int]:
        """Seeds of the held-out evaluation goals (the same for every agent)."""
        n = self.demo.eval_episodes if count is None else count
        return [EVAL_SEED_BASE + 1000 * self.demo.seed + i for i in range(n)]

    def eval_env_kwargs(self) -> dict[str, Any]:
        """``gymnasium.make`` keyword arguments of the evaluation episodes (ending on success)."""
        return {"goal_distance": list(self.demo.goal_distance), "episode_length": self.demo.eval_episode_length,
                "terminate_on_success": True}


def scaled_schedule(iterations: int) -> list[str]:
    """Overrides for ``iterations`` with the curriculum and warm-up compressed in the preset's proportions."""
    return [f"train.iterations={iterations}", f"train.curriculum.r_sampling_step_1={max(1, iterations // 10)}",
            f"train.curriculum.r_sampling_step_2={max(2, iterations // 2)}",
            f"train.curriculum.r_exp_alpha={max(1, iterations // 10)}",
            f"train.warmup_iters={min(50, max(1, iterations // 20))}",
            f"train.checkpoint_interval={max(1, min(250, iterations // 4))}", f"train.eval_interval={max(1, iterations // 4)}"]


def demo_settings(preset: str = "push-demo", overrides: Sequence[str] = (), *, tiny: bool = False,
                  iterations: int | None = None) -> DemoSettings:
    """Load and validate every section of ``preset`` (before any work starts).

    Args:
        preset: a preset name or YAML path with the demo's sections.
        overrides: ``section.key=value`` strings, applied last (e.g. ``demo.seed=1``, ``plan.horizon=8``).
        tiny: the tiny configuration (tests).
        iterations: train this many iterations, the curriculum scaled to them.

    Raises:
        ConfigError: an unknown preset, section or key, or a bad value, naming it.
    """
    from envs.collect import CollectConfig
    from mbvc.config import load_run_config, section_config

    from .cost_registry import CostConfig
    from .planners import PlannerConfig

    schedule = scaled_schedule(iterations or TINY_ITERATIONS) if iterations or tiny else []
    every = (*schedule, *(TINY if tiny else ()), *overrides)
    run = load_run_config(preset, every)
    settings = DemoSettings(run, section_config(CollectConfig, run, "collect"), section_config(CostConfig, run, "cost"),
                            section_config(PlannerConfig, run, "plan"), section_config(DemoConfig, run, "demo"),
                            str(preset), tuple(every))
    if settings.plan.horizon > run.model.total_length - run.model.input_length:
        log.warning("planning horizon %d exceeds the %d steps the model is trained to predict", settings.plan.horizon,
                    run.model.total_length - run.model.input_length)
    return settings


class StageRecord:
    """``OUT/<stage>.json``: the settings a stage ran with and what it produced."""

    def __init__(self, out: Path, stage: str) -> None:
        self.path, self.stage = out / f"{stage}.json", stage

    def load(self) -> dict[str, Any] | None:
        """The record, or ``None`` when the stage has not finished."""
        try:
            return json.loads(self.path.read_text()) if self.path.is_file() else None
        except ValueError:
            return None

    def write(self, settings: dict[str, Any], **content: Any) -> dict[str, Any]:
        """Write the record and return it."""
        record = {"stage": self.stage, "settings": settings, **content}
        write_json(self.path, record)
        return record


def prepare_out_dir(out: str | os.PathLike, settings: DemoSettings, force: bool) -> Path:
    """Check and create the output folder; with ``force``, remove what earlier stages wrote there.

    Raises:
        ConfigError: ``out`` is a file, cannot be written, or is a non-empty folder the demo did not make.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; the demo needs a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ConfigError(f"--out {out} is a non-empty folder that the demo did not make (no {MARKER}); "
                          "choose an empty or new folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    if force:
        for name in ("data", "model", "plan"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in [f"{s}.json" for s in STAGES] + ["report.json"]:
            (out / name).unlink(missing_ok=True)
    write_json(out / MARKER, {"config": settings.to_dict(), "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    return out


def train_world_model(run_cfg: Any, run_dir: Path, minutes: float | None = None) -> dict[str, Any]:
    """Train ``run_cfg`` into ``run_dir`` as ``mbvc train`` does (resuming a run folder that has a config).

    With ``minutes`` (opt-in), the iterations are first fitted to that time budget
    (:func:`agents.budget.fit_iterations`).
    """
    from mbvc.training.setup import build_datasets, build_trainer, load_resume_config, prepare_run_dir

    resume = (run_dir / "config.yaml").is_file()
    if resume:
        run_cfg = load_resume_config(run_dir)
    datasets = build_datasets(run_cfg)
    if not resume:
        if minutes is not None:
            from .budget import fit_iterations

            run_cfg = fit_iterations(run_cfg, datasets[0], minutes, scaled_schedule)
        prepare_run_dir(run_dir, run_cfg, resume=False)
    trainer = build_trainer(run_cfg, run_dir, resume=resume, datasets=datasets)
    try:
        result = trainer.fit(resume=resume)
    finally:
        trainer.logger.close()
    return {"iterations": result.iteration, "planned_iterations": run_cfg.train.iterations,
            "train_seconds": result.elapsed_s, "model": str(result.model_path), "validation": result.last_eval,
            "parameters": sum(p.numel() for p in trainer.model.parameters()), "model_config": run_cfg.model.to_dict()}


class DemoRun:
    """The demo's stages over one output folder, each skipped when finished with the same settings.

    Args:
        settings: :func:`demo_settings`.
        out: output folder (see :func:`prepare_out_dir`).
        force: redo every stage, removing the outputs of an earlier run in ``out``.
    """

    def __init__(self, settings: DemoSettings, out: str | os.PathLike = "runs/demo", force: bool = False) -> None:
        import torch

        from mbvc.config import apply_overrides

        if settings.demo.threads is not None:
            torch.set_num_threads(settings.demo.threads)
        self.settings, self.out = settings, prepare_out_dir(out, settings, force)
        # The run config with its data in OUT/data (what `mbvc train --set data.root=OUT/data` loads).
        data = apply_overrides(settings.run.to_dict(), [f"data.root={(self.out / 'data').as_posix()!r}"], "demo")
        self.run_cfg = type(settings.run).from_dict(data, settings.run.source)
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []
        self._done: dict[str, dict[str, Any]] = {}

    def _stage(self, name: str, settings: dict[str, Any], fn: Callable[[], dict[str, Any]], strict: bool) -> dict[str, Any]:
        from mbvc.seeding import seed_everything

        if name in self._done:
            return self._done[name]
        record = StageRecord(self.out, name)
        done = record.load()
        if done is not None and done.get("settings") == settings:
            log.info("[%s] already done (%s): skipped; --force redoes it", name, record.path)
            self.skipped.append(name)
            self.timings[name] = float(done.get("stage_seconds", 0.0))
        else:
            if done is not None and strict:
                before = done.get("settings", {})
                diff = [f"{k}: was {before.get(k)!r}, now {settings.get(k)!r}" for k in sorted(set(before) | set(settings))
                        if before.get(k) != settings.get(k)]
                raise ConfigError(f"{self.out} holds a finished {name} stage made with other settings "
                                  f"({'; '.join(diff[:3])}); pass --force to redo it or choose another --out")
            log.info("[%s] starting", name)
            seed_everything(self.settings.demo.seed)
            start = time.perf_counter()
            content = fn()
            self.timings[name] = time.perf_counter() - start
            log.info("[%s] done in %.1f s", name, self.timings[name])
            done = record.write(settings, stage_seconds=self.timings[name], **content)
        self._done[name] = done
        return done

    def collect_settings(self) -> dict[str, Any]:
        """What determines the collected data."""
        return {**self.settings.collect.spec(), "episodes": self.settings.collect.num_episodes,
                "val_episodes": self.settings.demo.val_episodes}

    def collect(self) -> dict[str, Any]:
        """Stage 1: training and validation episodes into ``OUT/data/{train,val}`` (``mbvc collect``'s call)."""
        import dataclasses

        from envs.collect import collect

        def stage() -> dict[str, Any]:
            cfg, stats = self.settings.collect, {}
            for split, count, seed in (("train", cfg.num_episodes, cfg.seed), ("val", self.settings.demo.val_episodes,
                                                                             cfg.seed + 1)):
                part = dataclasses.replace(cfg, num_episodes=count, seed=seed, num_envs=min(cfg.num_envs, count))
                result = collect(self.out / "data" / split, part)
                stats[split] = {"episodes": result.episodes_total, "new_episodes": result.episodes_new,
                                "frames": result.frames, "seconds": result.seconds,
                                "policy_success_rate": result.success_rate}
            stats["env_steps"] = (cfg.num_episodes + self.settings.demo.val_episodes) * cfg.episode_length
            return stats

        return self._stage("collect", self.collect_settings(), stage, strict=True)

    def train_settings(self) -> dict[str, Any]:
        """What determines the trained model (besides the data): the model, training and validation sections."""
        d = self.run_cfg.to_dict()
        train = {k: v for k, v in d["train"].items() if k not in ("progress", "device")}
        data = {k: v for k, v in d["data"].items() if k != "root"}
        return {"model": d["model"], "data": data, "train": train, "eval": d["eval"],
                "train_minutes": self.settings.demo.train_minutes}

    def train(self) -> dict[str, Any]:
        """Stage 2 after stage 1: the world model into ``OUT/model`` (``mbvc train``'s calls)."""
        self.collect()
        return self._stage("train", {**self.train_settings(), "collect": self.collect_settings()},
                           lambda: train_world_model(self.run_cfg, self.out / "model", self.settings.demo.train_minutes),
                           strict=True)

    def plan(self) -> dict[str, Any]:
        """Stage 3 after stages 1-2: ``mbvc plan``'s call on the held-out goals into ``OUT/plan``."""
        from .plan import run_plan

        training, s = self.train(), self.settings
        settings = {"cost": s.to_dict()["cost"], "plan": s.to_dict()["plan"], "demo": s.to_dict()["demo"],
                    "model": training.get("model"), "iterations": training.get("iterations")}
        settings["demo"] = {k: v for k, v in settings["demo"].items() if k not in ("progress", "threads", "device")}
        device = self.run_cfg.train.device if self.run_cfg.train.device != "auto" else None
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        run = lambda: run_plan(
            self.out / "model", "mbvc/Push-v0", self.out / "plan", seeds=s.eval_seeds(), env_kwargs=s.eval_env_kwargs(),
            cost=s.cost, planner=s.plan, data_root=self.out / "data" / "train", device=device,
            oracle_planner=s.demo.oracle_planner, oracle_population=s.demo.oracle_population,
            gif_scale=s.demo.gif_scale, progress=s.demo.progress, restart_on_change=True)
        return self._stage("plan", settings, lambda: {k: v for k, v in run().items() if k != "settings"}, strict=False)

    def report(self) -> dict[str, Any]:
        """Run what is missing and write ``OUT/report.json``; returns the report."""
        from mbvc.machine import machine_info

        data, training, planned = self.collect(), self.train(), self.plan()
        strip = ("stage", "settings", "stage_seconds")
        timings = {k: round(self.timings[k], 2) for k in STAGES}
        report = {"config": self.settings.to_dict(), "timings_s": {**timings, "total": round(sum(timings.values()), 2)},
                  "skipped": list(self.skipped), "iterations": training.get("iterations"),
                  "data": {k: v for k, v in data.items() if k not in strip},
                  "training": {k: v for k, v in training.items() if k not in strip},
                  "results": planned["results"], "eval_seeds": planned["seeds"], "gif": planned["gif"],
                  "machine": machine_info(planned["machine"].get("device"))}
        write_json(self.out / "report.json", report)
        return report


def run_demo(settings: DemoSettings, out: str | os.PathLike = "runs/demo", force: bool = False) -> dict[str, Any]:
    """Run (or resume) the stages; returns the report (also ``OUT/report.json``).

    Raises:
        ConfigError: a bad output folder, or finished stages made with other settings (use
            ``force`` or another folder).
    """
    return DemoRun(settings, out, force).report()


__all__ = ["DemoConfig", "DemoRun", "DemoSettings", "demo_settings", "run_demo", "scaled_schedule",
           "train_world_model"]
