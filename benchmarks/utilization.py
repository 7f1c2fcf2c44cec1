"""How much of the CPU each shipped configuration uses: GFLOP/s against an sgemm of the same run.

For every preset of ``mbvc/configs`` (or ``--presets``), built as shipped (seed 0):

* **train**: one real training iteration, timed the way a run times it
  (:func:`mbvc.training.seconds_per_iteration`: a throwaway trainer on a copy of the model, so
  the data path, AMP, gradient clipping, the curriculum's masks, every update of the iteration
  (two with ``train.reverse_input``) and the optimiser step are in the time), on an in-memory
  set of ``train.batch_size`` seeded random sequences (uint8 when ``data.uint8``, as a run
  loads them). Its FLOPs are those of the same iteration: the model's ``training_updates``,
  then ``training_loss`` and ``backward`` of each update, counted on shape-only ("meta")
  tensors, so that counting costs nothing even for the big presets.
* **plan** (presets with a ``plan`` section and an action-conditioned model): one planning
  call of the MPC agent (:meth:`agents.MPCAgent.plan`: the context encoded once, then the
  preset's planner scoring population x iterations candidate sequences over the horizon
  through :class:`agents.PredRNNModel` and the cost). The preset's cost is used when it needs
  no data (``goal_image`` without a mask, ``designated_object``, ``designated_pixel``), else
  the goal-image MSE (``push`` learns the empty scene from training rollouts); the row says
  which. FLOPs are counted on the (untimed) first call, a warm-up.
* **sgemm**: a float32 ``torch.mm`` of two ``--sgemm-size`` square matrices, timed just before
  each measurement (best of ``--repeats``); GFLOP/s = 2 n^3 / t.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix
products, forward and backward, a multiply-add counted as 2 FLOPs; elementwise work (gates,
norms, the optimiser, the cost's arithmetic) is not counted, the usual convention. The
fraction is the achieved GFLOP/s over the sgemm GFLOP/s measured just before it; issue 11 asks
for at least 60% in every configuration. Seconds per call are medians (train: of ``--steps``
iterations after one warm-up; plan: of ``--repeats`` calls after one warm-up).

Presets run in increasing FLOPs per iteration, and the results are written after each one, so
an interrupted run keeps what it measured (``complete`` says whether every preset was done).
The full presets take about a minute (Moving MNIST) to two and a half minutes (KTH) per
iteration on one core; all presets at the defaults took 28 minutes with ``--threads 1``. On a
shared machine use one thread: with two, OpenMP waits at every parallel region for a thread
another job has descheduled, and a small model's step runs several times slower.

Usage:
    python benchmarks/utilization.py --threads 1                 # every preset, as shipped
    python benchmarks/utilization.py --presets push-demo,mnist-predrnn-v2-small --threads 2
    python benchmarks/utilization.py --quick --out runs/util.json  # seconds: tiny models (a check)

Writes benchmarks/results/utilization_cpu.json and .md (``--out`` changes the path).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info  # noqa: E402
from mbvc.config import RunConfig  # noqa: E402
from mbvc.errors import ConfigError, MbvcError, did_you_mean  # noqa: E402
from mbvc.io import atomic_write, write_json  # noqa: E402

log = logging.getLogger("utilization")
RESULTS = ROOT / "benchmarks" / "results"
TARGET = 0.6
#: An iteration above this many FLOPs gets 2 timed iterations by default (they take minutes).
BIG_FLOPS = 1e12
#: --quick: every preset shrunk to milliseconds per iteration (the test's check of the plumbing).
QUICK = ["model.num_hidden=[8]", "model.img_width=16", "model.filter_size=3",
               "model.input_length=2", "model.total_length=4", "train.batch_size=2"]
QUICK_PLAN = {"population_size": 8, "num_iterations": 2, "horizon": 2, "replan_every": 1}
COUNTED = ("torch.utils.flop_counter.FlopCounterMode: convolutions and matrix products (forward and backward), "
           "a multiply-add = 2 FLOPs; elementwise ops (gates, normalisation, loss arithmetic, gradient "
           "clipping, the optimiser, the cost's arithmetic) are not counted")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", help="comma-separated preset names (default: every preset of mbvc/configs)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's default, recorded)")
    p.add_argument("--steps", type=int, help="timed training iterations after one warm-up "
                                             "(default: 5, or 2 where an iteration is over 1 TFLOP)")
    p.add_argument("--repeats", type=int, default=3, help="timed plan calls and sgemm repeats (default %(default)s)")
    p.add_argument("--sgemm-size", type=int, help="side n of the sgemm (default 2048; 128 with --quick)")
    p.add_argument("--quick", action="store_true", help="tiny models and plans, 1 step, 128^3 sgemm (a check)")
    p.add_argument("--out", type=Path, default=RESULTS / "utilization_cpu.json", help="results file (.json; .md next to it)")
    return p.parse_args(argv)


def check_presets(names: str | None) -> list[str]:
    """The presets to measure; an unknown name raises :class:`ConfigError` naming it."""
    from mbvc.presets import preset_names

    known = preset_names()
    if names is None:
        return known
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    for name in chosen:
        if name not in known:
            raise ConfigError(f"--presets: unknown preset {name!r}; expected names of mbvc/configs/*.yaml."
                              + did_you_mean(name, known))
    if not chosen:
        raise ConfigError(f"--presets: expected comma-separated preset names, got {names!r}")
    return chosen


# ---------------------------------------------------------------------------------- sgemm
def sgemm(n: int, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` rate of a float32 ``n x n`` by ``n x n`` matrix product (after a warm-up)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(max(1, repeats)))
    return {"n": n, "seconds": best, "gflops": 2 * n**3 / best / 1e9}


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------- train
class RandomSequences(torch.utils.data.Dataset):
    """``size`` seeded random training sequences in memory, shaped as the preset's data.

    Items are ``{"frames": (T, C, H, W)}`` (uint8 when ``uint8``, else float32 in [0, 1]),
    for action-conditioned models ``"actions": (T, A)`` float32 in [-1, 1], and for models with a
    state readout ``"states": (T, max(state_targets) + 1)`` float32 in [-0.2, 0.2] (table metres).
    """

    def __init__(self, model_cfg: Any, size: int, uint8: bool, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        shape = (size, model_cfg.total_length, model_cfg.img_channel, model_cfg.img_height, model_cfg.img_width)
        frames = torch.rand(shape, generator=g)
        self.frames = (frames * 255).round().to(torch.uint8) if uint8 else frames
        self.actions = (torch.rand(size, model_cfg.total_length, model_cfg.num_action_ch, generator=g) * 2 - 1
                        if model_cfg.is_action else None)
        targets = getattr(model_cfg, "state_targets", ())
        self.states = ((torch.rand(size, model_cfg.total_length, max(targets) + 1, generator=g) - 0.5) * 0.4
                       if targets else None)

    def __len__(self) -> int:
        return self.frames.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"frames": self.frames[i]}
        if self.actions is not None:
            item["actions"] = self.actions[i]
        if self.states is not None:
            item["states"] = self.states[i]
        return item


def train_flops(run: RunConfig) -> int:
    """FLOPs of one training iteration of the run configuration ``run``.

    Counts what the trainer's step computes: ``training_updates`` of a batch of
    ``train.batch_size``, then ``training_loss`` and ``backward`` of each update, on "meta"
    tensors (shapes only: no arithmetic is done, so a 10-TFLOP step is counted in milliseconds).
    The optimiser and gradient clipping are elementwise and would count 0 anyway.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from mbvc.models import build_model

    mcfg, b = run.model, run.train.batch_size
    with torch.device("meta"):
        model = build_model(mcfg)
        batch = {"frames": torch.rand(b, mcfg.total_length, mcfg.img_channel, mcfg.img_height, mcfg.img_width)}
        if mcfg.is_action:
            batch["actions"] = torch.rand(b, mcfg.total_length, mcfg.num_action_ch)
        if mcfg.state_targets:
            batch["states"] = torch.rand(b, mcfg.total_length, max(mcfg.state_targets) + 1)
    model.setup_training(run.train, batch_size=b)
    with FlopCounterMode(display=False) as counter:
        for update in model.training_updates(batch, 1):
            loss, _ = model.training_loss(update, 1)
            loss.backward()
    return int(counter.get_total_flops())


