"""Plan with a trained world model in a gymnasium environment: what ``mbvc plan`` runs.

:func:`run_plan` scores an MPC agent (the model, a cost from :mod:`agents.costs.registry` and a
sampling planner) on seeded episodes next to a random agent and, where the environment can
save and restore its state (``get_state`` / ``set_state``), the oracle (the same planning in a
copy of the simulator, on the true state). It writes into one folder
(:class:`agents.plan_records.PlanFolder`, locked while it plans):

* ``episodes.jsonl``: one line per finished episode (agent, seed, success, distance, steps,
  plan times); a second run with the same settings skips those episodes (resumable);
* ``results.json`` / ``results.md``: per agent success rate, final distance and planning time;
* ``episode.gif``: the first MPC episode (observation | goal | imagined frames).

With ``workers > 1`` the episodes are played in that many spawned processes
(:mod:`agents.plan_workers`); every episode is seeded on its own, so the records are those of a
serial run whatever the number of workers. The agents themselves are built by
:func:`mpc_agent` and :func:`oracle_agent`, which the benchmarks call too.

Example:
    >>> import envs; envs.setup_gl()  # once per process, before the first render (headless MUJOCO_GL)
    >>> from agents.plan import run_plan
    >>> run_plan("runs/demo/model", "mbvc/Push-v0", "runs/plan", seeds=range(10),
    ...          data_root="runs/demo/data/train")  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mbvc.errors import ConfigError, did_you_mean
from mbvc.io import atomic_write, write_json

from .costs import Cost, CostConfig, build_cost, cost_config
from .evaluation import EpisodeResult, run_episodes
from .planners import PlannerConfig
from .plan_records import WORKERS_DIR, PlanFolder, check_seeds, episode_result
from .stages import dataclass_defaults

log = logging.getLogger(__name__)

AGENTS = ("mpc", "random", "oracle")
NAMES = {"mpc": "MPC, learnt world model", "random": "random actions", "oracle": "MPC, oracle simulator (true state)"}
#: Shaping weight of the oracle's true-state cost (pusher-to-block distance); measured best of 0.3 / 0.5.
ORACLE_PUSHER_WEIGHT = 0.5


def make_env(env_id: str, image_size: int | tuple[int, int], env_kwargs: dict[str, Any] | None = None) -> Any:
    """A gymnasium env whose observations are ``{"image": uint8 H x W x 3, ...}`` at ``image_size``.

    mbvc's envs render at the size asked; others are made with ``render_mode="rgb_array"`` and
    seen through :class:`envs.wrappers.PixelObservation` (the state stays under ``"state"``).

    Raises:
        ConfigError: an unregistered id (with the closest registered one) or bad keyword arguments.
    """
    import gymnasium as gym

    import envs  # noqa: F401  registers the mbvc ids
    from envs.wrappers import PixelObservation

    env_kwargs = dict(env_kwargs or {})
    if env_id not in gym.envs.registry:
        raise ConfigError(f"--env {env_id!r} is not a registered gymnasium id." + did_you_mean(env_id, gym.envs.registry))
    size = image_size if isinstance(image_size, int) else tuple(image_size)
    try:
        if env_id.startswith("mbvc/"):
            return gym.make(env_id, image_size=size, **env_kwargs)
        return PixelObservation(gym.make(env_id, render_mode="rgb_array", **env_kwargs), size=size, pixels_only=False)
    except TypeError as exc:
        raise ConfigError(f"--env-kwargs {env_kwargs} do not fit {env_id} ({exc})") from None


def results_table(results: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """Per agent: success, final distance, planning time, as a Markdown table."""
    names = {**NAMES, **(names or {})}
    lines = ["| agent | success | final distance (cm) | planning (ms/step) | episodes |", "|---|---|---|---|---|"]
    for key, res in results.items():
        plan = "-" if res.get("plan_ms") is None else f"{res['plan_ms']:.0f}"
        name = f"MPC, {res['model']} world model" if key == "mpc" and res.get("model") else names.get(key, key)
        lines.append(f"| {name} | {100 * res['success_rate']:.0f}% | {100 * res['final_distance']:.1f} "
                     f"| {plan} | {res['episodes']} |")
    return "\n".join(lines)


def check_model_env(config: Any, env: Any, env_id: str, env_kwargs: dict[str, Any] | None) -> None:
    """Refuse a world model that cannot plan in ``env``: not action-conditioned, other frames or actions.

    Raises:
        ConfigError: naming the model's and the environment's sizes.
    """
    if not config.is_action:
        raise ConfigError(f"the model ({config.name}) is not action-conditioned, so it cannot predict what actions "
                          "do; planning needs an action_cond_* model (e.g. the push-demo preset's)")
    image_shape = getattr(getattr(env.observation_space, "spaces", {}).get("image"), "shape", None)
    size = (config.img_height or config.img_width, config.img_width)
    if image_shape is not None and tuple(image_shape[:2]) != size:
        raise ConfigError(f"the model takes {size[0]}x{size[1]} frames but {env_id} with {env_kwargs or {}} observes "
                          f"{image_shape[0]}x{image_shape[1]}")
    shape = getattr(env.action_space, "shape", None)
    if not shape or len(shape) != 1 or shape[0] != config.num_action_ch:
        raise ConfigError(f"the model takes {config.num_action_ch}-dimensional actions but {env_id} has action "
                          f"space {env.action_space}")


def check_model_states(config: Any, cost: Any) -> None:
    """Refuse, in one line, a cost reading state entries that the world model does not predict."""
    targets = tuple(getattr(config, "state_targets", ()))
    entries = tuple(getattr(cost, "block_entries", ()))
    what = f"cost.block_entries={list(entries)}" if entries else f"cost {cost.name!r}"  # a user's cost has no entries
    if not targets:
        raise ConfigError(f"{what} reads the world model's predicted state, but the model has no readout: train it "
                          "with model.state_targets (e.g. [0, 1, 4, 5]: the pusher's and the block's x, y)"
                          + (", or plan with cost.block_entries=[]" if entries else ""))
    if entries and max(entries) >= len(targets):
        raise ConfigError(f"cost.block_entries={list(entries)} indexes the model's {len(targets)} predicted entries "
                          f"(model.state_targets={list(targets)})")


def mpc_agent(model: Any, cost: Any, planner: PlannerConfig, env: Any, **kwargs: Any) -> Any:
    """An :class:`agents.mpc.MPCAgent` with ``planner``'s horizon and replanning, in ``env``'s action bounds."""
    from .mpc import MPCAgent

    return MPCAgent(model, cost, planner, horizon=planner.horizon, action_space=env.action_space,
                    replan_every=planner.replan_every, **kwargs)


def oracle_agent(env: Any, planner: PlannerConfig, oracle_planner: str = "icem", population: int = 50) -> Any:
    """The oracle: MPC in a copy of the simulator on the true state (close its ``model`` when done)."""
    from .models import OracleModel, OracleStateCost

    return mpc_agent(OracleModel(env, render=False), OracleStateCost(pusher_weight=ORACLE_PUSHER_WEIGHT),
                     planner.replace(name=oracle_planner, population_size=population), env)


def _score(name: str, agent: Any, env: Any, seeds: list[int], folder: PlanFolder, done: list[dict[str, Any]],
           goal_fn: Any, progress: bool, on_done: Any = None) -> dict[str, Any]:
    """Play ``agent`` on the seeds not in ``done`` (records of finished episodes), logging each; its summary."""
    rows = {r["seed"]: r for r in done}
    timing = {s: r.get("seconds", 0.0) for s, r in rows.items()}
    start = [time.perf_counter()]

    def on_episode(ep: EpisodeResult, a: Any) -> None:
        timing[ep.seed] = time.perf_counter() - start[0]
        plans = [round(1000 * t, 2) for t in getattr(a, "plan_times", [])]  # what agents that plan record
        folder.episodes.append(name, ep, plan_times_ms=plans, seconds=round(timing[ep.seed], 3))
        if on_done is not None:
            on_done(ep)
        start[0] = time.perf_counter()

    result = run_episodes(name, agent, env, seeds, goal_fn=goal_fn, done=[episode_result(r) for r in rows.values()],
                          on_episode=on_episode, progress=progress)
    return {**result.to_dict(), "seconds": float(sum(timing.get(s, 0.0) for s in seeds))}


class _GifRecorder:
    """Draws the first MPC episode played here into ``path`` (observation | goal | imagined frames)."""

    def __init__(self, mpc: Any, cost: Cost, path: Path, scale: int) -> None:
        from .gif import RecordingAgent

        self.agent = RecordingAgent(mpc, record=not path.is_file())
        self.mpc, self.cost, self.path, self.scale = mpc, cost, path, scale

    def done(self, ep: EpisodeResult) -> None:
        from .gif import write_episode_gif

        picture = self.cost.picture(self.mpc.goal)
        if self.agent.record and self.agent.steps and picture is not None:
            write_episode_gif(self.path, self.agent.steps, picture, self.scale)
        self.agent.record, self.agent.steps = False, []


def _relative(path: str | os.PathLike, out: str | os.PathLike) -> str:
    """``path`` relative to the plan folder ``out`` (a record holds no path of the machine it was made on);
    for a worker's folder ``OUT/.workers/<k>``, relative to ``OUT``, as the records it merges into."""
    out = Path(out).absolute()
    if out.parent.name == WORKERS_DIR:
        out = out.parent.parent
    return Path(os.path.relpath(Path(path).absolute(), out)).as_posix()


