"""``mbvc demo``: collect push rollouts, train a PredRNN-V2 world model, plan with it (resumable)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mbvc.cli import say

HELP = ("the end-to-end demo: collect pushing rollouts, train an action-conditioned PredRNN-V2, "
        "run visual MPC on held-out goals next to random and oracle agents")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/demo"),
                        help="output folder; finished stages found there are skipped (default: %(default)s)")
    parser.add_argument("--episodes", type=int, help="training episodes to collect (default 500; tiny 6)")
    parser.add_argument("--episode-length", type=int, help="steps per collected episode (default 30)")
    parser.add_argument("--num-envs", type=int, help="collection worker processes (default 2)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--train-minutes", type=float,
                        help="training time budget; the iterations are fitted to it (default 8)")
    budget.add_argument("--iterations", type=int, help="training iterations (instead of a time budget; reproducible)")
    parser.add_argument("--eval-episodes", type=int, help="evaluation episodes per agent (default 10)")
    parser.add_argument("--population", type=int, help="planner candidates per iteration (default 200)")
    parser.add_argument("--horizon", type=int, help="planning horizon (default 10)")
    parser.add_argument("--replan-every", type=int, help="actions executed per plan (default 2)")
    parser.add_argument("--cost", choices=("push", "designated_pixel", "goal_image"),
                        help="image cost of the MPC agent (default push)")
    parser.add_argument("--no-finger-calibration", action="store_true",
                        help="push cost: locate the finger with the rod-as-a-bar heuristic instead of a detector "
                             "calibrated on the collected rollouts")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of the push-demo preset, e.g. model.num_hidden=[32,32] (repeatable)")
    parser.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, help="seed of data, training, planning and goals (default 0)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny configuration for tests: a few 16x16 episodes, a few iterations, few candidates")
    parser.add_argument("--force", action="store_true",
                        help="redo every stage (removes data/, model/ and the reports in --out)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorBoard may import TensorFlow
    import envs

    envs.setup_gl()  # a process-wide setting, before mujoco loads
    from mbvc.demo import demo_config, results_table, run_demo

    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    cfg = demo_config(
        tiny=args.tiny, episodes=args.episodes, episode_length=args.episode_length, num_envs=args.num_envs,
        train_minutes=args.train_minutes, iterations=args.iterations, eval_episodes=args.eval_episodes,
        population=args.population, horizon=args.horizon, replan_every=args.replan_every, cost=args.cost,
        finger_calibration=False if args.no_finger_calibration else None,
        train_overrides=tuple(args.overrides) or None, device=args.device, seed=args.seed, threads=args.threads,
        progress=False if args.no_progress else None,
    )
    budget = f"{cfg.iterations} iterations" if cfg.iterations is not None else f"{cfg.train_minutes:g} min"
    say(f"mbvc demo -> {args.out}: {cfg.episodes} episodes of {cfg.image_size}x{cfg.image_size} push frames, "
          f"{cfg.preset} trained for {budget}, {cfg.eval_episodes} evaluation goals"
          + (" (tiny)" if cfg.tiny else ""))
    report = run_demo(cfg, args.out, force=args.force)
    times = report["timings_s"]
    say()
    say(results_table(report))
    say()
    stages = ", ".join(f"{k} {v:.0f} s" + (" (skipped)" if k in report["skipped"] else "")
                       for k, v in times.items() if k not in ("total", "report"))
    say(f"stages: {stages}")
    say(f"episode GIF: {report['gif']}\nreport: {Path(args.out) / 'report.json'}")
    return 0
