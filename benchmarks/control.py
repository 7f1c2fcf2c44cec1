"""Control benchmark: every agent on the same seeded push goals, and the planners' time per step.

Agents (all on ``mbvc/Push-v0`` with the demo's held-out goals, ending on success):

* ``random``: uniform actions; ``scripted``: the pushing controller on the true state (upper reference);
* ``oracle_mpc``: CEM-family planning in a copy of the simulator, on the true state;
* ``predrnn_v2_mpc`` / ``predrnn_mpc``: the same planner through an action-conditioned
  PredRNN-V2 / PredRNN trained on the demo's rollouts, with the demo's image cost;
* ``copy_last_mpc``: the same planner through copy-last-frame (no foresight: a lower reference);
* ``sb3_<algo>_pixels`` / ``sb3_<algo>_state``: stable-baselines3 trained for as many environment
  steps as the world models' data holds.

The data come from the demo's output folder (``--demo-dir``; the demo's collect stage runs
there first when it has not). The world models are the demo's PredRNN-V2 (its fixed-iteration
training) and a PredRNN trained as many iterations, or, with ``--train-iterations N``, both trained for N
iterations; they and the SB3 policies are trained once into ``--work-dir`` and reused on later
runs. Rows of agents not run are kept from the results file when the settings match, so agents
can be (re)run separately, even at the same time in separate processes.

Planning time: per model, the mean time of one plan at the default planner settings (200
candidates x 3 iterations, horizon 10) from real observations, on the planning device; with
one plan per control step that is the time per step. Results go to
``benchmarks/results/control_<device>.json`` and ``.md``, with the machine and its load.

Usage:
    python benchmarks/control.py --episodes 50                 # the full benchmark (hours on a busy CPU)
    python benchmarks/control.py --episodes 50 --mpc-episodes 20 --threads 1
    python benchmarks/control.py --episodes 50 --train-iterations 14000 --threads 1   # the published table
    python benchmarks/control.py --agents predrnn_v2_mpc --timing-only  # planning time alone, on an idle machine
    python benchmarks/control.py --quick                       # a smoke run: tiny everything
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info
from mbvc.io import atomic_write, write_json

log = logging.getLogger("control")
RESULTS = ROOT / "benchmarks" / "results"
MPC_AGENTS = ("oracle_mpc", "predrnn_v2_mpc", "predrnn_mpc", "copy_last_mpc")
AGENTS = ("random", "scripted", *MPC_AGENTS, "sb3_pixels", "sb3_state")
#: The planner settings at which planning time is reported (the issue's defaults).
TIMING = {"population": 200, "iterations": 3, "horizon": 10}
#: SB3's default CNN needs frames of at least 36 pixels: pixel policies see 64x64 frames.
SB3_PIXELS = 64


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo-dir", type=Path, default=Path("runs/demo"), help="the demo's output folder (reused)")
    p.add_argument("--work-dir", type=Path, default=Path("runs/control"), help="PredRNN and SB3 runs (reused)")
    p.add_argument("--episodes", type=int, default=50, help="seeded goals for every agent (default %(default)s)")
    p.add_argument("--mpc-episodes", type=int, help="goals for the learnt-model and oracle MPC agents "
                   "(default: --episodes; they are the slow ones)")
    p.add_argument("--agents", default=",".join(AGENTS), help="comma-separated subset of " + ", ".join(AGENTS))
    p.add_argument("--train-iterations", type=int, help="train both world models for this many iterations into "
                   "--work-dir (reused when there) instead of using the demo's PredRNN-V2 and a PredRNN "
                   "trained as many iterations")
    p.add_argument("--timing-only", action="store_true", help="measure the MPC agents' planning time only (on an "
                   "idle machine, say), keeping their success rows from the results file")
    p.add_argument("--sb3-algo", default="ppo", choices=("ppo", "sac"))
    p.add_argument("--timing-plans", type=int, default=5, help="plans timed per model (after one warm-up)")
    p.add_argument("--device", default="cpu", help="planning device: cpu or cuda (default %(default)s)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--quick", action="store_true", help="tiny demo models, 3 goals, few SB3 steps: checks the script")
    p.add_argument("--output", type=Path, help="results stem (default benchmarks/results/control_<device>)")
    p.add_argument("--fresh", action="store_true", help="drop the rows of an existing results file (by default the "
                   "agents not run now keep their rows, when the file's task and planner settings are the same)")
    return p.parse_args(argv)


def planning_ms(agent: Any, env: Any, seeds: list[int], plans: int, goal_fn: Any) -> float:
    """Mean milliseconds of one plan from real observations (one warm-up plan first)."""
    times = []
    for i in range(plans + 1):
        obs, _ = env.reset(seed=seeds[i % len(seeds)])
        agent.reset(obs, goal=goal_fn(env), seed=i)
        agent.act(obs)  # the first act plans
        if i:
            times.append(agent.plan_times[-1])
    return 1000.0 * float(np.mean(times))


TASK_KEYS = ("image_size", "goal_distance", "eval_episode_length", "seed")
PLANNER_KEYS = ("cost", "pusher_weight", "keep_out_weight", "finger_calibration", "planner", "population", "planner_iterations", "horizon",
                "replan_every", "oracle_planner", "oracle_population")


def settings(cfg: Any) -> dict[str, Any]:
    """The task and planner settings (of :func:`agents.demo.demo_settings`) that make rows of two runs comparable."""
    c, p = cfg.cost, cfg.plan
    return {"image_size": cfg.collect.image_size, "goal_distance": list(cfg.goal_distance),
            "eval_episode_length": cfg.eval_episode_length, "seed": cfg.seed, "cost": c.name,
            "pusher_weight": getattr(c, "pusher_weight", None), "keep_out_weight": getattr(c, "keep_out_weight", None),
            "finger_calibration": getattr(c, "finger_calibration", None), "planner": p.name,
            "population": p.population_size,
            "planner_iterations": p.num_iterations, "horizon": p.horizon, "replan_every": p.replan_every,
            "oracle_planner": cfg.oracle_planner, "oracle_population": cfg.oracle_population}


def previous_rows(path: Path, wanted: list[str], cfg: Any, timing_only: bool = False) -> dict[str, Any]:
    """Rows of an earlier run in ``path`` for the agents not run now: all of them when its task and
    planner settings are the current ones, only the non-planning agents' when just the task is."""
    if not path.is_file():
        return {}
    import json

    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s unreadable (%s): starting a fresh results file", path, exc)
        return {}
    before, now = old.get("settings") or {}, settings(cfg)
    if any(before.get(k) != now[k] for k in TASK_KEYS):
        log.info("%s is for another task: its rows are not kept", path)
        return {}
    same_planner = all(before.get(k) == now[k] for k in PLANNER_KEYS)
    keep_row = lambda k: k not in wanted and (same_planner or k not in MPC_AGENTS)
    keep = {k: v for k, v in old.get("results", {}).items() if keep_row(k) or (timing_only and same_planner)}
    timing = {k: v for k, v in old.get("planning_time", {}).items() if keep_row(k)}
    if keep:
        log.debug("keeping the rows of %s from %s", ", ".join(keep), path)
    models = {k: v for k, v in old.get("world_models", {}).items()
              if f"{k}_mpc" in keep}
    history = old.get("commands") or ([old["command"]] if "command" in old else [])
    return {"results": keep, "planning_time": timing, "world_models": models, "commands": history}


