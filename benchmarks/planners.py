"""Planners at equal model calls: CEM, iCEM and MPPI on the push goals, with the oracle model.

Every planner gets the same number of objective evaluations (candidate sequences scored) per
plan, ``population x iterations``, at each budget of ``--budgets``; the model is the true
simulator (:class:`agents.models.OracleModel`, no rendering) with the true-state cost
(:class:`agents.models.OracleStateCost`), so the table compares the optimisers alone, not a
learnt model or an image cost. Goals, episode length and the replanning schedule are the
push demo's (``push-demo`` preset: horizon 10, replan every 2, 40 steps, ending on success).

Reported per planner and budget: success, final distance (cm), evaluations per plan (counted
by the optimiser), and planning ms per control step (all plans' time / steps) on this machine.

Usage:
    python benchmarks/planners.py --episodes 10 --budgets 30,90 --threads 1
    python benchmarks/planners.py --quick      # a smoke run: 2 episodes, tiny budgets
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info, save_results, start_control_process

log = logging.getLogger("planners")
RESULTS = ROOT / "benchmarks" / "results"
PLANNERS = ("cem", "icem", "mppi")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--episodes", type=int, default=10, help="goals per planner and budget (default %(default)s)")
    p.add_argument("--budgets", default="30,90", help="objective evaluations per plan, comma-separated")
    p.add_argument("--iterations", type=int, default=3, help="iterations per plan (population = budget / iterations)")
    p.add_argument("--planners", default=",".join(PLANNERS), help="subset of cem, icem, mppi")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default %(default)s)")
    p.add_argument("--out", type=Path, default=RESULTS / "planners_cpu.json", help="results file (.json; .md next to it)")
    p.add_argument("--quick", action="store_true", help="a smoke run: 2 episodes, budgets 6 and 12")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every planner at every budget; return the report (also written to ``args.out``)."""
    start_control_process(args.threads)
    from agents import MPCAgent, OracleModel, OracleStateCost, evaluate_agent
    from agents.demo import demo_settings
    from agents.plan import ORACLE_PUSHER_WEIGHT, make_env
    from mbvc.errors import ConfigError

    planners = [p.strip() for p in args.planners.split(",") if p.strip()]
    if any(p not in PLANNERS for p in planners):
        raise ConfigError(f"--planners: choose from {list(PLANNERS)}, got {planners}")
    budgets = [6, 12] if args.quick else [int(b) for b in args.budgets.split(",")]
    episodes = 2 if args.quick else args.episodes
    cfg = demo_settings(tiny=args.quick, overrides=["demo.progress=false"])
    seeds = cfg.eval_seeds(episodes)
    env = make_env("mbvc/Push-v0", cfg.collect.image_size, cfg.eval_env_kwargs())
    oracle = OracleModel(env, render=False)
    rows = []
    try:
        cost = OracleStateCost(pusher_weight=ORACLE_PUSHER_WEIGHT)
        for budget in budgets:
            population = budget // args.iterations
            if population < 2:
                raise ConfigError(f"--budgets {budget} is below 2 candidates x {args.iterations} iterations")
            for name in planners:
                planner = cfg.plan.replace(name=name, population_size=population, num_iterations=args.iterations)
                agent = MPCAgent(oracle, cost, planner, horizon=planner.horizon, action_space=env.action_space,
                                 replan_every=planner.replan_every)
                steps = 0

                def on_step(t: int, obs: Any, action: Any, info: Any) -> None:
                    nonlocal steps
                    steps += 1

                start = time.perf_counter()
                result = evaluate_agent(agent, env, seeds, goal_fn=lambda e: None, on_step=on_step)
                wall = time.perf_counter() - start
                row = {"planner": name, "budget": budget, "population": population, "iterations": args.iterations,
                       "evaluations_per_plan": int(agent.trajectory.optimizer.info.num_evaluations), "success_rate": result.success_rate,
                       "final_distance_cm": 100 * result.final_distance, "episodes": len(result.episodes),
                       "steps": steps, "wall_s": round(wall, 2),
                       "plan_ms_per_step": float(np.mean([ep.plan_ms for ep in result.episodes if ep.plan_ms is not None]))
                       if any(ep.plan_ms is not None for ep in result.episodes) else None}
                log.info("%s at %d evaluations/plan: success %.0f%%, distance %.1f cm, %.1f ms/step", name, budget,
                         100 * row["success_rate"], row["final_distance_cm"], row["plan_ms_per_step"] or float("nan"))
                rows.append(row)
    finally:
        oracle.close()
        env.close()
    report = {"benchmark": "planners", "env": "mbvc/Push-v0", "model": "oracle simulator, true-state cost",
              "seeds": seeds, "horizon": cfg.plan.horizon, "replan_every": cfg.plan.replan_every,
              "episode_length": cfg.eval_episode_length, "threads": args.threads, "rows": rows,
              "command": "python benchmarks/planners.py " + " ".join(sys.argv[1:]), "machine": machine_info()}
    save_results(args.out, report, markdown(report))
    return report


def markdown(report: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    m = report["machine"]
    lines = [f"# Planners at equal model calls ({report['env']}, {report['model']})", "",
             f"`{report['command']}` on {m.get('cpu', m.get('processor', '?'))}, {report['threads']} thread(s); "
             f"horizon {report['horizon']}, replan every {report['replan_every']}, "
             f"{report['episode_length']} steps, {len(report['seeds'])} goals.", "",
             "| planner | evaluations / plan | population x iterations | success | final distance (cm) | planning (ms/step) |",
             "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        ms = "-" if r["plan_ms_per_step"] is None else f"{r['plan_ms_per_step']:.0f}"
        lines.append(f"| {r['planner']} | {r['evaluations_per_plan']} | {r['population']} x {r['iterations']} | "
                     f"{100 * r['success_rate']:.0f}% | {r['final_distance_cm']:.1f} | {ms} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    report = run(parse_args(argv))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
