"""Model-free baselines at the world model's experience: stable-baselines3 PPO / SAC on any mbvc env.

Each (algorithm, observation) pair trains for ``--steps`` environment steps (by default the
10,000 steps of the ``reacher-demo`` preset's data: 200 episodes of 50 steps), seeded, then
plays the same seeded goals as ``mbvc plan`` (seeds 1000000..). Observations: ``pixels`` (the
frames the world model sees, at ``--image-size``) or ``state`` (the true state vector: an
upper reference the world model never gets).

Usage:
    python benchmarks/sb3_baselines.py --env mbvc/Reacher-v0 --steps 10000 --episodes 50
    python benchmarks/sb3_baselines.py --algos ppo --observations state --steps 500 --episodes 2 --out runs/sb3.json

Writes ``--out`` (JSON) and the same name with ``.md``; trained models stay in ``--work-dir``
(a second run with the same folder evaluates them without training again).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info, save_results, start_control_process  # noqa: E402

log = logging.getLogger("sb3_baselines")
RESULTS = ROOT / "benchmarks" / "results"
EVAL_SEED_BASE = 1_000_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="mbvc/Reacher-v0", help="gymnasium id (default %(default)s)")
    p.add_argument("--env-kwargs", default="{}", help="JSON keyword arguments of gymnasium.make")
    p.add_argument("--algos", default="ppo,sac", help="comma-separated: ppo, sac")
    p.add_argument("--observations", default="pixels,state", help="comma-separated: pixels, pixels_goal, state")
    p.add_argument("--steps", type=int, default=10_000, help="environment steps of training (default %(default)s)")
    p.add_argument("--episodes", type=int, default=50, help="evaluation goals, seeds 1000000.. (default %(default)s)")
    p.add_argument("--image-size", type=int, default=32, help="frame side of pixel policies (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work-dir", type=Path, default=Path("runs/sb3_baselines"), help="trained models")
    p.add_argument("--out", type=Path, default=RESULTS / "sb3_baselines_reacher_cpu.json")
    args = p.parse_args(argv)
    for name in ("steps", "episodes", "image_size", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    try:
        args.env_kwargs = json.loads(args.env_kwargs)
    except json.JSONDecodeError as exc:
        p.error(f"--env-kwargs must be a JSON object, got {args.env_kwargs!r} ({exc.msg})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start_control_process(args.threads)
    from agents import evaluate_agent
    from agents.baselines import SB3Agent, train_sb3
    from agents.plan import make_env

    seeds = [EVAL_SEED_BASE + i for i in range(args.episodes)]
    rows: list[dict[str, Any]] = []
    for algo in [a.strip() for a in args.algos.split(",") if a.strip()]:
        for obs in [o.strip() for o in args.observations.split(",") if o.strip()]:
            def make(size: int = args.image_size) -> Any:
                return make_env(args.env, size, args.env_kwargs)

            out_dir = args.work_dir / f"{algo}-{obs}-{args.steps}"
            start = time.perf_counter()
            if (out_dir / "model.zip").is_file():
                agent, trained = SB3Agent.load(out_dir / "model.zip", algo, obs, device="cpu"), False
            else:
                agent, trained = train_sb3(make, out_dir, algo=algo, observation=obs, total_steps=args.steps,
                                           seed=args.seed, device="cpu"), True
            train_s = time.perf_counter() - start
            env = make()
            try:
                result = evaluate_agent(agent, env, seeds)
            finally:
                env.close()
            summary = {k: v for k, v in result.to_dict().items() if k != "per_episode"}
            row = {"algo": algo, "observation": obs, "train_steps": args.steps, **summary,
                   "final_distance_cm": 100 * result.final_distance,
                   "train_seconds": round(train_s, 1) if trained else None,
                   "successes": [e.success for e in result.episodes]}
            log.info("%s from %s: success %.0f%%, final distance %.1f cm", algo, obs, 100 * row["success_rate"],
                     row["final_distance_cm"])
            rows.append(row)
    command = "python benchmarks/sb3_baselines.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = {"benchmark": "sb3_baselines", "env": args.env, "env_kwargs": args.env_kwargs, "seeds": seeds,
              "image_size": args.image_size, "rows": rows, "command": command, "threads": args.threads,
              "machine": machine_info()}
    lines = [f"# Model-free baselines on {args.env} ({args.steps} environment steps of training)", "",
             f"`{command}`; {len(seeds)} goals (seeds {seeds[0]}-{seeds[-1]}); "
             f"{report['machine'].get('cpu', '?')}, {args.threads} thread(s).", "",
             "| agent | success | final distance (cm) | training (s) |", "|---|---|---|---|"]
    for r in rows:
        secs = "-" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"
        lines.append(f"| SB3 {r['algo'].upper()} from {r['observation']} | {100 * r['success_rate']:.0f}% | "
                     f"{r['final_distance_cm']:.1f} | {secs} |")
    save_results(args.out, report, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