def world_model(cfg: Any, data_root: Path, run_dir: Path, extra: list[str]) -> tuple[Any, dict[str, Any]]:
    """The model trained in ``run_dir`` (trained there first when it is not) and what its training did."""
    from agents.demo import train_world_model
    from mbvc.config import load_run_config
    from mbvc.training.artifacts import load_trained
    from mbvc.training.logger import read_jsonl

    if not (run_dir / "model.safetensors").is_file():
        run_cfg = load_run_config(cfg.preset, [*cfg.overrides, f"data.root={data_root.as_posix()!r}", *extra])
        train_world_model(run_cfg, run_dir)
    model = load_trained(run_dir).model
    info: dict[str, Any] = {"run": run_dir.as_posix(), "parameters": sum(p.numel() for p in model.parameters())}
    for row in read_jsonl(run_dir / "metrics.jsonl"):
        if "time/elapsed_s" in row:
            info["iterations"], info["train_seconds"] = row["step"], row["time/elapsed_s"]
        if "eval/mse" in row:
            info["val_mse"] = row["eval/mse"]
    return model, info


def summary(result: Any) -> dict[str, Any]:
    """An :class:`agents.EvalResult` as JSON, keeping per-episode success and distance."""
    d = result.to_dict()
    d["per_episode"] = [{"seed": e["seed"], "success": e["success"], "final_distance": round(e["final_distance"], 4),
                         "steps": e["steps"]} for e in d["per_episode"]]
    return d


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import envs  # env ids

    envs.setup_gl()  # headless GL default before mujoco
    from agents import CopyLastFrameModel, PredRNNModel, RandomAgent, SB3Agent, evaluate_agent, scripted_agent, train_sb3
    from agents.costs import build_cost
    from agents.demo import DemoRun, demo_settings
    from agents.plan import make_env, mpc_agent, oracle_agent
    from mbvc.errors import ConfigError

    if args.threads:
        torch.set_num_threads(args.threads)
    wanted = [a.strip() for a in args.agents.split(",") if a.strip()]
    unknown = [a for a in wanted if a not in AGENTS]
    if unknown:
        raise ConfigError(f"--agents: unknown {unknown}; choose from {list(AGENTS)}")
    device = torch.device(args.device)
    episodes = 3 if args.quick else args.episodes
    mpc_episodes = min(episodes, args.mpc_episodes or episodes)
    common = ["demo.progress=false", f"demo.device={args.device}"] + ([f"demo.threads={args.threads}"] if args.threads else [])
    cfg = demo_settings(tiny=args.quick, overrides=common)
    seeds = cfg.eval_seeds(episodes)
    timing_pop, timing_iters, timing_h = ((12, 2, 4) if args.quick else
                                          (TIMING["population"], TIMING["iterations"], TIMING["horizon"]))

    # World models: the demo's PredRNN-V2 (its collect/train stages run if missing) and a PredRNN.
    started = time.perf_counter()
    run = DemoRun(cfg, args.demo_dir)
    data = run.collect()
    v2_record = run.train()
    models: dict[str, Any] = {}
    trained: dict[str, Any] = {}
    data_root = args.demo_dir / "data"
    # Without --train-iterations: the demo's PredRNN-V2 and a PredRNN trained as many iterations.
    if args.train_iterations:
        its = 8 if args.quick else args.train_iterations
    else:
        its = int(v2_record["iterations"])
    cfg_train = demo_settings(tiny=args.quick, iterations=its, overrides=common)
    for key, extra in (("predrnn_v2", []), ("predrnn", ["model.name=action_cond_predrnn"])):
        if f"{key}_mpc" not in wanted:
            continue
        if args.train_iterations:
            run_dir = args.work_dir / f"{key}-{its}"
        else:
            run_dir = args.demo_dir / "model" if key == "predrnn_v2" else args.work_dir / key
        model, trained[key] = world_model(cfg_train, data_root, run_dir, extra)
        models[key] = model.to(device)
    env_steps = int(data["env_steps"])
    setup_s = time.perf_counter() - started

    env = make_env("mbvc/Push-v0", cfg.collect.image_size, cfg.eval_env_kwargs())
    no_goal = lambda e: None
    results: dict[str, Any] = {}
    timing: dict[str, Any] = {}
    planner = cfg.plan

    stem = args.output or RESULTS / f"control_{device.type}"

    def save() -> dict[str, Any]:
        """Write what is measured so far (a long run that stops early keeps its finished agents).

        The file is re-read first, so that runs of disjoint agents at the same time (another
        process each) all keep their rows.
        """
        kept = {} if args.fresh or args.quick else previous_rows(stem.with_suffix(".json"), wanted, cfg,
                                                                       args.timing_only)
        rows = {**kept.get("results", {}), **results}
        times = {**kept.get("planning_time", {}), **timing}
        order = lambda d: {k: d[k] for k in sorted(d, key=lambda k: AGENTS.index(k) if k in AGENTS else 99)}
        command = "python benchmarks/control.py " + " ".join(argv if argv is not None else sys.argv[1:])
        history = [c for c in kept.get("commands", []) if c != command] + [command]
        report = {
            "benchmark": "control",
            "command": command,
            "commands": history,
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": machine_info(device),
            "env": {"id": "mbvc/Push-v0", "image_size": cfg.collect.image_size,
                    "goal_distance": list(cfg.goal_distance),
                    "episode_length": cfg.eval_episode_length, "terminate_on_success": True,
                    "success_threshold_m": 0.025},
            "goals": {"episodes": episodes, "mpc_episodes": mpc_episodes, "seeds": [seeds[0], seeds[-1]]},
            "planner": {"name": planner.name, "population": planner.population_size,
                        "iterations": planner.num_iterations, "horizon": planner.horizon,
                        "replan_every": planner.replan_every, "image_cost": cfg.cost.name,
                        "oracle_planner": cfg.oracle_planner, "oracle_population": cfg.oracle_population},
            "settings": settings(cfg),
            "world_models": {**kept.get("world_models", {}), **trained},
            "data_env_steps": env_steps,
            "setup_seconds": round(setup_s, 1),
            "results": order(rows),
            "planning_time": order(times),
            "quick": args.quick,
        }
        write_json(stem.with_suffix(".json"), report)
        with atomic_write(stem.with_suffix(".md"), "w") as f:
            f.write(markdown(report))
        return report

    def run_agent(name: str, agent: Any, n: int, goal_fn: Any = no_goal, eval_env: Any = None) -> None:
        start = time.perf_counter()
        res = evaluate_agent(agent, eval_env or env, seeds[:n], goal_fn=goal_fn)
        results[name] = {**summary(res), "seconds": round(time.perf_counter() - start, 1)}
        log.info("%s: success %.0f%% over %d goals, final distance %.1f cm (%.0f s)", name, 100 * res.success_rate,
                 n, 100 * res.final_distance, results[name]["seconds"])
        save()

    timing_planner = planner.replace(population_size=timing_pop, num_iterations=timing_iters, horizon=timing_h,
                                     replan_every=1)

    def timed(name: str, agent: Any) -> None:
        goal_fn = lambda e: agent.cost.goal_for_env(e, agent.image_size)  # noqa: E731
        ms = planning_ms(agent, env, seeds, 1 if args.quick else args.timing_plans, goal_fn)
        timing[name] = {"plan_ms": round(ms, 1), "population": timing_pop, "iterations": timing_iters,
                        "horizon": timing_h, "device": str(agent.model.device)}
        log.info("%s: %.0f ms per plan (%d x %d, horizon %d)", name, ms, timing_pop, timing_iters, timing_h)
        save()

    try:
        if "random" in wanted:
            run_agent("random", RandomAgent(env.action_space, seed=cfg.seed), episodes)
        if "scripted" in wanted:
            run_agent("scripted", scripted_agent(env), episodes)
        image_cost = build_cost(cfg.cost, args.demo_dir / "data" / "train")
        goal_fn = lambda e: image_cost.goal_for_env(e, (cfg.collect.image_size,) * 2)  # noqa: E731
        for name, model in [(f"{key}_mpc", PredRNNModel(models[key])) for key in ("predrnn_v2", "predrnn")
                            if f"{key}_mpc" in wanted] + [("copy_last_mpc", CopyLastFrameModel())] * (
                                "copy_last_mpc" in wanted):
            timed(name, mpc_agent(model, image_cost, timing_planner, env))
            if not args.timing_only:
                run_agent(name, mpc_agent(model, image_cost, planner, env),
                          episodes if name == "copy_last_mpc" else mpc_episodes, goal_fn)
        if "oracle_mpc" in wanted:
            oracle = oracle_agent(env, timing_planner, cfg.oracle_planner, timing_pop)
            try:
                timed("oracle_mpc", oracle)
            finally:
                oracle.model.close()
            if not args.timing_only:
                oracle = oracle_agent(env, planner, cfg.oracle_planner, cfg.oracle_population)
                try:
                    run_agent("oracle_mpc", oracle, mpc_episodes)
                finally:
                    oracle.model.close()
        for obs in ("pixels", "state"):
            name = f"sb3_{obs}"
            if name not in wanted:
                continue
            size = SB3_PIXELS if obs == "pixels" else cfg.collect.image_size
            make_sb3_env = lambda size=size: make_env("mbvc/Push-v0", size, cfg.eval_env_kwargs())
            out_dir = args.work_dir / f"sb3-{args.sb3_algo}-{obs}"
            steps = 256 if args.quick else env_steps
            if (out_dir / "model.zip").is_file():
                agent = SB3Agent.load(out_dir / "model.zip", args.sb3_algo, obs, device="cpu")
            else:
                start = time.perf_counter()
                agent = train_sb3(make_sb3_env, out_dir, algo=args.sb3_algo, observation=obs, total_steps=steps,
                                  seed=cfg.seed, device="cpu")
                log.info("%s trained for %d steps in %.0f s", name, steps, time.perf_counter() - start)
            sb3_env = make_sb3_env()
            try:
                run_agent(name, agent, episodes, eval_env=sb3_env)
            finally:
                sb3_env.close()
            results[name]["algo"] = args.sb3_algo
            results[name]["train_steps"] = steps
            save()
    finally:
        env.close()

    report = save()
    print(markdown(report))
    return 0


