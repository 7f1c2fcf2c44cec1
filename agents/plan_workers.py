"""The worker processes of ``mbvc plan``: the missing episodes played in parallel, then merged.

Each worker gets a resumable plan folder ``OUT/.workers/<k>`` (the settings and the finished
episodes of its share of the seeds) and runs :func:`agents.plan.run_plan` in it, on one torch
thread. The folders are merged into ``OUT/episodes.jsonl`` agent by agent in seed order, also
when a worker fails or the run is interrupted (and a killed run's folders on the next start), so
the records are those of a serial run whatever the number of workers.
"""
from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from mbvc.errors import MbvcError
from mbvc.io import write_json

from .plan_records import WORKERS_DIR, EpisodeLog

log = logging.getLogger(__name__)
#: Agents in the order their records are merged.
AGENT_ORDER = ("mpc", "random", "oracle")


def play_in_workers(out: Path, settings: dict[str, Any], seeds: list[int], agents: list[str], workers: int,
                     kwargs: dict[str, Any], progress: bool) -> None:
    """Play the episodes missing from ``out/episodes.jsonl`` in ``workers`` processes and merge them there.

    Each worker gets a resumable plan folder ``out/.workers/<k>`` (the settings and the finished
    episodes of its seeds) and runs :func:`run_plan` in it. The folders are merged also when a
    worker fails or the run is interrupted, and a killed run's folders on the next start.
    """
    from tqdm.auto import tqdm

    merge_workers(out, seeds)
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
        merge_workers(out, seeds)


def _worker(job: tuple[dict[str, Any], str, list[int]], errors: Any) -> None:
    """A worker process: :func:`run_plan` on a share of the seeds in its own folder, on one torch thread."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops the workers
    if sys.platform == "linux":  # and a killed parent takes them with it (PR_SET_PDEATHSIG)
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)
    torch.set_num_threads(1)
    from .plan import run_plan

    kwargs, folder, seeds = job
    try:
        run_plan(out=folder, seeds=seeds, **kwargs)
    except MbvcError as exc:
        errors.send(exc)
        raise SystemExit(2) from None


def merge_workers(out: Path, seeds: list[int]) -> None:
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
    rank = {agent: i for i, agent in enumerate(AGENT_ORDER)}
    episodes.extend(new[key] for key in sorted(new, key=lambda k: (rank.get(k[0], len(rank)),
                                                                   order.get(k[1], len(order)), k[1])))
    if gifs and not (out / "episode.gif").is_file():
        os.replace(min(gifs)[1], out / "episode.gif")
    shutil.rmtree(root)


__all__ = ["merge_workers", "play_in_workers"]
