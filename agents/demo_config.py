"""The demo's settings: every section of its preset, validated before any work starts.

One :class:`DemoConfig` holds them: the ``demo`` section's own fields, and the other sections as
their classes read them, ``run`` (``model``/``data``/``train``/``eval``,
:class:`mbvc.config.RunConfig`), ``collect`` (:class:`envs.collect.CollectConfig`), ``cost``
(:mod:`agents.costs.registry`) and ``plan`` (:class:`agents.planners.PlannerConfig`).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mbvc.errors import ConfigError

log = logging.getLogger(__name__)

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
        "demo.threads=1",  # a tiny model gains nothing from threads; on a busy CPU they only wait
        "demo.plan_workers=1")  # two episodes per agent: starting worker processes would cost more


#: Fields of :class:`DemoConfig` that hold the preset's other sections (not keys of its ``demo`` section).
SECTIONS = ("run", "collect", "cost", "plan", "preset", "overrides")


@dataclass(frozen=True)
class DemoConfig:
    """Every section of the demo's preset (:func:`demo_settings`): the ``demo`` section's fields, then the others.

    Attributes:
        seed: the one seed of collection, training, planning and the evaluation goals (the
            preset's other sections refer to it).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for training and planning.
        progress: progress bars.
        threads: torch CPU threads (``None``: torch's default).
        plan_workers: processes playing the plan stage's episodes, one torch thread each (a fixed
            number: the results do not depend on it, only the time does).
        val_episodes: validation episodes collected (seed + 1).
        eval_episodes: evaluation episodes per agent (the same seeded goals for every agent).
        goal_distance: ``(min, max)`` metres from the block's start to its goal.
        eval_episode_length: steps per evaluation episode (it ends early on success).
        oracle_planner: the oracle's planner (iCEM suits the true-state cost: 100% vs 83% for CEM on 12 goals).
        oracle_population: the oracle's candidates per iteration (it simulates each one).
        gif_scale: upscaling of the GIF's panels.
        run: the ``model``, ``data``, ``train`` and ``eval`` sections (:class:`mbvc.config.RunConfig`).
        collect: the ``collect`` section (:class:`envs.collect.CollectConfig`).
        cost: the ``cost`` section (:func:`agents.costs.cost_config`).
        plan: the ``plan`` section (:class:`agents.planners.PlannerConfig`).
        preset: the preset it was loaded from.
        overrides: the ``section.key=value`` overrides applied.
    """

    seed: int = 0
    device: str = "auto"
    progress: bool = True
    threads: int | None = None
    plan_workers: int = 2
    val_episodes: int = 25
    eval_episodes: int = 50
    goal_distance: tuple[float, float] = (0.05, 0.1)
    eval_episode_length: int = 40
    oracle_planner: str = "icem"
    oracle_population: int = 50
    gif_scale: int = 4
    run: Any = field(default=None, compare=False)
    collect: Any = field(default=None, compare=False)
    cost: Any = field(default=None, compare=False)
    plan: Any = field(default=None, compare=False)
    preset: str = "push-demo"
    overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("val_episodes", "eval_episodes", "eval_episode_length", "oracle_population", "gif_scale"):
            if getattr(self, name) < 1:
                raise ConfigError(f"demo.{name} must be a positive integer, got {getattr(self, name)!r}")
        lo, hi = self.goal_distance
        if not 0 < lo <= hi:
            raise ConfigError(f"demo.goal_distance must be (min, max) with 0 < min <= max, got {self.goal_distance}")
        if not isinstance(self.plan_workers, int) or self.plan_workers < 1:
            raise ConfigError(f"demo.plan_workers must be a positive integer, got {self.plan_workers!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"demo.threads must be >= 1 or null, got {self.threads}")

    def section(self) -> dict[str, Any]:
        """The ``demo`` section's own fields, as plain data."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in SECTIONS}

    def to_dict(self) -> dict[str, Any]:
        """All sections as plain data (the run folder's ``config.yaml`` holds the same)."""
        return json.loads(json.dumps(self.run.to_dict()))

    def eval_seeds(self, count: int | None = None) -> list[int]:
        """Seeds of the held-out evaluation goals (the same for every agent)."""
        n = self.eval_episodes if count is None else count
        return [EVAL_SEED_BASE + 1000 * self.seed + i for i in range(n)]

    def eval_env_kwargs(self) -> dict[str, Any]:
        """``gymnasium.make`` keyword arguments of the evaluation episodes (ending on success): the
        collection's (the env the model learnt, e.g. its cameras) with the evaluation task's."""
        return {**self.collect.env_kwargs, "goal_distance": list(self.goal_distance),
                "episode_length": self.eval_episode_length, "terminate_on_success": True}


def scaled_schedule(iterations: int) -> list[str]:
    """Overrides for ``iterations`` with the curriculum and warm-up compressed in the preset's proportions."""
    return [f"train.iterations={iterations}", f"train.curriculum.r_sampling_step_1={max(1, iterations // 10)}",
            f"train.curriculum.r_sampling_step_2={max(2, iterations // 2)}",
            f"train.curriculum.r_exp_alpha={max(1, iterations // 10)}",
            f"train.warmup_iters={min(50, max(1, iterations // 20))}",
            f"train.checkpoint_interval={max(1, min(250, iterations // 4))}", f"train.eval_interval={max(1, iterations // 4)}"]


def demo_settings(preset: str = "push-demo", overrides: Sequence[str] = (), *, tiny: bool = False,
                  iterations: int | None = None, cost: str | None = None) -> DemoConfig:
    """Load and validate every section of ``preset`` (before any work starts).

    Args:
        preset: a preset name or YAML path with the demo's sections.
        overrides: ``section.key=value`` strings, applied last (e.g. ``demo.seed=1``, ``plan.horizon=8``).
        tiny: the tiny configuration (tests).
        iterations: train this many iterations, the curriculum scaled to them.
        cost: plan with this cost instead of the preset's (whose fields are dropped; ``cost.*``
            overrides then apply to it).

    Raises:
        ConfigError: an unknown preset, section or key, or a bad value, naming it.
    """
    from envs.collect import CollectConfig
    from mbvc.config import RunConfig, apply_overrides, load_run_config, section_config

    from .costs import cost_config
    from .costs.registry import with_cost_name
    from .models import EXTRAPOLATION_OK, extrapolation_level
    from .planners import PlannerConfig

    schedule = scaled_schedule(iterations or TINY_ITERATIONS) if iterations or tiny else []
    every = (*schedule, *(TINY if tiny else ()), *overrides)
    run = load_run_config(preset, every)
    if cost is not None:  # the preset's cost section switched to another cost, with the cost.* overrides
        switched = apply_overrides({"cost": with_cost_name(run.app.get("cost"), cost)},
                                   [o for o in every if o.startswith("cost.")], run.source)
        run = RunConfig.from_dict({**run.to_dict(), **switched}, run.source)
    section = run.app.get("demo") or {}
    sections = [key for key in SECTIONS if isinstance(section, dict) and key in section]
    if sections:
        raise ConfigError(f"{run.source}: unknown key 'demo.{sections[0]}' (a section of its own, not a demo field)")
    settings = dataclasses.replace(section_config(DemoConfig, run, "demo"), run=run,
                                   collect=section_config(CollectConfig, run, "collect"),
                                   cost=cost_config(run.app.get("cost"), run.source),
                                   plan=section_config(PlannerConfig, run, "plan"), preset=str(preset),
                                   overrides=tuple(every))
    _check_frames(settings)
    trained = run.model.total_length - run.model.input_length
    if extrapolation_level(settings.plan.horizon, trained) == logging.WARNING:
        log.warning("planning horizon %d exceeds %d times the %d steps the model is trained to predict",
                    settings.plan.horizon, EXTRAPOLATION_OK, trained)
    return settings


def _check_frames(settings: DemoConfig) -> None:
    """The collected frames must be the model's: refused before any episode is collected."""
    model, collect = settings.run.model, settings.collect
    size = (model.img_height or model.img_width, model.img_width)
    if size != (collect.image_size, collect.image_size):
        raise ConfigError(f"collect renders {collect.image_size}x{collect.image_size} frames (collect.image_size) "
                          f"but the model takes {size[0]}x{size[1]} (model.img_height x model.img_width)")


__all__ = ["EVAL_SEED_BASE", "TINY", "DemoConfig", "demo_settings", "scaled_schedule"]