def run_plan(
    model: str | os.PathLike | Any,
    env_id: str,
    out: str | os.PathLike,
    *,
    seeds: Iterable[int],
    env_kwargs: dict[str, Any] | None = None,
    cost: CostConfig | None = None,
    planner: PlannerConfig | None = None,
    agents: Sequence[str] = AGENTS,
    data_root: str | os.PathLike | None = None,
    device: str = "cpu",
    oracle_planner: str = "icem",
    oracle_population: int = 50,
    gif_scale: int = 4,
    progress: bool = True,
    force: bool = False,
    restart_on_change: bool = False,
    workers: int = 1,
) -> dict[str, Any]:
    """Run (or resume) the agents on seeded episodes and write the results into ``out``.

    Args:
        model: a run folder or model file (:func:`mbvc.training.artifacts.load_trained`).
        env_id: a registered gymnasium id.
        out: output folder (resumed when it holds episodes of the same settings).
        seeds: episode seeds (start and goal), the same for every agent; each at most once.
        env_kwargs: keyword arguments of ``gymnasium.make``.
        cost: the MPC agent's cost (default ``goal_image``; ``push`` needs ``data_root``).
        planner: the MPC agent's planner, horizon and replanning (default :class:`PlannerConfig`).
        agents: which of ``mpc``, ``random``, ``oracle`` to run (the oracle only where the env
            has ``get_state`` / ``set_state``).
        data_root: training rollouts, for costs that learn from them.
        device: torch device of the world model.
        oracle_planner: the oracle's planner name (its other settings are ``planner``'s).
        oracle_population: the oracle's candidates per iteration (it simulates each one).
        gif_scale: upscaling of the GIF's panels.
        progress: progress bars.
        force: drop the episodes of an earlier run in ``out``.
        restart_on_change: drop them (instead of refusing) when they were planned with other settings.
        workers: processes that play the episodes (spawned, one torch thread each; 1: this
            process). The records do not depend on it.

    Returns:
        ``{"settings", "results": {agent: summary}, "gif", "seeds", "machine"}`` (also ``out/results.json``);
        paths (the model, the GIF) are relative to ``out``.

    Raises:
        ConfigError: unknown agents, env or cost; a model that cannot plan in the env; a folder
            another process plans into or holding episodes of other settings; ``workers < 1``.
        MbvcError: as raised in a worker process (the same error a serial run gives).
    """
    import torch

    from mbvc.machine import machine_info
    from mbvc.training.artifacts import load_trained

    from .baselines import RandomAgent
    from .models import PredRNNModel
    from .plan_workers import play_in_workers

    cost, planner = cost or cost_config(), planner or PlannerConfig()
    seeds = check_seeds(seeds)
    unknown = [a for a in agents if a not in AGENTS]
    if unknown:
        raise ConfigError(f"agents must be among {list(AGENTS)}, got {list(agents)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers must be a positive integer, got {workers!r}")
    folder = PlanFolder(out)
    net = load_trained(model).model if isinstance(model, (str, os.PathLike)) else model
    mcfg = net.config
    size = (mcfg.img_height or mcfg.img_width, mcfg.img_width)
    env = make_env(env_id, size[0] if size[0] == size[1] else size, env_kwargs)
    try:
        check_model_env(mcfg, env, env_id, env_kwargs)
        if "oracle" in agents and not all(hasattr(env.unwrapped, m) for m in ("get_state", "set_state")):
            log.info("%s has no get_state/set_state: no oracle agent", env_id)
            agents = [a for a in agents if a != "oracle"]
        settings = json.loads(json.dumps(
            {"model": _relative(model, out) if isinstance(model, (str, os.PathLike)) else mcfg.name, "env": env_id,
             "env_kwargs": dict(env_kwargs or {}), "cost": dataclasses.asdict(cost),
             "planner": dataclasses.asdict(planner), "oracle_planner": oracle_planner,
             "oracle_population": oracle_population}))
        image_cost = build_cost(cost, data_root) if "mpc" in agents else None  # a bad cost fails before out/ exists
        if image_cost is not None and image_cost.reads == "frames+states":
            check_model_states(mcfg, cost)
        with folder:
            folder.open(settings, dataclass_defaults({"cost": type(cost), "planner": type(planner)}), force,
                        restart_on_change)
            if workers > 1:  # play the missing episodes elsewhere; the serial pass below then finds them done
                kwargs = {"model": model, "env_id": env_id, "env_kwargs": env_kwargs, "cost": cost,
                          "planner": planner, "agents": list(agents), "data_root": data_root, "device": device,
                          "oracle_planner": oracle_planner, "oracle_population": oracle_population,
                          "gif_scale": gif_scale, "progress": False}
                play_in_workers(folder.out, settings, seeds, list(agents), workers, kwargs, progress)
            done = folder.episodes.load()
            results: dict[str, Any] = {}
            gif_path = folder.out / "episode.gif"
            if "mpc" in agents:
                assert image_cost is not None
                mpc = mpc_agent(PredRNNModel(net.to(torch.device(device)), predict=image_cost.reads), image_cost,
                                planner, env, record_predictions=True)
                gif = _GifRecorder(mpc, mpc.cost, gif_path, gif_scale)
                goal_fn = lambda e: mpc.cost.goal_for_env(e, mpc.image_size)  # noqa: E731
                results["mpc"] = _score("mpc", gif.agent, env, seeds, folder, done.get("mpc", []), goal_fn, progress,
                                        gif.done)
                results["mpc"]["model"] = mcfg.name
                results["mpc"]["planner"] = {"name": planner.name, "population": planner.population_size,
                                             "iterations": planner.num_iterations, "horizon": planner.horizon,
                                             "replan_every": planner.replan_every, "cost": cost.name}
            no_goal = lambda e: None  # noqa: E731
            if "random" in agents:
                results["random"] = _score("random", RandomAgent(env.action_space, seed=planner.seed), env, seeds,
                                           folder, done.get("random", []), no_goal, progress)
            if "oracle" in agents:
                oracle = oracle_agent(env, planner, oracle_planner, oracle_population)
                try:
                    results["oracle"] = _score("oracle", oracle, env, seeds, folder, done.get("oracle", []), no_goal,
                                               progress)
                finally:
                    oracle.model.close()
                results["oracle"]["planner"] = {"name": oracle_planner, "population": oracle_population,
                                                "iterations": planner.num_iterations, "horizon": planner.horizon,
                                                "replan_every": planner.replan_every, "cost": "true state"}
            report = {"settings": settings, "results": results, "seeds": seeds,
                      "gif": gif_path.name if gif_path.is_file() else None,  # relative to the plan folder
                      "machine": machine_info(device)}
            write_json(folder.out / "results.json", report)
            with atomic_write(folder.out / "results.md", "w") as f:
                f.write(results_table(results) + "\n")
    finally:
        env.close()
    return report


__all__ = ["AGENTS", "ORACLE_PUSHER_WEIGHT", "check_model_env", "make_env", "mpc_agent", "oracle_agent",
           "results_table", "run_plan"]
