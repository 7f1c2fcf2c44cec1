"""Image costs with a perfect model: MPC through the true simulator's rendered frames.

The oracle model (:class:`agents.models.OracleModel` with rendering) predicts exactly what the
camera would see, so a failure here is the cost's (or the planner's), not a world model's. Each
cost named in ``--costs`` (registered names, e.g. ``goal_image``, ``designated_object``,
``lpips``) plans on the same seeded goals; goals come from the env (``goal_image()`` for image
costs, ``designate(size)`` for the designated-object cost).

Usage:
    python benchmarks/costs_oracle.py --env mbvc/Reacher-v0 --costs designated_object,goal_image --episodes 10
    python benchmarks/costs_oracle.py --env mbvc/Push-v0 --costs push --data runs/demo/data/train \
        --seeds 1000506,1000508 --planner icem --population 67 --iterations 3 --horizon 10 \
        --env-kwargs '{"goal_distance": [0.05, 0.1], "episode_length": 40, "terminate_on_success": true}'
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info, save_results, start_control_process

log = logging.getLogger("costs_oracle")
RESULTS = ROOT / "benchmarks" / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="mbvc/Reacher-v0", help="gymnasium id of an mbvc env (default %(default)s)")
    p.add_argument("--env-kwargs", default="{}", help="JSON keyword arguments of gymnasium.make")
    p.add_argument("--costs", default="designated_object,goal_image", help="registered cost names, comma-separated")
    p.add_argument("--episodes", type=int, default=10, help="goals per cost (seeds 1000000..)")
    p.add_argument("--seeds", help="goal seeds instead: comma-separated, or ranges such as 1000500-1000539")
    p.add_argument("--data", type=Path, help="training rollouts, for costs that learn from them (push)")
    p.add_argument("--image-size", type=int, default=32, help="frame side (default %(default)s)")
    p.add_argument("--planner", default="cem", help="cem, icem or mppi")
    p.add_argument("--population", type=int, default=32)
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--horizon", type=int, default=8)
    p.add_argument("--replan-every", type=int, default=2)
    p.add_argument("--set", dest="cost_set", action="append", default=[], metavar="KEY=VALUE",
                   help="cost field for every cost that has it, e.g. patch_size=1 (repeatable; values as YAML)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS / "costs_oracle_cpu.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import json

    args = parse_args(argv)
    start_control_process(args.threads)
    from agents import MPCAgent, OracleModel, evaluate_agent
    from agents.costs import COSTS, build_cost
    from agents.costs.push import BLOCK_COLOUR
    from agents.plan import make_env
    from agents.plan_records import parse_seeds
    from agents.planners import PlannerConfig

    env = make_env(args.env, args.image_size, json.loads(args.env_kwargs))
    size = (args.image_size, args.image_size)
    seeds = [1_000_000 + i for i in range(args.episodes)] if args.seeds is None else parse_seeds(args.seeds)
    planner = PlannerConfig(name=args.planner, population_size=args.population, num_iterations=args.iterations,
                            horizon=args.horizon, replan_every=args.replan_every, seed=0)
    import yaml

    fields = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.cost_set)}
    rows = []
    for name in [c.strip() for c in args.costs.split(",") if c.strip()]:
        own = {f.name for f in dataclasses.fields(COSTS[name])} if name in COSTS else {"kwargs"}
        section = {"name": name, **{k: v for k, v in fields.items() if k in own}}  # --set fields of this cost
        if name == "designated_pixel":
            section.setdefault("colour", list(BLOCK_COLOUR))  # the push block's rendered colour
        cost = build_cost(section, args.data)
        oracle = OracleModel(env, image_size=size, render=True)
        try:
            agent = MPCAgent(oracle, cost, planner, horizon=planner.horizon, action_space=env.action_space,
                             replan_every=planner.replan_every, image_size=size)
            start = time.perf_counter()
            result = evaluate_agent(agent, env, seeds, goal_fn=lambda e: cost.goal_for_env(e, size))
            wall = time.perf_counter() - start
        finally:
            oracle.close()
        row = {"cost": name, **{k: v for k, v in result.to_dict().items() if k != "per_episode"},
               "final_distance_cm": 100 * result.final_distance, "wall_s": round(wall, 1)}
        log.info("%s: success %.0f%%, final distance %.1f cm", name, 100 * row["success_rate"], row["final_distance_cm"])
        rows.append(row)
    env.close()
    report = {"benchmark": "costs_oracle", "env": args.env, "env_kwargs": json.loads(args.env_kwargs), "seeds": seeds,
              "planner": vars(planner) if hasattr(planner, "__dict__") else str(planner), "image_size": args.image_size,
              "rows": rows, "command": "python benchmarks/costs_oracle.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "threads": args.threads, "machine": machine_info()}
    lines = [f"# Costs with the oracle model on rendered frames ({args.env})", "",
             f"`{report['command']}`; {planner.name} {planner.population_size} x {planner.num_iterations}, horizon "
             f"{planner.horizon}, replan every {planner.replan_every}; {len(seeds)} goals; "
             f"{report['machine'].get('cpu', '?')}, {args.threads} thread(s).", "",
             "| cost | success | final distance (cm) | planning (ms/step) |", "|---|---|---|---|"]
    for r in rows:
        ms = "-" if r.get("plan_ms") is None else f"{r['plan_ms']:.0f}"
        lines.append(f"| {r['cost']} | {100 * r['success_rate']:.0f}% | {r['final_distance_cm']:.1f} | {ms} |")
    save_results(args.out, report, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