def train_seconds(run: RunConfig, steps: int) -> float:
    """Median seconds of one training iteration of ``run`` on the CPU (:func:`seconds_per_iteration`)."""
    from mbvc.models import build_model
    from mbvc.training import seconds_per_iteration

    torch.manual_seed(0)
    model = build_model(run.model)
    data = RandomSequences(run.model, run.train.batch_size, run.data.uint8)
    cfg = dataclasses.replace(run.train, device="cpu", progress=False)
    return seconds_per_iteration(model, cfg, data, steps=steps, device=torch.device("cpu"))


# ---------------------------------------------------------------------------------- plan
def plan_cost(run: RunConfig) -> tuple[Any, Any, str]:
    """``(cost, goal, description)`` of a plan: the preset's cost if it needs no data, else goal-image MSE."""
    from agents.costs import DesignatedGoal, build_cost, cost_config

    cfg = cost_config(run.app.get("cost"), run.source)
    h, w = run.model.img_height, run.model.img_width
    source = getattr(cfg, "source", None) or [h / 2, w / 2]  # the designated costs' fixed pixels, if any
    target = getattr(cfg, "target", None) or [h / 4, w / 4]
    if cfg.name == "designated_object":
        return build_cost(cfg), DesignatedGoal(source, target), "designated_object (the preset's; fixed pixels)"
    if cfg.name == "designated_pixel":
        return build_cost(cfg), list(target), "designated_pixel (the preset's)"
    goal = np.random.default_rng(1).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    if cfg.name == "goal_image" and getattr(cfg, "mask", None) is None:
        return build_cost(cfg), goal, "goal_image (the preset's)"
    why = "needs the training rollouts" if cfg.name == "push" else "needs data or weights"
    return build_cost({"name": "goal_image", "final_weight": cfg.final_weight}), goal, \
        f"goal_image (the preset's {cfg.name!r} {why})"


