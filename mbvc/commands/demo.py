"""``mbvc demo``: collect push rollouts, train a world model, plan with it (resumable).

The same calls as ``mbvc collect``, ``mbvc train`` and ``mbvc plan`` (docs/demo.md shows them
one by one), with every setting in the ``push-demo`` preset's sections.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mbvc.cli import say

HELP = ("the end-to-end demo: collect pushing rollouts, train an action-conditioned PredRNN-V2, "
        "run visual MPC on held-out goals next to random and oracle agents")

#: Command-line shortcuts for preset fields (``--set section.key=value`` reaches every field).
SHORTCUTS = {"episodes": "collect.num_episodes", "episode_length": "collect.episode_length",
             "num_envs": "collect.num_envs",
             "eval_episodes": "demo.eval_episodes", "population": "plan.population_size", "horizon": "plan.horizon",
             "replan_every": "plan.replan_every", "device": "demo.device", "seed": "demo.seed",
             "threads": "demo.threads"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/demo"),
                        help="output folder; finished stages found there are skipped (default: %(default)s)")
    parser.add_argument("--preset", default="push-demo", help="preset with the demo's sections (default: %(default)s)")
    parser.add_argument("--episodes", type=int, help="training episodes to collect (collect.num_episodes)")
    parser.add_argument("--episode-length", type=int, help="steps per collected episode (collect.episode_length)")
    parser.add_argument("--num-envs", type=int, help="collection worker processes (collect.num_envs)")
    parser.add_argument("--iterations", type=int,
                        help="training iterations, the curriculum scaled to them (default: the preset's train.iterations)")
    parser.add_argument("--eval-episodes", type=int, help="evaluation episodes per agent (demo.eval_episodes)")
    parser.add_argument("--population", type=int, help="planner candidates per iteration (plan.population_size)")
    parser.add_argument("--horizon", type=int, help="planning horizon (plan.horizon)")
    parser.add_argument("--replan-every", type=int, help="actions executed per plan (plan.replan_every)")
    parser.add_argument("--cost", help="image cost: push, designated_push, goal_image, lpips, designated_pixel "
                        "(with --set cost.colour=[r,g,b]) or module:name (cost.name; the preset's other cost fields "
                        "are dropped)")
    parser.add_argument("--no-finger-calibration", action="store_true",
                        help="push cost: locate the finger with the rod-as-a-bar heuristic instead of a detector "
                             "calibrated on the collected rollouts")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a preset field, e.g. model.num_hidden=[32,32] or plan.name=icem (repeatable)")
    parser.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, help="the one seed of data, training, planning and goals (demo.seed)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (demo.threads, 2 in push-demo: the weights depend on the thread count)")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny configuration for tests: a few 16x16 episodes, a few iterations, few candidates")
    parser.add_argument("--force", action="store_true",
                        help="redo every stage (removes data/, model/, plan/ and the records in --out)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorBoard may import TensorFlow
    import envs

    envs.setup_gl()  # a process-wide setting, before mujoco loads
    from agents.demo import demo_settings, run_demo
    from agents.plan import results_table

    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    from mbvc.errors import ConfigError

    for name in ("episodes", "episode_length", "num_envs", "eval_episodes", "population", "horizon", "replan_every",
                 "threads", "iterations"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    overrides = [f"{key}={getattr(args, name)}" for name, key in SHORTCUTS.items() if getattr(args, name) is not None]
    overrides += ["cost.finger_calibration=false"] * args.no_finger_calibration
    overrides += ["demo.progress=false"] * args.no_progress
    settings = demo_settings(args.preset, [*overrides, *args.overrides], tiny=args.tiny, iterations=args.iterations,
                             cost=args.cost)
    train = settings.run.train
    say(f"mbvc demo -> {args.out}: {settings.collect.num_episodes} episodes of {settings.collect.image_size}x"
        f"{settings.collect.image_size} push frames, {settings.run.model.name} trained for {train.iterations} iterations, "
        f"{settings.eval_episodes} evaluation goals" + (" (tiny)" if args.tiny else ""))
    report = run_demo(settings, args.out, force=args.force)
    say()
    say(results_table(report["results"]))
    say()
    times = report["timings_s"]
    stages = ", ".join(f"{k} {v:.0f} s" + (" (skipped)" if k in report["skipped"] else "")
                       for k, v in times.items() if k != "total")
    machine = report["machine"]
    say(f"trained {report['iterations']} iterations; stages: {stages}\n"
        f"machine: {machine['cpu']}, {machine['torch_threads']} torch threads, device {machine.get('device')}")
    gif = Path(args.out) / report["gif"] if report["gif"] else "none"  # the report's path is relative to --out
    say(f"episode GIF: {gif}\nreport: {Path(args.out) / 'report.json'}")
    return 0
