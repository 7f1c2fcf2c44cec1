"""Plan with a trained world model in a gymnasium environment: what ``mbvc plan`` runs.

:func:`run_plan` scores an MPC agent (the model, a cost from :mod:`agents.cost_registry` and a
sampling planner) on seeded episodes next to a random agent and, where the environment can
save and restore its state (``get_state`` / ``set_state``), the oracle (the same planning in a
copy of the simulator, on the true state). It writes into one folder:

* ``episodes.jsonl``: one line per finished episode (agent, seed, success, distance, steps,
  plan times); a second run with the same settings skips those episodes (resumable);
* ``results.json`` / ``results.md``: per agent success rate, final distance and planning time;
* ``episode.gif``: the first MPC episode (observation | goal | imagined frames).

With ``workers > 1`` the episodes are played in that many spawned processes (one torch thread
each), each into its own folder ``OUT/.workers/<k>`` on a share of the seeds; their episodes
are then merged into ``episodes.jsonl`` agent by agent in seed order. Every episode is seeded
on its own, so the records are those of a serial run whatever the number of workers.

Example:
    >>> import envs; envs.setup_gl()  # once per process, before the first render (headless MUJOCO_GL)
    >>> from agents.plan import run_plan
    >>> run_plan("runs/demo/model", "mbvc/Push-v0", "runs/plan", seeds=range(10),
    ...          data_root="runs/demo/data/train")  # doctest: +SKIP
"""
from __future__ import annotations

import ctypes
import dataclasses
import inspect
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


from mbvc.errors import ConfigError, MbvcError, did_you_mean
from mbvc.io import write_json

from .cost_registry import CostConfig, build_cost
from .evaluation import EpisodeResult, EvalResult, run_episodes
from .planners import PlannerConfig
from .stages import dataclass_defaults, settings_diff

log = logging.getLogger(__name__)

AGENTS = ("mpc", "random", "oracle")
NAMES = {"mpc": "MPC, learnt world model", "random": "random actions", "oracle": "MPC, oracle simulator (true state)"}
#: Shaping weight of the oracle's true-state cost (pusher-to-block distance); measured best of 0.3 / 0.5.
ORACLE_PUSHER_WEIGHT = 0.5
#: The worker processes' folders inside ``out`` (merged into ``out/episodes.jsonl``, then removed).
WORKERS_DIR = ".workers"


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


def clear_goal(env: Any) -> Any:
    """The goal for an image cost: the env's goal image, drawn with the pusher off the block when the
    env can (:func:`agents.push.clear_goal_image`)."""
    from .core import goal_from_env
    from .push import clear_goal_image

    goal_image = getattr(env.unwrapped, "goal_image", None)
    if goal_image is not None and "pusher_xy" in inspect.signature(goal_image).parameters:
        return clear_goal_image(env)
    return goal_from_env(env)


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


class EpisodeLog:
    """``OUT/episodes.jsonl``: the finished episodes, appended one line at a time (a crash loses one at most)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, list[dict[str, Any]]]:
        """Finished episodes per agent (a torn last line is ignored)."""
        done: dict[str, list[dict[str, Any]]] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                done.setdefault(row["agent"], []).append(row)
        return done

    def append(self, agent: str, episode: EpisodeResult, **extra: Any) -> None:
        """Add one finished episode."""
        with self.path.open("a") as f:
            f.write(json.dumps({"agent": agent, **dataclasses.asdict(episode), **extra}) + "\n")

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add finished episodes as read from another log (one ``{"agent": ..., ...}`` dict each)."""
        with self.path.open("a") as f:
            f.write("".join(json.dumps(row) + "\n" for row in rows))


def _episode(row: dict[str, Any]) -> EpisodeResult:
    return EpisodeResult(**{f.name: row[f.name] for f in dataclasses.fields(EpisodeResult)})


