"""``mbvc plan``: model-predictive control with a trained world model in a gymnasium env."""
from __future__ import annotations

import argparse
from pathlib import Path

from mbvc.cli import say

HELP = ("plan with a trained world model: MPC on seeded episodes of a gymnasium env next to random and "
        "oracle agents (table, results.json, GIF; resumable)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="run folder or model file of an action-conditioned world model")
    parser.add_argument("--env", required=True, help="gymnasium id, e.g. mbvc/Push-v0")
    parser.add_argument("--env-kwargs", nargs="*", default=[], metavar="K=V",
                        help="keyword arguments of gymnasium.make, values as YAML (e.g. episode_length=40); "
                        "default: those the training data was collected with, when it comes from the same env")
    parser.add_argument("--out", type=Path, required=True, help="output folder (resumed when it holds episodes)")
    parser.add_argument("--preset", help="preset whose plan and cost sections are the defaults "
                        "(default: the model's own run config)")
    parser.add_argument("--cost", help="push, designated_pixel, designated_object, designated_push, goal_image, lpips or module:name (a user's cost)")
    parser.add_argument("--planner", help="cem, icem or mppi")
    parser.add_argument("--population", type=int, help="candidates per planner iteration")
    parser.add_argument("--iterations", type=int, help="planner iterations per plan")
    parser.add_argument("--horizon", type=int, help="planning horizon")
    parser.add_argument("--replan-every", type=int, help="actions executed per plan")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a plan or cost field, e.g. cost.pusher_weight=0.3 (repeatable)")
    episodes = parser.add_mutually_exclusive_group()
    episodes.add_argument("--episodes", type=int, default=10, help="episodes per agent, seeds 0.. (default %(default)s)")
    episodes.add_argument("--seeds", help="episode seeds: comma-separated, or ranges such as 1000000-1000009")
    parser.add_argument("--seed", type=int, default=None, help="planner seed (default: the config's plan.seed)")
    parser.add_argument("--agents", default="mpc,random,oracle", help="subset of mpc, random, oracle")
    parser.add_argument("--data", type=Path, help="training rollouts for costs that learn from them (push); "
                        "default: <data.root>/train of the model's run config")
    parser.add_argument("--device", default="cpu", help="world model device (default %(default)s)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--workers", type=int, default=1, help="processes playing the episodes, one torch thread "
                        "each; the results do not depend on it (default %(default)s)")
    parser.add_argument("--force", action="store_true", help="drop the episodes of an earlier run in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import torch

    import envs

    envs.setup_gl()  # a process-wide setting, before mujoco loads
    from agents.costs import cost_config
    from agents.costs.registry import with_cost_name
    from agents.plan import results_table, run_plan
    from agents.plan_records import data_env_kwargs, parse_env_kwargs, parse_seeds
    from agents.planners import PlannerConfig
    from mbvc.config import apply_overrides, load_preset, section_config
    from mbvc.errors import ConfigError
    from mbvc.training.artifacts import load_trained

    if args.workers < 1:
        raise ConfigError(f"--workers must be a positive integer, got {args.workers}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be a positive integer, got {args.threads}")
    if args.episodes < 1:
        raise ConfigError(f"--episodes must be a positive integer, got {args.episodes}")
    seeds = list(range(args.episodes)) if args.seeds is None else parse_seeds(args.seeds)
    env_kwargs = parse_env_kwargs(args.env_kwargs)
    if args.threads:
        torch.set_num_threads(args.threads)
    trained = load_trained(args.model)
    base = load_preset(args.preset) if args.preset else dict(trained.run_config or {})
    source = base.pop("_source", str(args.model))
    sections = {k: base[k] for k in ("plan", "cost") if k in base}
    if args.cost is not None:  # another cost: the section's fields of the former one do not apply
        sections["cost"] = with_cost_name(sections.get("cost"), args.cost)
    shortcuts = {"plan.name": args.planner, "plan.population_size": args.population,
                 "plan.num_iterations": args.iterations, "plan.horizon": args.horizon,
                 "plan.replan_every": args.replan_every, "plan.seed": args.seed}
    overrides = [f"{k}={v}" for k, v in shortcuts.items() if v is not None] + list(args.overrides)
    for item in overrides:
        if item.split(".", 1)[0] not in ("plan", "cost"):
            raise ConfigError(f"--set {item!r}: mbvc plan takes plan.* and cost.* fields only")
    sections = apply_overrides(sections, overrides, source)
    planner = section_config(PlannerConfig, sections, "plan", source)
    cost = cost_config(sections.get("cost"), source)
    data = args.data
    if data is None and (trained.run_config or {}).get("data", {}).get("root"):
        data = Path(trained.run_config["data"]["root"]) / "train"
    env_kwargs = {**data_env_kwargs(data, args.env), **env_kwargs}
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    say(f"plan: {args.model} in {args.env}, {planner.name} {planner.population_size} x {planner.num_iterations}, "
        f"horizon {planner.horizon}, cost {cost.name}, {len(seeds)} episodes per agent"
        + (f", env kwargs {env_kwargs}" if env_kwargs else "")
        + (f" in {args.workers} worker processes" if args.workers > 1 else "") + f" -> {args.out}")
    report = run_plan(args.model, args.env, args.out, seeds=seeds, env_kwargs=env_kwargs, cost=cost,
                      planner=planner, agents=agents, data_root=data, device=args.device,
                      progress=not args.no_progress, force=args.force, workers=args.workers)
    say(results_table(report["results"]))
    say(f"results: {args.out / 'results.json'}" + (f"\nepisode GIF: {args.out / report['gif']}" if report["gif"] else ""))
    return 0