NAMES = {
    "random": "random", "scripted": "scripted (true state)", "oracle_mpc": "oracle-model MPC (true state)",
    "predrnn_v2_mpc": "PredRNN-V2 MPC (pixels)", "predrnn_mpc": "PredRNN MPC (pixels)",
    "copy_last_mpc": "copy-last-frame MPC (pixels)", "sb3_pixels": "SB3 from pixels", "sb3_state": "SB3 from state",
}


def markdown(report: dict[str, Any]) -> str:
    """The results as a Markdown page."""
    m, p, e = report["machine"], report["planner"], report["env"]
    load = f", load average {m['load_average'][0]:.2f} on {m['cpu_count']} CPUs" if m.get("load_average") else ""
    lines = [
        "# Control benchmark: pushing a block to a goal",
        "",
        (f"Machine: {m['cpu']} ({m['device']}, {m['torch_threads']} torch threads{load}), torch {m['torch']}, "
         f"{report['date']}."),
        (f"Task: `{e['id']}`, {e['image_size']}x{e['image_size']} frames, goals {e['goal_distance'][0]}-"
         f"{e['goal_distance'][1]} m from the block, success within {100 * e['success_threshold_m']:.1f} cm, "
         f"at most {e['episode_length']} steps (ending on success). Seeded goals held out from the training data."),
        (f"MPC: {p['name']} {p['population']} candidates x {p['iterations']} iterations, horizon {p['horizon']}, "
         f"replanning every {p['replan_every']} steps, image cost `{p['image_cost']}`; the oracle plans with "
         f"{p['oracle_planner']} and {p['oracle_population']} candidates on the true state."),
        "",
        "| agent | goals | success | final distance (cm) | planning ms/step (eval) | notes |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, res in report["results"].items():
        plan = "-" if res.get("plan_ms") is None else f"{res['plan_ms']:.0f}"
        note = ""
        if key.startswith("sb3") and "algo" in res:
            note = f"{res['algo'].upper()}, {res['train_steps']} training steps"
        lines.append(f"| {NAMES.get(key, key)} | {res['episodes']} | {100 * res['success_rate']:.0f}% | "
                     f"{100 * res['final_distance']:.1f} | {plan} | {note} |")
    if report["planning_time"]:
        lines += ["", "Planning time per plan (= per control step when replanning every step):", "",
                  "| model | candidates x iterations | horizon | device | ms per plan |", "| --- | --- | --- | --- | --- |"]
        for key, t in report["planning_time"].items():
            lines.append(f"| {NAMES.get(key, key)} | {t['population']} x {t['iterations']} | {t['horizon']} | "
                         f"{t['device']} | {t['plan_ms']:.0f} |")
    def model_line(name: str, info: dict[str, Any]) -> str:
        if "iterations" not in info:
            return f"{name}: {info.get('run', '?')}"
        mse = f", validation MSE/frame {info['val_mse']:.1f}" if "val_mse" in info else ""
        return (f"{name}: {info['iterations']} iterations in {info.get('train_seconds') or 0:.0f} s, "
                f"{info.get('parameters')} parameters{mse}")

    wm = report["world_models"]
    lines += ["", "World models (trained on the demo's data): " + "; ".join(model_line(k, v) for k, v in wm.items()) + ".",
              (f"Environment steps of the world models' data (and of each SB3 policy's training): "
               f"{report['data_env_steps']}."), ""]
    lines += ["Commands (the runs whose rows are here, the last one last):", ""]
    lines += [f"* `{c}`" for c in report.get("commands", [report["command"]])] + [""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