def _check_settings(out: Path, settings: dict[str, Any], force: bool, restart_on_change: bool,
                    defaults: dict[str, Any]) -> None:
    """Start ``out`` or resume it; refuse (or restart) a folder holding episodes planned with other settings.

    A setting the folder's record lacks (an older mbvc) matches when it is at its value in ``defaults``.
    """
    marker = out / "plan.json"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; plan needs a folder")
    if out.is_dir() and any(out.iterdir()) and not marker.is_file():
        raise ConfigError(f"--out {out} is a non-empty folder that mbvc plan did not make (no plan.json)")
    if marker.is_file() and not force:
        try:
            before = json.loads(marker.read_text()).get("settings", {})
        except ValueError:
            before = None
        changes = settings_diff(before, settings, defaults) if before is not None else []
        if changes and restart_on_change:
            log.info("%s holds episodes planned with other settings: planning again", out)
            force = True
        elif changes:
            raise ConfigError(f"{out} holds episodes planned with other settings "
                              f"({'; '.join(changes[:3])}); "
                              "pass --force to start again or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    if force:
        for name in ("episodes.jsonl", "results.json", "results.md", "episode.gif"):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / WORKERS_DIR, ignore_errors=True)
    write_json(marker, {"settings": settings})


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
        seeds: episode seeds (start and goal), the same for every agent.
        env_kwargs: keyword arguments of ``gymnasium.make``.
        cost: the MPC agent's cost (default :class:`CostConfig`; ``push`` needs ``data_root``).
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
        ``{"settings", "results": {agent: summary}, "gif", "seeds", "machine"}`` (also ``out/results.json``).

    Raises:
        ConfigError: unknown agents, env or cost; a model whose action size is not the env's; a
            folder holding episodes of other settings; ``workers < 1``.
        MbvcError: as raised in a worker process (the same error a serial run gives).
    """
    import torch

    from mbvc.machine import machine_info
    from mbvc.training.artifacts import load_trained

    from .baselines import RandomAgent
    from .gif import RecordingAgent, write_episode_gif
    from .models import OracleModel, OracleStateCost, PredRNNModel
    from .mpc import MPCAgent

    cost, planner = cost or CostConfig(), planner or PlannerConfig()
    seeds = [int(s) for s in seeds]
    unknown = [a for a in agents if a not in AGENTS]
    if unknown or not seeds:
        raise ConfigError(f"agents must be among {list(AGENTS)} and seeds non-empty, got {list(agents)}, {seeds}")
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers must be a positive integer, got {workers!r}")
    out = Path(out)
    net = load_trained(model).model if isinstance(model, (str, os.PathLike)) else model
    mcfg = net.config
    views = getattr(mcfg, "views", 1)
    view_size = (mcfg.img_height or mcfg.img_width, mcfg.img_width // views)  # what one camera renders
    env = make_env(env_id, view_size[0] if view_size[0] == view_size[1] else view_size, env_kwargs)
    try:
        image_shape = getattr(getattr(env.observation_space, "spaces", {}).get("image"), "shape", None)
        if image_shape is not None and tuple(image_shape[:2]) != (mcfg.img_height or mcfg.img_width, mcfg.img_width):
            raise ConfigError(f"the model takes {mcfg.img_height}x{mcfg.img_width} frames ({views} view(s) side by "
                              f"side) but {env_id} with {env_kwargs or {}} observes {image_shape[0]}x{image_shape[1]}"
                              + (": give the env as many cameras, e.g. --env-kwargs camera=bair+side" if views > 1 else ""))
        if cost.name == "push" and cost.views != views:
            raise ConfigError(f"cost.views={cost.views} but the model's frames hold {views} view(s): set cost.views={views}")
        shape = getattr(env.action_space, "shape", None)
        if not shape or len(shape) != 1 or shape[0] != mcfg.num_action_ch:
            raise ConfigError(f"the model takes {mcfg.num_action_ch}-dimensional actions but {env_id} has action "
                              f"space {env.action_space}")
        has_state = all(hasattr(env.unwrapped, m) for m in ("get_state", "set_state"))
        if "oracle" in agents and not has_state:
            log.info("%s has no get_state/set_state: no oracle agent", env_id)
            agents = [a for a in agents if a != "oracle"]
        settings = {"model": str(model) if isinstance(model, (str, os.PathLike)) else mcfg.name, "env": env_id,
                    "env_kwargs": dict(env_kwargs or {}), "cost": dataclasses.asdict(cost),
                    "planner": dataclasses.asdict(planner), "oracle_planner": oracle_planner,
                    "oracle_population": oracle_population}
        image_cost = build_cost(cost, data_root) if "mpc" in agents else None  # a bad cost fails before out/ exists
        _check_settings(out, json.loads(json.dumps(settings)), force, restart_on_change,
                        dataclass_defaults({"cost": type(cost), "planner": type(planner)}))
        if workers > 1:  # play the missing episodes elsewhere; the serial pass below then finds them done
            kwargs = {"model": model, "env_id": env_id, "env_kwargs": env_kwargs, "cost": cost, "planner": planner,
                      "agents": list(agents), "data_root": data_root, "device": device,
                      "oracle_planner": oracle_planner, "oracle_population": oracle_population,
                      "gif_scale": gif_scale, "progress": False}
            _play_in_workers(out, json.loads(json.dumps(settings)), seeds, list(agents), workers, kwargs, progress)
        episodes, done = EpisodeLog(out / "episodes.jsonl"), EpisodeLog(out / "episodes.jsonl").load()
        results: dict[str, Any] = {}
        gif_path = out / "episode.gif"

        def score(name: str, agent: Any, goal_fn: Any, on_done: Any = None) -> dict[str, Any]:
            rows = {r["seed"]: r for r in done.get(name, [])}
            timing = {s: r.get("seconds", 0.0) for s, r in rows.items()}
            state = {"start": time.perf_counter()}

            def on_episode(ep: EpisodeResult, a: Any) -> None:
                timing[ep.seed] = time.perf_counter() - state["start"]
                plans = [round(1000 * t, 2) for t in getattr(a, "plan_times", [])]
                episodes.append(name, ep, plan_times_ms=plans, seconds=round(timing[ep.seed], 3))
                if on_done is not None:
                    on_done(ep)
                state["start"] = time.perf_counter()

            result: EvalResult = run_episodes(name, agent, env, seeds, goal_fn=goal_fn,
                                              done=[_episode(r) for r in rows.values()],
                                              on_episode=on_episode, progress=progress)
            return {**result.to_dict(), "seconds": float(sum(timing.get(s, 0.0) for s in seeds))}

        if "mpc" in agents:
            mpc = MPCAgent(PredRNNModel(net.to(torch.device(device))), image_cost, planner,
                           horizon=planner.horizon, action_space=env.action_space, replan_every=planner.replan_every,
                           record_predictions=True)
            recorder = RecordingAgent(mpc, record=not gif_path.is_file())
            goals: list[Any] = []

            designate = getattr(image_cost, "goal_for_env", None)  # a designated-object cost

            def goal_fn(e: Any) -> Any:
                goals.append(designate(e, mpc.image_size) if designate else clear_goal(e))
                return goals[-1]

            def draw(ep: EpisodeResult) -> None:  # the first MPC episode run here, once
                goal = goals[-1] if not hasattr(goals[-1], "picture") else mpc.goal.picture()
                if recorder.record and recorder.steps and goal is not None:
                    write_episode_gif(gif_path, recorder.steps, goal, gif_scale)
                recorder.record, recorder.steps = False, []

            results["mpc"] = score("mpc", recorder, goal_fn, draw)
            results["mpc"]["model"] = mcfg.name
            results["mpc"]["planner"] = {"name": planner.name, "population": planner.population_size,
                                         "iterations": planner.num_iterations, "horizon": planner.horizon,
                                         "replan_every": planner.replan_every, "cost": cost.name}
        no_goal = lambda e: None
        if "random" in agents:
            results["random"] = score("random", RandomAgent(env.action_space, seed=planner.seed), no_goal)
        if "oracle" in agents:
            oracle = OracleModel(env, render=False)
            try:
                agent = MPCAgent(oracle, OracleStateCost(oracle, pusher_weight=ORACLE_PUSHER_WEIGHT),
                                 planner.replace(name=oracle_planner, population_size=oracle_population),
                                 horizon=planner.horizon, action_space=env.action_space,
                                 replan_every=planner.replan_every)
                results["oracle"] = score("oracle", agent, no_goal)
            finally:
                oracle.close()
            results["oracle"]["planner"] = {"name": oracle_planner, "population": oracle_population,
                                            "iterations": planner.num_iterations, "horizon": planner.horizon,
                                            "replan_every": planner.replan_every, "cost": "true state"}
    finally:
        env.close()
    report = {"settings": settings, "results": results, "seeds": seeds,
              "gif": str(gif_path) if gif_path.is_file() else None, "machine": machine_info(device)}
    write_json(out / "results.json", report)
    (out / "results.md").write_text(results_table(results) + "\n")
    return report


def _play_in_workers(out: Path, settings: dict[str, Any], seeds: list[int], agents: list[str], workers: int,
                     kwargs: dict[str, Any], progress: bool) -> None:
    """Play the episodes missing from ``out/episodes.jsonl`` in ``workers`` processes and merge them there.

    Each worker gets a resumable plan folder ``out/.workers/<k>`` (the settings and the finished
    episodes of its seeds) and runs :func:`run_plan` in it. The folders are merged also when a
    worker fails or the run is interrupted, and a killed run's folders on the next start.
    """
    from tqdm.auto import tqdm

    _merge_workers(out, seeds)
    done = EpisodeLog(out / "episodes.jsonl").load()
    finished = {(agent, row["seed"]) for agent, rows in done.items() for row in rows}
    todo = [s for s in seeds if any((a, s) not in finished for a in agents)]
    shares = [todo[k::workers] for k in range(min(workers, len(todo)))]  # interleaved: similar loads
    jobs, given = [], 0
    for k, share in enumerate(shares):
        folder, mine = out / WORKERS_DIR / str(k), [r for rows in done.values() for r in rows if r["seed"] in share]
        folder.mkdir(parents=True)
        write_json(folder / "plan.json", {"settings": settings})
        EpisodeLog(folder / "episodes.jsonl").extend(mine)
        jobs.append((kwargs, str(folder), share))
        given += len(mine)
    if not jobs:
        return
    total = sum((a, s) not in finished for a in agents for s in todo)
    log.info("playing %d episodes in %d worker processes", total, len(jobs))
    context = multiprocessing.get_context("spawn")  # no inherited OpenGL context or torch thread pool
    pipes = [context.Pipe(duplex=False) for _ in jobs]  # (reader, writer): a worker's MbvcError comes back
    procs = [context.Process(target=_worker, args=(job, writer), daemon=True) for job, (_, writer) in zip(jobs, pipes)]
    readers = [reader for reader, _ in pipes]
    try:
        with tqdm(total=total, desc=f"plan ({len(jobs)} workers)", unit="ep", disable=not progress) as bar:
            for proc in procs:
                proc.start()
            while any(p.is_alive() for p in procs):
                for reader in multiprocessing.connection.wait(readers, timeout=1.0):
                    raise reader.recv()  # one line, as in a serial run
                lines = sum(len((Path(folder) / "episodes.jsonl").read_text().splitlines()) for _, folder, _ in jobs)
                bar.update(lines - given - bar.n)
        for reader in (r for r in readers if r.poll()):  # sent just before the worker's exit
            raise reader.recv()
        failed = [f"plan worker {k} exited with code {p.exitcode}" for k, p in enumerate(procs) if p.exitcode]
        if failed:  # a bug or a killed process, not bad input: its traceback, if any, is printed above
            raise RuntimeError("; ".join(failed))
    finally:
        for proc in (p for p in procs if p.pid is not None):  # those started
            if proc.is_alive():
                proc.terminate()
            proc.join()
        _merge_workers(out, seeds)


def _worker(job: tuple[dict[str, Any], str, list[int]], errors: Any) -> None:
    """A worker process: :func:`run_plan` on a share of the seeds in its own folder, on one torch thread."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops the workers
    if sys.platform == "linux":  # and a killed parent takes them with it (PR_SET_PDEATHSIG)
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)
    torch.set_num_threads(1)
    kwargs, folder, seeds = job
    try:
        run_plan(out=folder, seeds=seeds, **kwargs)
    except MbvcError as exc:
        errors.send(exc)
        raise SystemExit(2) from None


