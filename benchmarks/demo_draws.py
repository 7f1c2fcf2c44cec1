"""The demo over several training draws: success per draw, on the goals away from the camera and the others.

A success rate of a trained agent is a lottery over training seeds, so a recipe is judged by the
mean over draws (seeds 0, 1, 2 by default), each shown. Every draw is the whole demo
(:func:`agents.demo.run_demo`: collect, train, plan on the 50 benchmark goals) with
``demo.seed`` set; finished draws are resumed or skipped, so a long run can be continued. The
table splits the goals the agent fails most, pushes away from the BAIR-view camera (the
pusher's rod then hides the block; block-to-goal direction 60-145 degrees on the table), from
the others.

Usage:
    python benchmarks/demo_draws.py --name default                         # the push-demo preset, seeds 0-2
    python benchmarks/demo_draws.py --name flow --set model.output=flow --seeds 0,1
    python benchmarks/demo_draws.py --name default --seeds 0 --root runs/draws --quick   # tiny, seconds
    python benchmarks/demo_draws.py --name flow4700 --iterations 4700 --set model.output=flow \
        --also-cost designated_push

``--also-cost NAME`` plans each draw's trained model once more with another cost (MPC only, the
same goals and planner) into ``<draw>/plan_<NAME>``, and tabulates its success beside the
demo's: which part of a gain is the model's and which the cost's.

Results: ``benchmarks/results/demo_draws_<name>_cpu.json`` and ``.md`` (the machine and its load
with every draw).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.machine import save_results  # noqa: E402

#: Block-to-goal directions (degrees on the table, 90 = straight away from the BAIR-view camera)
#: of the pushes on which the rod hides the block (benchmarks/notes/push-away-goals.md).
AWAY_DEGREES = (60.0, 145.0)


def away_goals(settings: Any, seeds: list[int]) -> list[int]:
    """The evaluation seeds whose push points away from the camera (:data:`AWAY_DEGREES`)."""
    from agents.plan import make_env
    from envs.scene import StateLayout

    env = make_env(settings.collect.env_id, settings.collect.image_size, settings.eval_env_kwargs())
    try:
        away = []
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            block = obs["state"][StateLayout(1).object(0)][:2]
            dx, dy = env.unwrapped.goal - block
            if AWAY_DEGREES[0] <= math.degrees(math.atan2(dy, dx)) <= AWAY_DEGREES[1]:
                away.append(seed)
        return away
    finally:
        env.close()


def solved_split(mpc: dict[str, Any], away: set[int]) -> dict[str, Any]:
    """An MPC agent's success rate, and the goals it solved away from the camera and elsewhere."""
    solved = {e["seed"] for e in mpc["per_episode"] if e["success"]}
    played = {e["seed"] for e in mpc["per_episode"]}
    return {"success": mpc["success_rate"], "away_solved": len(solved & away), "others_solved": len(solved - away),
            "goals": mpc["episodes"], "away_goals": len(played & away)}


def draw_row(report: dict[str, Any], away: set[int]) -> dict[str, Any]:
    """One draw's figures from its demo report."""
    mpc = report["results"]["mpc"]
    validation = report["training"].get("validation") or {}
    return {**solved_split(mpc, away), "oracle": report["results"].get("oracle", {}).get("success_rate"),
            "val_mse": validation.get("eval/mse"), "val_ssim": validation.get("eval/ssim"),
            "copy_last_mse": validation.get("eval_copy_last/mse"), "plan_ms": mpc.get("plan_ms"),
            "minutes": {k: round(v / 60, 2) for k, v in report["timings_s"].items()},
            "skipped": report["skipped"]}


def also_cost(out: Path, settings: Any, name: str, away: set[int]) -> dict[str, Any]:
    """Plan a finished draw's model with the cost ``name`` (MPC only), resumable; its success figures."""
    from agents.costs import cost_config
    from agents.costs.registry import with_cost_name
    from agents.plan import run_plan

    section = with_cost_name(settings.run.app.get("cost"), name)
    result = run_plan(out / "model", settings.collect.env_id, out / f"plan_{name}", seeds=settings.eval_seeds(),
                      env_kwargs=settings.eval_env_kwargs(), cost=cost_config(section), planner=settings.plan,
                      agents=["mpc"], data_root=out / "data" / "train", device="cpu", progress=False,
                      restart_on_change=True, workers=settings.plan_workers)["results"]["mpc"]
    return solved_split(result, away)