def measure_plan(run: RunConfig, repeats: int, quick: bool) -> dict[str, Any]:
    """FLOPs and median seconds of one MPC planning call with the preset's planner and model."""
    from torch.utils.flop_counter import FlopCounterMode

    from agents import MPCAgent, PredRNNModel
    from agents.planners import PlannerConfig, build_planner
    from mbvc.config import section_config
    from mbvc.models import build_model

    planner = section_config(PlannerConfig, run, "plan")
    if quick:
        planner = planner.replace(**QUICK_PLAN)
    cost, goal, cost_note = plan_cost(run)
    torch.manual_seed(0)
    net = build_model(run.model)
    a = run.model.num_action_ch
    # Action bounds do not change the work; [-1, 1] stands in for the env's Box.
    optimizer = build_planner(planner, -np.ones(a, np.float32), np.ones(a, np.float32))
    agent = MPCAgent(PredRNNModel(net), cost, optimizer, horizon=planner.horizon, replan_every=planner.replan_every)
    obs = {"image": np.random.default_rng(0).integers(0, 256, size=(*agent.image_size, 3), dtype=np.uint8)}
    agent.reset(obs, goal=goal, seed=0)
    with FlopCounterMode(display=False) as counter:
        agent.act(obs)  # the first plan: warm-up, and the count
    times = [_timed(agent.plan) for _ in range(max(1, repeats))]
    return {"flops": int(counter.get_total_flops()), "seconds": float(statistics.median(times)),
            "seconds_all": times, "planner": planner.name, "population": planner.population_size,
            "iterations": planner.num_iterations, "horizon": planner.horizon,
            "evaluations": int(optimizer.info.num_evaluations), "cost": cost_note}


# ---------------------------------------------------------------------------------- rows
def row(preset: str, kind: str, flops: int, seconds: float, peak: dict[str, float], **extra: Any) -> dict[str, Any]:
    """One measurement: GFLOP per call, ms per call, GFLOP/s and the fraction of the sgemm rate."""
    gflops = flops / seconds / 1e9
    fraction = gflops / peak["gflops"]
    return {"preset": preset, "kind": kind, "gflop": flops / 1e9, "ms": 1000 * seconds, "gflops": gflops,
            "sgemm_gflops": peak["gflops"], "fraction": fraction, "meets_target": fraction >= TARGET, **extra}


