"""Recipe experiments: train a push-demo variant for N iterations on runs/exp/data, score MPC on tuning goals."""
import argparse, dataclasses, json, logging, time, sys
from pathlib import Path
import numpy as np, torch

TUNING_SEED_BASE = 1_000_500  # the benchmark's goals are 1_000_000..1_000_049 (seed 0); disjoint

def main():
    p = argparse.ArgumentParser()
    p.add_argument("name")
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--set", nargs="*", default=[])
    p.add_argument("--goals", type=int, default=0)
    p.add_argument("--goal-offset", type=int, default=0)
    p.add_argument("--planner", default="cem")
    p.add_argument("--population", type=int, default=200)
    p.add_argument("--planner-iterations", type=int, default=3)
    p.add_argument("--replan-every", type=int, default=2)
    p.add_argument("--horizon", type=int, default=10)
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)
    from mbvc import demo
    from mbvc.seeding import seed_everything
    root = Path("runs/exp"); run = root / a.name
    cfg = demo.demo_config(threads=1, progress=False, iterations=a.iterations, train_overrides=tuple(a.set),
                           planner=a.planner, population=a.population, planner_iterations=a.planner_iterations,
                           replan_every=a.replan_every, horizon=a.horizon)
    info_path = run / "train.json"
    if not info_path.exists():
        seed_everything(0)
        t0 = time.time()
        info = demo.train_world_model(cfg, root / "data", run / "model")
        info["wall_s"] = time.time() - t0
        info_path.write_text(json.dumps(info, indent=1, default=str))
    info = json.loads(info_path.read_text())
    print("TRAIN", a.name, info["iterations"], round(info["train_seconds"]), json.dumps(info["validation"]))
    if not a.goals:
        return
    from agents import MPCAgent, PlannerConfig, PredRNNModel
    from agents.evaluation import evaluate_agent
    from mbvc.training.artifacts import load_trained
    seed_everything(0)
    net = load_trained(run / "model").model.eval()
    env = demo.make_eval_env(cfg)
    seeds = [TUNING_SEED_BASE + a.goal_offset + i for i in range(a.goals)]
    planner = PlannerConfig(cfg.planner, num_iterations=cfg.planner_iterations, population_size=cfg.population, seed=0)
    mpc = MPCAgent(PredRNNModel(net), demo.cost_from_data(cfg, root / "data" / "train"), planner, horizon=cfg.horizon,
                   action_space=env.action_space, replan_every=cfg.replan_every)
    t0 = time.time()
    res = evaluate_agent(mpc, env, seeds, goal_fn=demo.clear_goal_image)
    env.close()
    eps = [dataclasses.asdict(e) for e in res.episodes]
    succ = [bool(e["success"]) for e in eps]
    out = {"name": a.name, "eval": vars(a), "success": int(sum(succ)), "goals": len(succ),
           "final_distance": float(np.mean([e["final_distance"] for e in eps])), "eval_s": time.time() - t0,
           "per_episode": [[e["seed"], bool(e["success"])] for e in eps]}
    key = f"{a.planner}{a.population}x{a.planner_iterations}-r{a.replan_every}-h{a.horizon}-g{a.goal_offset}+{a.goals}"
    (run / f"eval-{key}.json").write_text(json.dumps(out, indent=1))
    print("EVAL", a.name, key, f"{sum(succ)}/{len(succ)}", round(out["final_distance"], 4), round(out["eval_s"]))

if __name__ == "__main__":
    main()