def _merge_workers(out: Path, seeds: list[int]) -> None:
    """Append the episodes of ``out/.workers/*`` missing from ``out/episodes.jsonl`` (agent by agent, in seed
    order), take the GIF of the first MPC episode they ran when ``out`` has none, and remove the folders."""
    root = out / WORKERS_DIR
    if not root.is_dir():
        return
    episodes = EpisodeLog(out / "episodes.jsonl")
    finished = {(agent, row["seed"]) for agent, rows in episodes.load().items() for row in rows}
    order = {seed: i for i, seed in enumerate(seeds)}
    new: dict[tuple[str, int], dict[str, Any]] = {}
    gifs = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for agent, rows in EpisodeLog(folder / "episodes.jsonl").load().items():
            fresh = [row for row in rows if (agent, row["seed"]) not in finished]
            new.update({(agent, row["seed"]): row for row in fresh})
            if agent == "mpc" and fresh and (folder / "episode.gif").is_file():  # of its first MPC episode
                gifs.append((order.get(fresh[0]["seed"], len(order)), str(folder / "episode.gif")))
    rank = {agent: i for i, agent in enumerate(AGENTS)}
    episodes.extend(new[key] for key in sorted(new, key=lambda k: (rank.get(k[0], len(rank)),
                                                                   order.get(k[1], len(order)), k[1])))
    if gifs and not (out / "episode.gif").is_file():
        os.replace(min(gifs)[1], out / "episode.gif")
    shutil.rmtree(root)


__all__ = ["AGENTS", "ORACLE_PUSHER_WEIGHT", "WORKERS_DIR", "clear_goal", "make_env", "results_table", "run_plan"]