def measure_preset(preset: str, run: RunConfig, flops: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The train row (and the plan row, where the preset plans) of one preset."""
    steps = args.steps or (1 if args.quick else 2 if flops > BIG_FLOPS else 5)
    peak = sgemm(args.sgemm_size, args.repeats)
    seconds = train_seconds(run, steps)
    rows = [row(preset, "train", flops, seconds, peak, batch=run.train.batch_size, steps=steps,
                updates=2 if run.train.reverse_input and not run.model.is_action else 1,
                what=f"one training iteration, batch {run.train.batch_size}")]
    log.info("%s train: %.1f GFLOP in %.0f ms = %.1f GFLOP/s, %.0f%% of sgemm", preset, rows[-1]["gflop"],
             rows[-1]["ms"], rows[-1]["gflops"], 100 * rows[-1]["fraction"])
    if "plan" in run.app and run.model.is_action:
        peak = sgemm(args.sgemm_size, args.repeats)
        p = measure_plan(run, args.repeats, args.quick)
        what = (f"one plan: {p['planner']} {p['population']} x {p['iterations']}, horizon {p['horizon']}, "
                f"cost {p['cost']}")
        rows.append(row(preset, "plan", p.pop("flops"), p.pop("seconds"), peak, what=what, **p))
        log.info("%s plan: %.1f GFLOP in %.0f ms = %.1f GFLOP/s, %.0f%% of sgemm", preset, rows[-1]["gflop"],
                 rows[-1]["ms"], rows[-1]["gflops"], 100 * rows[-1]["fraction"])
    return rows


def measure_all(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Measure every chosen preset (increasing FLOPs), writing the results after each one."""
    from mbvc.config import load_run_config

    presets = check_presets(args.presets)
    for key in ("steps", "repeats", "sgemm_size", "threads"):
        value = getattr(args, key)
        if value is not None and value < 1:
            raise ConfigError(f"--{key.replace('_', '-')} must be a positive integer, got {value}")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.sgemm_size = args.sgemm_size or (128 if args.quick else 2048)
    overrides = QUICK if args.quick else []
    runs = {p: load_run_config(p, overrides) for p in presets}
    flops = {p: train_flops(r) for p, r in runs.items()}
    report: dict[str, Any] = {
        "benchmark": "utilization", "device": "cpu", "threads": torch.get_num_threads(), "quick": args.quick,
        "sgemm_size": args.sgemm_size, "repeats": args.repeats, "steps": args.steps, "target_fraction": TARGET,
        "counted": COUNTED, "command": command, "machine": machine_info(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_average_at_start": os.getloadavg(),
        "presets": presets, "complete": False, "rows": []}
    for preset in sorted(presets, key=lambda p: flops[p]):
        report["rows"] += measure_preset(preset, runs[preset], flops[preset], args)
        report["load_average_now"] = os.getloadavg()
        save(report, args.out)
    report["complete"] = True
    save(report, args.out)
    return report


def save(report: dict[str, Any], out: Path) -> None:
    """Write the JSON and the Markdown next to it (each replaced atomically)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, report)
    with atomic_write(out.with_suffix(".md"), "w") as f:
        f.write(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    m, rows = report["machine"], report["rows"]
    peaks = [r["sgemm_gflops"] for r in rows]
    done = {r["preset"] for r in rows}
    missing = [p for p in report["presets"] if p not in done]
    lines = ["# CPU utilization: GFLOP/s of each preset against a same-run sgemm", "",
             f"`{report['command']}` on {m.get('cpu', '?')} ({m.get('cpu_count', '?')} cores), "
             f"{report['threads']} torch thread(s), torch {m.get('torch', '?')}; {report['date']}. "
             f"Load average at the start {_load(report['load_average_at_start'])}, at the last write "
             f"{_load(report.get('load_average_now', report['load_average_at_start']))}.", "",
             f"sgemm: float32 {report['sgemm_size']}^3 `torch.mm`, best of {report['repeats']}, timed just before "
             "each measurement"
             + (f" ({min(peaks):.0f} to {max(peaks):.0f} GFLOP/s in this run)" if peaks else "") + ". "
             f"FLOPs: {report['counted']}. ms: median per call (train: one iteration as "
             "`mbvc.training.seconds_per_iteration` times it; plan: one `MPCAgent` plan). "
             f"fraction = GFLOP/s / the sgemm's; target >= {100 * report['target_fraction']:.0f}%.", ""]
    if missing:
        lines += [f"**Incomplete run**: not measured: {', '.join(missing)}.", ""]
    lines += ["| preset | kind | what | GFLOP / call | ms / call | GFLOP/s | sgemm GFLOP/s | fraction | >= 60% |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['kind']} | {r['what']} | {r['gflop']:.2f} | {r['ms']:.1f} | "
                     f"{r['gflops']:.1f} | {r['sgemm_gflops']:.1f} | {100 * r['fraction']:.0f}% | "
                     f"{'yes' if r['meets_target'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def _load(values: Any) -> str:
    return ", ".join(f"{x:.2f}" for x in values)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    command = "python benchmarks/utilization.py " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        report = measure_all(args, command.strip())
    except MbvcError as exc:
        print(f"benchmarks/utilization.py: error: {exc}", file=sys.stderr)
        return 2
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
