"""The end-to-end demo as a pipeline of the calls ``mbvc collect``, ``mbvc train`` and ``mbvc plan`` make.

One preset (``push-demo``) holds every stage's settings in its sections, each validated by its
own dataclass before any work starts: ``collect`` (:class:`envs.collect.CollectConfig`),
``model``/``data``/``train``/``eval`` (:class:`mbvc.config.RunConfig`), ``cost``
(:func:`agents.costs.cost_config`), ``plan`` (:class:`agents.planners.PlannerConfig`)
and ``demo``, all held by one :class:`DemoConfig`. The stages write into one folder and are skipped on the
next run when their record (``OUT/<stage>.json``) holds the same settings:

1. **collect**: :func:`envs.collect.collect` into ``OUT/data/{train,val}``;
2. **train**: the preset's world model for its fixed number of iterations into ``OUT/model``;
3. **plan**: :func:`agents.plan.run_plan` (MPC with the model, random, oracle) into ``OUT/plan``, the
   episodes played in ``demo.plan_workers`` processes;
4. **report**: ``OUT/report.json`` (settings, iterations, time per stage, results, machine).

Example:
    >>> import envs; envs.setup_gl()  # once per process, before the first render (headless MUJOCO_GL)
    >>> from agents.demo import demo_settings, run_demo
    >>> report = run_demo(demo_settings(tiny=True), "runs/demo-tiny")  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from mbvc.io import write_json

from .demo_config import EVAL_SEED_BASE, SECTIONS, TINY, DemoConfig, demo_settings, scaled_schedule
from .stages import Stages, dataclass_defaults, prepare_out_dir

log = logging.getLogger(__name__)

STAGES = ("collect", "train", "plan")
MARKER = "demo.json"


def train_world_model(run_cfg: Any, run_dir: Path) -> dict[str, Any]:
    """Train ``run_cfg`` into ``run_dir`` as ``mbvc train`` does (resuming a run folder that has a config).

    The record's ``model`` is the model file's path relative to ``run_dir``'s parent.
    """
    from mbvc.training.lock import RunLock
    from mbvc.training.setup import build_datasets, build_trainer, load_resume_config, prepare_run_dir

    with RunLock(run_dir) as lock:  # one process per run folder, as `mbvc train`
        resume = (run_dir / "config.yaml").is_file()
        if resume:
            run_cfg = load_resume_config(run_dir)
        try:
            datasets = build_datasets(run_cfg)
            if not resume:
                prepare_run_dir(run_dir, run_cfg, resume=False)
            trainer = build_trainer(run_cfg, run_dir, resume=resume, datasets=datasets)
            try:
                result = trainer.fit(resume=resume)
            finally:
                trainer.logger.close()
        except Exception:
            if not resume:  # a fresh start that failed before saving anything blocks no retry (as `mbvc train`)
                lock.discard_failed_start()
            raise
    return {"iterations": result.iteration, "planned_iterations": run_cfg.train.iterations,
            "train_seconds": result.elapsed_s, "validation": result.last_eval,
            "model": Path(os.path.relpath(Path(result.model_path).absolute(), run_dir.absolute().parent)).as_posix(),
            "parameters": sum(p.numel() for p in trainer.model.parameters()), "model_config": run_cfg.model.to_dict()}


class DemoRun:
    """The demo's stages over one output folder, each skipped when finished with the same settings.

    Args:
        settings: :func:`demo_settings`.
        out: output folder (see :func:`agents.stages.prepare_out_dir`).
        force: redo every stage, removing the outputs of an earlier run in ``out``.
    """

    def __init__(self, settings: DemoConfig, out: str | os.PathLike = "runs/demo", force: bool = False) -> None:
        import torch

        from mbvc.config import apply_overrides

        if settings.threads is not None:
            torch.set_num_threads(settings.threads)
        self.settings = settings
        self.out = prepare_out_dir(out, MARKER, {"config": settings.to_dict()}, force,
                                   ["data", "model", "plan", "report.json", *(f"{s}.json" for s in STAGES)])
        # The run config with its data in OUT/data (what `mbvc train --set data.root=OUT/data` loads).
        data = apply_overrides(settings.run.to_dict(), [f"data.root={(self.out / 'data').as_posix()!r}"], "demo")
        self.run_cfg = type(settings.run).from_dict(data, settings.run.source)
        # A setting added since a stage finished, left at its default, does not redo or refuse the stage.
        cfg = self.run_cfg
        defaults = dataclass_defaults({"model": type(cfg.model), "data": type(cfg.data), "train": type(cfg.train),
                                       "eval": type(cfg.eval), "cost": type(settings.cost), "plan": type(settings.plan),
                                       "demo": DemoConfig})
        for key in SECTIONS:  # fields of DemoConfig, not of its demo section
            defaults = {k: v for k, v in defaults.items() if k != f"demo.{key}" and not k.startswith(f"demo.{key}.")}
        self.stages = Stages(self.out, settings.seed, defaults)

    def collect_settings(self) -> dict[str, Any]:
        """What determines the collected data."""
        return {**self.settings.collect.spec(), "episodes": self.settings.collect.num_episodes,
                "val_episodes": self.settings.val_episodes}

    def collect(self) -> dict[str, Any]:
        """Stage 1: training and validation episodes into ``OUT/data/{train,val}`` (``mbvc collect``'s call)."""
        from envs.collect import collect

        def stage() -> dict[str, Any]:
            cfg, stats = self.settings.collect, {}
            for split, count, seed in (("train", cfg.num_episodes, cfg.seed), ("val", self.settings.val_episodes,
                                                                             cfg.seed + 1)):
                part = dataclasses.replace(cfg, num_episodes=count, seed=seed, num_envs=min(cfg.num_envs, count))
                result = collect(self.out / "data" / split, part)
                stats[split] = {"episodes": result.episodes_total, "new_episodes": result.episodes_new,
                                "frames": result.frames, "seconds": result.seconds,
                                "policy_success_rate": result.success_rate}
            stats["env_steps"] = (cfg.num_episodes + self.settings.val_episodes) * cfg.episode_length
            return stats

        return self.stages.run("collect", self.collect_settings(), stage, strict=True)

    def train_settings(self) -> dict[str, Any]:
        """What determines the trained model (besides the data): the model, training and validation sections."""
        d = self.run_cfg.to_dict()
        train = {k: v for k, v in d["train"].items() if k not in ("progress", "device")}
        data = {k: v for k, v in d["data"].items() if k != "root"}
        return {"model": d["model"], "data": data, "train": train, "eval": d["eval"]}

    def train(self) -> dict[str, Any]:
        """Stage 2 after stage 1: the world model into ``OUT/model`` (``mbvc train``'s calls)."""
        self.collect()
        return self.stages.run("train", {**self.train_settings(), "collect": self.collect_settings()},
                               lambda: train_world_model(self.run_cfg, self.out / "model"),
                               strict=True)

    def plan(self) -> dict[str, Any]:
        """Stage 3 after stages 1-2: ``mbvc plan``'s call on the held-out goals into ``OUT/plan``."""
        from .plan import run_plan

        training, s = self.train(), self.settings
        settings = {"cost": s.to_dict()["cost"], "plan": s.to_dict()["plan"], "demo": s.to_dict()["demo"],
                    "model": training.get("model"), "iterations": training.get("iterations")}
        settings["demo"] = {k: v for k, v in settings["demo"].items()  # those the results do not depend on
                            if k not in ("progress", "threads", "device", "plan_workers")}
        device = self.run_cfg.train.device if self.run_cfg.train.device != "auto" else None
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        run = lambda: run_plan(
            self.out / "model", s.collect.env_id, self.out / "plan", seeds=s.eval_seeds(), env_kwargs=s.eval_env_kwargs(),
            cost=s.cost, planner=s.plan, data_root=self.out / "data" / "train", device=device,
            oracle_planner=s.oracle_planner, oracle_population=s.oracle_population,
            gif_scale=s.gif_scale, progress=s.progress, restart_on_change=True, workers=s.plan_workers)
        return self.stages.run("plan", settings, lambda: {k: v for k, v in run().items() if k != "settings"}, strict=False)

    def report(self) -> dict[str, Any]:
        """Run what is missing and write ``OUT/report.json``; returns the report."""
        from mbvc.machine import machine_info

        data, training, planned = self.collect(), self.train(), self.plan()
        strip = ("stage", "settings", "stage_seconds")
        timings = {k: round(self.stages.timings[k], 2) for k in STAGES}
        report = {"config": self.settings.to_dict(), "timings_s": {**timings, "total": round(sum(timings.values()), 2)},
                  "skipped": list(self.stages.skipped), "iterations": training.get("iterations"),
                  "data": {k: v for k, v in data.items() if k not in strip},
                  "training": {k: v for k, v in training.items() if k not in strip},
                  "results": planned["results"], "eval_seeds": planned["seeds"],
                  "gif": planned["gif"] and f"plan/{planned['gif']}",  # relative to the demo's folder
                  "machine": machine_info(planned["machine"].get("device"))}
        write_json(self.out / "report.json", report)
        return report


def run_demo(settings: DemoConfig, out: str | os.PathLike = "runs/demo", force: bool = False) -> dict[str, Any]:
    """Run (or resume) the stages; returns the report (also ``OUT/report.json``).

    Raises:
        ConfigError: a bad output folder, or finished stages made with other settings (use
            ``force`` or another folder).
    """
    return DemoRun(settings, out, force).report()


__all__ = ["EVAL_SEED_BASE", "TINY", "DemoConfig", "DemoRun", "demo_settings", "run_demo",
           "scaled_schedule", "train_world_model"]