def markdown(report: dict[str, Any]) -> str:
    """The draws as a Markdown page."""
    rows = report["draws"]
    lines = [f"# The demo over training draws: {report['name']}", "",
             f"Command: `{report['command']}`; overrides {report['overrides'] or 'none'}. Machine: "
             f"{report['machine']['cpu']}, {report['machine']['torch_threads']} torch threads, {report['date']}.",
             "Goals: each draw's own evaluation goals (seeds 1000000 + 1000 x seed + i, as `mbvc demo --seed` plays "
             "them); *away* counts those pushing away from the camera, where the rod hides the block.", "",
             "| draw (seed) | success | away | others | oracle | val MSE/frame (copy-last) | SSIM | "
             "minutes: collect / train / plan / total |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for seed, r in rows.items():
        m = r["minutes"]
        lines.append(f"| {seed} | {100 * r['success']:.0f}% | {r['away_solved']} of {r['away_goals']} | "
                     f"{r['others_solved']} of {r['goals'] - r['away_goals']} | {100 * (r['oracle'] or 0):.0f}% | "
                     f"{r['val_mse']:.2f} ({r['copy_last_mse']:.2f}) | {r['val_ssim']:.3f} | "
                     f"{m.get('collect', 0):.1f} / {m.get('train', 0):.1f} / {m.get('plan', 0):.1f} / "
                     f"{m.get('total', 0):.1f} |")
    lines += ["", f"Mean success over {len(rows)} draw(s): **{100 * report['mean_success']:.0f}%**. Minutes are the "
              "stages' own as first run (a draw run beside other jobs is slower); compare them only between draws run "
              "alone.", ""]
    for name in report.get("also_costs", []):
        figures = [r["also"][name] for r in rows.values()]
        per_draw = ", ".join(f"{100 * f['success']:.0f}% (away {f['away_solved']})" for f in figures)
        mean = 100 * sum(f["success"] for f in figures) / len(figures)
        lines += [f"The same models planned with the `{name}` cost (MPC only, same goals and planner): {per_draw}; "
                  f"mean **{mean:.0f}%**.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True, help="the recipe's name in the results file")
    p.add_argument("--seeds", default="0,1,2", help="training draws (demo.seed), comma-separated")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a preset override of the recipe, e.g. model.output=flow (repeatable)")
    p.add_argument("--root", type=Path, default=Path("runs/draws"), help="demo folders <root>/<name>-s<seed>")
    p.add_argument("--quick", action="store_true", help="the demo's tiny configuration (checks the script)")
    p.add_argument("--out", type=Path, help="results stem (default benchmarks/results/demo_draws_<name>_cpu)")
    p.add_argument("--cost", help="plan with this cost instead of the preset's (as mbvc demo --cost)")
    p.add_argument("--iterations", type=int, help="train this many iterations, the curriculum scaled to them")
    p.add_argument("--also-cost", dest="also", action="append", default=[], metavar="NAME",
                   help="also plan each draw's model with this cost (repeatable)")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import envs

    envs.setup_gl()
    from agents.demo import demo_settings, run_demo
    from mbvc.errors import MbvcError
    from mbvc.machine import machine_info

    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        rows, away_by_draw = {}, {}
        for seed in seeds:
            settings = demo_settings(overrides=[*args.overrides, f"demo.seed={seed}", "demo.progress=false"],
                                     tiny=args.quick, cost=args.cost, iterations=args.iterations)
            out = args.root / f"{args.name}-s{seed}"
            report = run_demo(settings, out)
            away = set(away_goals(settings, report["eval_seeds"]))  # each draw plays its own goals
            away_by_draw[seed] = sorted(away)
            rows[seed] = draw_row(report, away)
            rows[seed]["also"] = {name: also_cost(out, settings, name, away) for name in args.also}
    except MbvcError as exc:
        print(f"benchmarks/demo_draws.py: error: {exc}", file=sys.stderr)
        return 2
    result = {"benchmark": "demo_draws", "name": args.name, "overrides": args.overrides,
              "command": "python benchmarks/demo_draws.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_info("cpu"), "quick": args.quick,
              "cost": args.cost, "iterations": args.iterations, "also_costs": args.also, "away_goals": away_by_draw, "draws": rows,
              "mean_success": sum(r["success"] for r in rows.values()) / len(rows)}
    stem = args.out or ROOT / "benchmarks" / "results" / f"demo_draws_{args.name}_cpu"
    save_results(stem.with_suffix(".json"), result, markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
