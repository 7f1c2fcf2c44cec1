"""Rollout collection throughput: frames/s of ``mbvc collect``, serial against vectorised.

Each configuration collects the same episodes (same seeds, so the same frames) of
``mbvc/Push-v0`` with the ``mixed`` policy into a fresh rollout folder through
:func:`envs.collect.collect`: simulation, rendering, the policy and the writes all count.

* ``num_envs = 1``: one env in this process;
* ``num_envs = n > 1``: ``gymnasium.vector.AsyncVectorEnv`` with ``n`` spawned workers (the
  policy runs in this process). Its time includes starting the workers, which is also
  timed on its own (as is the serial run's, creating the OpenGL context), so the steady rate
  can be read off.

Configurations alternate over ``--repeats`` rounds and the best round is kept (the machine
may be shared; the load average is recorded before and after).

Usage::

    python benchmarks/collect_throughput.py                 # writes benchmarks/results/collect_throughput.{json,md}
    python benchmarks/collect_throughput.py --episodes 8 --repeats 1 --num-envs 1 2 4
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import resource
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs  # noqa: E402

envs.setup_gl()  # first: headless GL default before MuJoCo loads

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.machine import machine_info  # noqa: E402
from envs._gl import mesa_software_gl  # noqa: E402
from envs.collect import CollectConfig, collect, make_env  # noqa: E402
from mbvc.io import atomic_write, write_json  # noqa: E402

logger = logging.getLogger("collect_throughput")


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine() -> dict:
    """CPU model and counts, OpenGL backend and library versions."""
    import mujoco

    return {**machine_info(), "numpy": np.__version__, "mujoco": mujoco.__version__,
            "gymnasium": gym.__version__, "mujoco_gl": os.environ.get("MUJOCO_GL", ""),
            "software_gl": mesa_software_gl()}


def startup(cfg: CollectConfig, num_envs: int) -> float:
    """Seconds before the first frame: making the env(s) and resetting once (for ``num_envs > 1``,
    spawning the workers; for 1, creating the renderer's OpenGL context)."""
    start = time.perf_counter()
    env_fn = partial(make_env, cfg.env_id, cfg.image_size, cfg.episode_length)
    env = env_fn() if num_envs == 1 else gym.vector.AsyncVectorEnv([env_fn] * num_envs, context="spawn")
    try:
        env.reset(seed=0 if num_envs == 1 else list(range(num_envs)))
        return time.perf_counter() - start
    finally:
        env.close()


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the workers, once closed)."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                   resource.getrusage(resource.RUSAGE_CHILDREN)))


def run(cfg: CollectConfig, num_envs: int) -> dict:
    cpu = _cpu_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        stats = collect(tmp, dataclasses.replace(cfg, num_envs=num_envs))
    cpu = _cpu_seconds() - cpu
    return {"frames": stats.frames, "seconds": round(stats.seconds, 3),
            "frames_per_s": round(stats.frames_per_second, 1), "cpu_seconds": round(cpu, 2),
            "frames_per_cpu_s": round(stats.frames / cpu, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="mbvc/Push-v0")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--episode-length", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--policy", default="mixed")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("envs").setLevel(logging.WARNING)
    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # PyOpenGL's INFO chatter on import
    logging.getLogger("mbvc").setLevel(logging.WARNING)
    cfg = CollectConfig(args.env, num_episodes=args.episodes, policy=args.policy, image_size=args.image_size,
                        episode_length=args.episode_length, progress=False)
    load_before = _load()
    rounds: dict[int, list[dict]] = {n: [] for n in args.num_envs}
    for r in range(args.repeats):
        for n in args.num_envs:
            rounds[n].append(run(cfg, n))
            logger.info("round %d, num_envs %d: %s", r, n, rounds[n][-1])
    starts = {n: round(startup(cfg, n), 2) for n in args.num_envs}
    best = {n: max(rs, key=lambda x: x["frames_per_s"]) for n, rs in rounds.items()}
    base = best[args.num_envs[0]]["frames_per_s"]
    result = {
        "benchmark": "collect_throughput", "env_id": args.env, "policy": args.policy,
        "episodes": args.episodes, "episode_length": args.episode_length, "image_size": args.image_size,
        "frames_per_run": best[args.num_envs[0]]["frames"], "repeats": args.repeats,
        "frames_per_s": {str(n): b["frames_per_s"] for n, b in best.items()},
        "speedup_vs_first": {str(n): round(b["frames_per_s"] / base, 2) for n, b in best.items()},
        "steady_frames_per_s": {str(n): round(b["frames"] / max(b["seconds"] - starts[n], 1e-9), 1)
                                for n, b in best.items()},
        "startup_s": {str(n): s for n, s in starts.items()},
        "frames_per_cpu_s": {str(n): b["frames_per_cpu_s"] for n, b in best.items()},
        "rounds": {str(n): rs for n, rs in rounds.items()},
        "load_average_before": load_before, "load_average_after": _load(), "machine": machine(),
        "command": "python benchmarks/collect_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "collect_throughput.json", result)
    with atomic_write(args.out / "collect_throughput.md", "w") as f:
        f.write(markdown(result))
    logger.info(json.dumps({k: v for k, v in result.items() if k not in ("machine", "rounds")}))
    return 0


def markdown(r: dict) -> str:
    m = r["machine"]
    rows = []
    for n, fps in r["frames_per_s"].items():
        steady, start = r["steady_frames_per_s"][n], r["startup_s"][n]
        mode = "serial (this process)" if n == "1" else f"AsyncVectorEnv, {n} workers"
        cpu = r["frames_per_cpu_s"][n]
        rows.append(f"| {n} | {mode} | {fps} | {r['speedup_vs_first'][n]}x | {start} | {steady} | {cpu} |")
    gl = "Mesa llvmpipe (CPU)" if m["software_gl"] else "GPU"
    return (
        "# Rollout collection throughput\n\n"
        f"`{r['env_id']}`, policy `{r['policy']}`, {r['episodes']} episodes of {r['episode_length']} steps "
        f"({r['frames_per_run']} frames of {r['image_size']}x{r['image_size']}) per run, written as rollouts; "
        f"best of {r['repeats']} alternating round(s). Start-up: making the env(s) and the first reset "
        "(serial: the renderer's OpenGL context; vectorised: spawning the workers, which import "
        "MuJoCo and gymnasium); the last column subtracts it.\n\n"
        "| num envs | mode | frames/s (wall, incl. start-up) | vs serial | start-up (s) | "
        "frames/s without start-up | frames per CPU second |\n| --- | --- | --- | --- | --- | --- | --- |\n"
        + "\n".join(rows) + "\n\n"
        f"Rendering: MUJOCO_GL={m['mujoco_gl']}, {gl}. Load average before: {r['load_average_before']}, "
        f"after: {r['load_average_after']}. On a shared machine other jobs compete for the same cores: "
        "there, more processes also win a larger share of the CPU, so the wall-clock ratio can exceed "
        "what idle cores would give. Frames per CPU second (this process plus its workers, all "
        "threads) measure the work per frame: vectorising spreads that work over processes, it does not reduce it.\n\n"
        f"Machine: {m['cpu']}, {m['cpu_count']} logical CPUs ({m['cpus_usable']} usable), {m['platform']}; "
        f"Python {m['python']}, numpy {m['numpy']}, mujoco {m['mujoco']}, gymnasium {m['gymnasium']}.\n\n"
        f"Command: `{r['command'].strip()}`\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
