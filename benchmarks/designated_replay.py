"""Replay MPC episodes of a designated cost and show where it believed the object and agent were.

For each seed, the world model plans with ``designated_push`` (or ``designated_object``) as
``mbvc plan`` would (the model's own planner settings), and every step records the true
pixels of the object and of the agent's effector (``env.unwrapped.designate`` /
``designate_agent``, what a user would click on now) beside what the cost tracked in that
observation (``goal.object_now`` / ``goal.agent_now``). A cost whose track jumps off the object
plans for the wrong object: this is how the block prior of ``designated_push`` was found
(benchmarks/notes/push-state-readout.md).

Usage:
    python benchmarks/designated_replay.py --model runs/draws/readout-s1/model --seeds 1001022,1001003 \
        --set cost.search_radius=null --steps
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.machine import start_control_process  # noqa: E402

#: The benchmark's Push-v0 episodes (as the demo plays them).
PUSH_KWARGS = {"goal_distance": [0.05, 0.1], "episode_length": 40, "terminate_on_success": True}


def replay_episode(agent: Any, env: Any, seed: int) -> dict[str, Any]:
    """Play one episode of ``agent`` (an MPC agent with a designated cost); its per-step record.

    Returns:
        ``{"seed", "success", "final_distance", "steps": [{"object", "object_seen", "agent",
        "agent_seen"}, ...], "object_error", "agent_error"}``: pixels (row, col) after each
        observation, and the mean / max distances between true and tracked positions.
    """
    base = env.unwrapped
    size = tuple(agent.image_size)
    obs, info = env.reset(seed=seed)
    agent.reset(obs, goal=agent.cost.goal_for_env(env, size), seed=seed)
    steps, done = [], False
    while not done:
        action = agent.act(obs)  # observes obs first: goal.object_now is where the cost sees it now
        goal = agent.goal
        row = {"object": list(base.designate(size)[0]), "object_seen": list(goal.object_now)}
        if goal.agent is not None:
            row.update(agent=list(base.designate_agent(size)), agent_seen=list(goal.agent_now))
        steps.append(row)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    record: dict[str, Any] = {"seed": seed, "success": bool(info.get("is_success", False)),
                              "final_distance": float(info.get("distance", np.nan)), "steps": steps}
    for role in ("object", "agent"):
        if role in steps[0]:
            err = [float(np.hypot(*np.subtract(s[role], s[f"{role}_seen"]))) for s in steps]
            record[f"{role}_error"] = {"mean": float(np.mean(err)), "max": float(np.max(err))}
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a trained action-conditioned world model (run folder or file)")
    p.add_argument("--seeds", required=True, help="episode seeds, e.g. 1001022,1001003 or 1000500-1000504")
    p.add_argument("--env", default="mbvc/Push-v0")
    p.add_argument("--cost", default="designated_push", choices=("designated_push", "designated_object"),
                   help="the designated cost to replay")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a plan.* or cost.* override, as mbvc plan --set")
    p.add_argument("--steps", action="store_true", help="print every step, not only each episode's summary")
    p.add_argument("--out", type=Path, help="also write the records as JSON here")
    args = p.parse_args(argv)
    start_control_process(1)
    import envs

    envs.setup_gl()
    from agents.costs import build_cost, cost_config
    from agents.costs.registry import with_cost_name
    from agents.models import PredRNNModel
    from agents.plan import make_env, mpc_agent
    from agents.plan_records import data_env_kwargs, parse_seeds
    from agents.planners import PlannerConfig
    from mbvc.config import apply_overrides, section_config
    from mbvc.errors import MbvcError
    from mbvc.training.artifacts import load_trained

    try:
        trained = load_trained(args.model)
        run = dict(trained.run_config or {})
        sections = {"plan": run.get("plan", {}), "cost": with_cost_name(run.get("cost"), args.cost)}
        sections = apply_overrides(sections, args.overrides, str(args.model))
        cost = build_cost(cost_config(sections["cost"], str(args.model)))
        planner = section_config(PlannerConfig, sections, "plan", str(args.model))
        model = PredRNNModel(trained.model, predict=cost.reads)
        data = (run.get("data") or {}).get("root")  # the dynamics and looks the model learnt, as mbvc plan
        env_kwargs = {**data_env_kwargs(None if data is None else Path(data) / "train", args.env),
                      **(PUSH_KWARGS if args.env == "mbvc/Push-v0" else {})}
        env = make_env(args.env, model.image_size, env_kwargs)
        agent = mpc_agent(model, cost, planner, env)
        records = []
        for seed in parse_seeds(args.seeds):
            rec = replay_episode(agent, env, seed)
            records.append(rec)
            if args.steps:
                for t, s in enumerate(rec["steps"]):
                    line = f"  t{t:2d} object {_px(s['object'])} seen {_px(s['object_seen'])}"
                    if "agent" in s:
                        line += f" | agent {_px(s['agent'])} seen {_px(s['agent_seen'])}"
                    print(line)
            errors = "; ".join(f"{role} tracked within {e['mean']:.2f} px on average, {e['max']:.2f} at worst"
                               for role in ("object", "agent") if (e := rec.get(f"{role}_error")))
            print(f"seed {seed}: {'solved' if rec['success'] else 'failed'}, {100 * rec['final_distance']:.1f} cm "
                  f"from the goal; {errors}", flush=True)
        env.close()
    except MbvcError as exc:
        print(f"benchmarks/designated_replay.py: error: {exc}", file=sys.stderr)
        return 2
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"model": str(args.model), "cost": sections["cost"], "episodes": records},
                                       indent=1, default=float))
    return 0


def _px(p: list[float]) -> str:
    return f"{p[0]:5.1f},{p[1]:5.1f}"


if __name__ == "__main__":
    sys.exit(main())
