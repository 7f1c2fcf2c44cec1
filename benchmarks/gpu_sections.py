"""The GPU suite's sections (see ``benchmarks/gpu_suite.py``) and the results file they share.

Each ``section_<name>(sec)`` runs in its own process; it records every measurement through
:meth:`Section.emit` as soon as it has it, so a section killed at its cap keeps its rows.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import shlex
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import gpu_report

log = logging.getLogger("gpu_suite")
FULL_PRESETS = ("mnist-predrnn-v2", "kth-predrnn-v2", "bair-predrnn", "bair-predrnn-v2")
BATCH = {"mnist": 8, "kth": 4, "bair": 16}  # the presets' (the reference scripts') batch sizes
TARGET_PLAN_MS = 100.0
TARGET_EVAL_SPEEDUP = 10.0
PAPER_MSE, PAPER_ITERATIONS = 48.4, 80000
#: --tiny: every model shrunk to seconds on a CPU (the dry run of the tests).
TINY_MODEL = ["model.num_hidden=[8,8]", "model.img_width=16", "model.filter_size=3",
              "model.input_length=2", "model.total_length=4"]


# ---------------------------------------------------------------------------------- results
def load_results(out_dir: Path) -> dict[str, Any]:
    path = out_dir / "gpu_suite.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def save_results(out_dir: Path, results: dict[str, Any]) -> None:
    """Write the JSON and the Markdown (both replaced atomically)."""
    from mbvc.io import atomic_write, write_json

    write_json(out_dir / "gpu_suite.json", results)
    with atomic_write(out_dir / "gpu_suite.md", "w") as f:
        f.write(gpu_report.markdown(results))


def update_section(out_dir: Path, name: str, **fields: Any) -> None:
    """Read, change one section, write: sections run one after another, never at once."""
    results = load_results(out_dir)
    results.setdefault("sections", {}).setdefault(name, {}).update(fields)
    save_results(out_dir, results)


class Section:
    """What a section's code sees: its device, size, deadline, and how to record results.

    Args:
        name: the section.
        device: torch device string.
        tiny: tiny models and counts (CPU dry run).
        deadline: ``time.monotonic()`` value by which the section must have finished.
        out_dir: where the results live.
    """

    def __init__(self, name: str, device: str, tiny: bool, deadline: float, out_dir: Path) -> None:
        self.name, self.device, self.tiny, self.deadline, self.out_dir = name, device, tiny, deadline, out_dir
        self.cuda = device.startswith("cuda")

    def left(self) -> float:
        """Seconds left before the section's deadline."""
        return self.deadline - time.monotonic()

    def emit(self, row: dict[str, Any]) -> None:
        """Record one finished measurement now (partial results survive a later failure)."""
        results = load_results(self.out_dir)
        section = results.setdefault("sections", {}).setdefault(self.name, {})
        section.setdefault("rows", []).append(row)
        save_results(self.out_dir, results)
        log.info("%s: %s", self.name, json.dumps(row, default=str))

    def set(self, **fields: Any) -> None:
        """Record section-level figures (not rows)."""
        update_section(self.out_dir, self.name, **fields)

    def rows(self, name: str) -> list[dict[str, Any]]:
        """Rows another section has written (e.g. the reference timings for ratios)."""
        return load_results(self.out_dir).get("sections", {}).get(name, {}).get("rows", [])

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)


def model_config(preset: str, tiny: bool) -> Any:
    from mbvc.config import model_config_from_preset

    return model_config_from_preset(preset, TINY_MODEL if tiny else ())


def set_tf32(enabled: bool) -> None:
    """TF32 for matmuls and cuDNN convolutions (process-wide; the suite's sections own their process)."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def time_steps(step: Callable[[int], Any], warmup: int, iters: int, sec: Section) -> tuple[float, float]:
    """``(seconds per step, seconds of the warm-up)``: ``iters`` steps timed as one block."""
    t0 = time.perf_counter()
    for i in range(warmup):
        step(i)
    sec.sync()
    t1 = time.perf_counter()
    for i in range(iters):
        step(warmup + i)
    sec.sync()
    return (time.perf_counter() - t1) / iters, t1 - t0


def step_flops(step: Callable[[int], Any]) -> int:
    """FLOPs of one call of ``step`` (convolutions and matmuls, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step(0)
    return int(counter.get_total_flops())


def matmul_tflops(sec: Section) -> dict[str, Any]:
    """bf16 (CUDA) or fp32 (CPU) square matmul rate on random data: the ceiling for the TFLOP/s."""
    n = 256 if sec.tiny else 8192
    dtype = torch.bfloat16 if sec.cuda else torch.float32
    g = torch.Generator(device=sec.device).manual_seed(0)
    a = torch.randn(n, n, device=sec.device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=sec.device, dtype=dtype, generator=g)
    for _ in range(3):
        a @ b
    reps = 3 if sec.tiny else 20
    sec.sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sec.sync()
    seconds = (time.perf_counter() - t0) / reps
    return {"n": n, "dtype": str(dtype).removeprefix("torch."), "seconds": seconds, "tflops": 2 * n**3 / seconds / 1e12}


# ---------------------------------------------------------------------------------- train
def _train_row(preset: str, variant: str, batch: int, s_per_it: float, flops: int, peak: float,
               ref_s: float | None, **extra: Any) -> dict[str, Any]:
    tflops = flops / s_per_it / 1e12
    return {"preset": preset, "variant": variant, "batch": batch, "s_per_it": s_per_it, "it_s": 1.0 / s_per_it,
            "flops_per_step": flops, "tflops": tflops, "fraction_of_matmul_peak": tflops / peak,
            "ratio_vs_reference": None if ref_s is None else ref_s / s_per_it, **extra}


def section_train(sec: Section) -> None:
    """fp32 / TF32 / bf16 eager steps of mbvc and the reference-style step, every full preset."""
    from benchmarks import speed

    if sec.cuda:
        props = torch.cuda.get_device_properties(sec.device)
        sec.set(gpu={"name": props.name, "capability": f"{props.major}.{props.minor}",
                     "memory_gib": props.total_memory / 2**30, "multiprocessors": props.multi_processor_count,
                     "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()})
    peak = matmul_tflops(sec)
    sec.set(matmul_peak=peak)
    warmup, iters = (1, 1) if sec.tiny else (5, 20)
    for preset in FULL_PRESETS:
        cfg = model_config(preset, sec.tiny)
        b = 2 if sec.tiny else BATCH[preset.split("-")[0]]
        model, ref_trainer = speed.build_pair(cfg, sec.device)
        frames_np, actions_np, frames, actions = speed.make_batch(cfg, b, sec.device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        off = contextlib.nullcontext()
        bf16 = torch.autocast(sec.device.split(":")[0], dtype=torch.bfloat16)
        ref_step = speed.ref_train_fn(ref_trainer, cfg, frames_np, actions_np)
        steps = {"reference": (ref_step, None), "fp32": (speed.mbvc_train_fn(model, opt, cfg, frames, actions, sec.device, off), False),
                 "tf32": (speed.mbvc_train_fn(model, opt, cfg, frames, actions, sec.device, off), True),
                 "bf16": (speed.mbvc_train_fn(model, opt, cfg, frames, actions, sec.device, bf16), True)}
        flops = {"reference": step_flops(ref_step), "mbvc": step_flops(steps["fp32"][0])}
        params = sum(p.numel() for p in model.parameters())
        ref_s = None
        for variant, (step, tf32) in steps.items():
            if sec.left() < 5:
                sec.emit({"preset": preset, "variant": variant, "skipped": "section time cap reached"})
                continue
            if tf32 is None:  # the reference runs with torch's defaults: TF32 in cuDNN, not in matmuls
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True
            else:
                set_tf32(tf32)
            s, warm_s = time_steps(step, warmup, iters, sec)
            ref_s = s if variant == "reference" else ref_s
            kind = "reference" if variant == "reference" else "mbvc"
            sec.emit(_train_row(preset, variant, b, s, flops[kind], peak["tflops"], ref_s, iters=iters,
                                warmup_s=warm_s, params=params, model=cfg.name, hidden=list(cfg.num_hidden),
                                frames=f"{cfg.total_length}x{cfg.img_channel}x{cfg.img_height}x{cfg.img_width}"))
        del model, ref_trainer, opt, steps
        if sec.cuda:
            torch.cuda.empty_cache()


def graphed_step(model: torch.nn.Module, cfg: Any, frames: torch.Tensor, actions: torch.Tensor | None,
                 device: str) -> Callable[[int], None]:
    """A bf16 training step (forward, backward, Adam) captured whole in one CUDA graph.

    Each call draws the iteration's curriculum mask outside the graph, copies it into the
    graph's static input and replays the graph.
    """
    from mbvc.models import CurriculumConfig, curriculum_mask

    cur, gen, b = CurriculumConfig(), torch.Generator().manual_seed(0), frames.shape[0]
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, capturable=True)
    mask = curriculum_mask(cfg, cur, 0, b, generator=gen, device=device).float().clone()

    def body() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            out = model(frames, mask, actions)
        out.loss.backward()
        opt.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            body()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        body()

    def step(itr: int) -> None:
        mask.copy_(curriculum_mask(cfg, cur, itr, b, generator=gen, device=device))
        graph.replay()

    return step


def section_train_fast(sec: Section) -> None:
    """bf16 + CUDA graph and bf16 + regional torch.compile steps of every full preset (CUDA only)."""
    from benchmarks import speed
    from mbvc.models import build_model

    earlier = {(r["preset"], r["variant"]): r for r in sec.rows("train") if "s_per_it" in r}
    peak = load_results(sec.out_dir).get("sections", {}).get("train", {}).get("matmul_peak", {}).get("tflops")
    set_tf32(True)
    warmup, iters = (1, 1) if sec.tiny else (5, 20)
    # Every preset's CUDA graph first (seconds each), then the compilations (tens of seconds each).
    for variant, preset in ((v, p) for v in ("bf16+cuda_graph", "bf16+compile") for p in FULL_PRESETS):
        cfg = model_config(preset, sec.tiny)
        b = 2 if sec.tiny else BATCH[preset.split("-")[0]]
        _, _, frames, actions = speed.make_batch(cfg, b, sec.device)
        ref = earlier.get((preset, "reference"))
        flops = earlier.get((preset, "fp32"), {}).get("flops_per_step")
        need = 10 if variant == "bf16+cuda_graph" else 30
        if sec.left() < need:
            sec.emit({"preset": preset, "variant": variant, "skipped": f"less than {need} s of the section cap left"})
            continue
        torch.manual_seed(0)
        model = build_model(cfg).to(sec.device)
        t0 = time.perf_counter()
        try:
            if variant == "bf16+cuda_graph":
                step = graphed_step(model, cfg, frames, actions, sec.device)
            else:
                for cell in model.cell_list:  # regional compilation: one graph serves every layer and step
                    cell.compile()
                opt = torch.optim.Adam(model.parameters(), lr=1e-4)
                step = speed.mbvc_train_fn(model, opt, cfg, frames, actions, sec.device,
                                           torch.autocast("cuda", dtype=torch.bfloat16))
            s, warm_s = time_steps(step, warmup, iters, sec)
        except Exception as exc:  # a variant that does not apply must not end the section
            sec.emit({"preset": preset, "variant": variant, "error": f"{type(exc).__name__}: {exc}"[:500]})
            continue
        finally:
            del model
            torch.cuda.empty_cache()
        row = {"preset": preset, "variant": variant, "batch": b, "s_per_it": s, "it_s": 1.0 / s,
               "setup_s": time.perf_counter() - t0 - warm_s - s * iters, "warmup_s": warm_s, "iters": iters,
               "ratio_vs_reference": None if ref is None else ref["s_per_it"] / s,
               "ratio_vs_bf16_eager": (earlier[(preset, "bf16")]["s_per_it"] / s
                                       if (preset, "bf16") in earlier else None)}
        if flops and peak:
            row.update(flops_per_step=flops, tflops=flops / s / 1e12, fraction_of_matmul_peak=flops / s / 1e12 / peak)
        sec.emit(row)
        del step


# ---------------------------------------------------------------------------------- planning
def section_planning(sec: Section) -> None:
    """Latency per control step of MPC (replanning every step) with CEM and iCEM."""
    from agents import GoalImageCost, MPCAgent, PredRNNModel
    from agents.planners import CEMOptimizer, icem
    from mbvc.models import build_model

    pop, its, horizon = (8, 2, 2) if sec.tiny else (200, 3, 10)
    warmup, steps = (1, 1) if sec.tiny else (2, 8)
    cases = (("push-demo", "push-demo", None), ("bair-predrnn-v2 (full size)", "bair-predrnn-v2", TARGET_PLAN_MS))
    set_tf32(True)
    # the matmul ceiling the train section measured, when it ran (this section may run alone)
    peak = load_results(sec.out_dir).get("sections", {}).get("train", {}).get("matmul_peak", {}).get("tflops")
    rng = np.random.default_rng(0)
    for label, preset, target in cases:
        cfg = model_config(preset, sec.tiny)
        torch.manual_seed(0)
        net = build_model(cfg).to(sec.device)
        flops_per_call = None  # counted once per model: it does not depend on precision or planner
        h, w = cfg.img_height, cfg.img_width
        observations = rng.integers(0, 256, size=(warmup + steps, h, w, 3), dtype=np.uint8)
        goal = torch.from_numpy(rng.random((cfg.img_channel, h, w), dtype=np.float32))
        for precision in ("tf32", "bf16"):
            for planner_name, make in (("cem", CEMOptimizer), ("icem", icem)):
                if sec.left() < 5:
                    sec.emit({"model": label, "precision": precision, "planner": planner_name,
                              "skipped": "section time cap reached"})
                    continue
                planner = make(-1.0, 1.0, num_iterations=its, population_size=pop, seed=0)
                model = PredRNNModel(net, chunk_size=None, autocast=torch.bfloat16 if precision == "bf16" else None)
                agent = MPCAgent(model, GoalImageCost(), planner, horizon=horizon, replan_every=1)
                agent.reset(goal=goal, seed=0)
                times = []
                for i, image in enumerate(observations):
                    sec.sync()
                    t0 = time.perf_counter()
                    agent.act({"image": image})  # returns a numpy action: the step is complete
                    if i >= warmup:
                        times.append(time.perf_counter() - t0)
                median_ms = 1000 * statistics.median(times)
                if flops_per_call is None:  # one more step, counted, at the same history length
                    flops_per_call = step_flops(lambda _: agent.act({"image": observations[-1]}))
                    flops_per_call /= planner.info.num_evaluations
                flops = flops_per_call * planner.info.num_evaluations
                tflops = flops / median_ms * 1e3 / 1e12
                sec.emit({"model": label, "preset": preset, "params": sum(p.numel() for p in net.parameters()),
                          "frames": f"{cfg.img_channel}x{h}x{w}", "precision": precision, "planner": planner_name,
                          "population": pop, "iterations": its, "horizon": horizon,
                          "model_calls_per_step": planner.info.num_evaluations, "steps": steps,
                          "median_ms": median_ms, "p90_ms": 1000 * float(np.percentile(times, 90)),
                          "min_ms": 1000 * min(times), "target_ms": target,
                          "flops_per_step": flops, "tflops": tflops,
                          "fraction_of_matmul_peak": tflops / peak if peak else None,
                          "ms_at_matmul_peak": flops / (peak * 1e12) * 1e3 if peak else None,
                          "meets_target": None if target is None else median_ms <= target})
        del net
        if sec.cuda:
            torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------- eval
def lpips_module(device: str) -> tuple[torch.nn.Module, str]:
    """LPIPS with its real weights when present, else with random weights (timing only)."""
    from mbvc.errors import MbvcError
    from mbvc.metrics import LPIPS, load_lpips

    try:
        return load_lpips(device=device), "real weights"
    except (ImportError, MbvcError) as exc:
        log.info("LPIPS with random weights: %s", exc)
        torch.manual_seed(0)
        return LPIPS().to(device), "random weights: its weight files are absent; the timing is the same"


def reference_lpips(metric: torch.nn.Module, pred: np.ndarray, target: np.ndarray, batch: int,
                    device: str) -> np.ndarray:
    """The reference's LPIPS loop: per batch and future frame, numpy channels-last to the device,
    one network call per frame, the result back to the host. Returns per-frame means ``(T,)``."""
    n, t = pred.shape[:2]
    sums = np.zeros(t)
    with torch.no_grad():
        for start in range(0, n, batch):
            x, gx = target[start:start + batch], np.clip(pred[start:start + batch], 0, 1)
            for i in range(t):
                t1 = torch.from_numpy(gx[:, i]).permute(0, 3, 1, 2).to(device)
                t2 = torch.from_numpy(x[:, i]).permute(0, 3, 1, 2).to(device)
                sums[i] += metric(t1, t2).double().sum().cpu().numpy()
    return sums / n


def section_eval(sec: Section) -> None:
    """Pixel metrics + LPIPS on the device against the reference's per-image loops."""
    from benchmarks import eval_throughput as et

    set_tf32(False)  # both LPIPS paths in plain fp32, so that they can be compared
    metric, weights = lpips_module(sec.device)
    sec.set(lpips_weights=weights)
    sequences, batch, repeats = (1, 1, 1) if sec.tiny else (64, 16, 2)
    sync = (lambda: torch.cuda.synchronize(sec.device)) if sec.cuda else (lambda: None)
    for case in et.CASES:
        if sec.left() < 5:
            sec.emit({"case": case, "skipped": "section time cap reached"})
            continue
        row = et.run_case(case, sequences, batch, repeats, torch.device(sec.device), seed=0)
        pred, target = et.case_frames(case, sequences, seed=0)
        np_pred, np_target = pred.permute(0, 1, 3, 4, 2).numpy().copy(), target.permute(0, 1, 3, 4, 2).numpy().copy()
        dev_pred, dev_target = pred.to(sec.device), target.to(sec.device)

        def ours() -> np.ndarray:
            with torch.no_grad():
                return metric.frame_distances(dev_pred, dev_target).mean(dim=0).cpu().numpy()

        ours()  # warm-up
        t_ref, ref = et.best_time(lambda: reference_lpips(metric, np_pred, np_target, batch, sec.device), repeats, sync)
        t_ours, mine = et.best_time(ours, repeats, sync)
        # Recorded rather than asserted: a mismatch must not cost the other cases' timings.
        agree = bool(np.allclose(mine, ref, rtol=1e-3, atol=1e-5))
        total_ref, total_ours = row["reference_s"] + t_ref, row["mbvc_s"] + t_ours
        sec.emit({**row, "lpips_reference_s": t_ref, "lpips_mbvc_s": t_ours, "lpips_speedup": t_ref / t_ours,
                  "lpips_max_abs_diff": float(np.abs(mine - ref).max()), "lpips_agree": agree, "all_reference_s": total_ref,
                  "all_mbvc_s": total_ours, "all_speedup": total_ref / total_ours,
                  "all_fps_mbvc": row["frames"] / total_ours, "target_speedup": TARGET_EVAL_SPEEDUP,
                  "meets_target": total_ref / total_ours >= TARGET_EVAL_SPEEDUP})


# ---------------------------------------------------------------------------------- curve
#: Beyond this many iterations (log) a power-law guess is meaningless (and exp() overflows).
MAX_LOG_ITERATIONS = math.log(1e15)


def extrapolate(curve: list[dict[str, Any]], it_per_s: float) -> dict[str, Any]:
    """What the curve says about reaching the paper's MSE: measured, and a power-law guess.

    The power law ``mse = a * iteration ** b`` is fitted (least squares in log-log) to the
    second half of the evaluated points; it is a guess as soon as it is used far past them.
    """
    points = [(p["iteration"], p["model"]["mse"]) for p in curve if p["iteration"] > 0 and p["model"]["mse"]]
    out: dict[str, Any] = {"target_mse": PAPER_MSE, "paper_iterations": PAPER_ITERATIONS, "it_per_s": it_per_s,
                           "minutes_for_paper_iterations": PAPER_ITERATIONS / it_per_s / 60 if it_per_s else None,
                           "measured_iterations": points[-1][0] if points else 0,
                           "best_mse": min((m for _, m in points), default=None), "reached_at_iteration": None,
                           "power_law": None}
    reached = [i for i, m in points if m <= PAPER_MSE]
    if reached:
        out["reached_at_iteration"] = reached[0]
        out["reached_after_minutes"] = reached[0] / it_per_s / 60
    late = points[len(points) // 2:]
    if len(late) < 3:
        out["power_law_note"] = f"{len(late)} points in the second half of the curve; 3 are needed for a fit"
        return out
    x, y = np.log([i for i, _ in late]), np.log([m for _, m in late])
    b, log_a = np.polyfit(x, y, 1)
    if b >= 0:
        out["power_law_note"] = f"MSE did not fall over the fitted points (exponent {b:.3f}): no extrapolation"
        return out
    log_iterations = (math.log(PAPER_MSE) - log_a) / b
    if log_iterations > MAX_LOG_ITERATIONS:  # a nearly flat fit (short or noisy curves): exp() would overflow
        out["power_law_note"] = (f"MSE fell too slowly over the fitted points (exponent {b:.2g}) to reach "
                                 f"{PAPER_MSE} within 1e15 iterations: no extrapolation")
        return out
    iterations = math.exp(log_iterations)
    out["power_law"] = {"a": math.exp(log_a), "b": float(b), "fitted_iterations": [int(late[0][0]), int(late[-1][0])],
                        "iterations_to_target": iterations, "minutes_to_target": iterations / it_per_s / 60,
                        "beyond_measured": iterations / late[-1][0]}
    return out


def section_curve(sec: Section, curve_s: float | None) -> None:
    """Train mnist-predrnn-v2 for the iterations that fit the time left (``train.time_budget_min``);
    evaluate every N iterations; extrapolate."""
    from benchmarks import train_budget

    set_tf32(True)
    budget = max(1.0, 0.7 * sec.left() - 15)  # timing, evaluations, set-up and the final save run outside it
    if curve_s is not None:
        budget = min(budget, curve_s)
    # N from the measured bf16 step (the trainer's mode on CUDA): about 10 evaluations.
    bf16 = [r for r in sec.rows("train") if r.get("preset") == "mnist-predrnn-v2" and r.get("variant") == "bf16"
            and "it_s" in r]
    every = 3 if sec.tiny else None
    if every is None and bf16:
        raw = bf16[0]["it_s"] * budget / 10
        every = max(10, int(round(raw, -int(math.floor(math.log10(max(raw, 1)))))))
    argv = ["--preset", "mnist-predrnn-v2", "--device", sec.device, "--budget-min", f"{budget / 60:.4f}",
            "--schedule", "preset", "--test-size", "2" if sec.tiny else "256", "--threads", str(torch.get_num_threads()),
            "--run-dir", tempfile.mkdtemp(prefix="gpu-curve-"), "--out", str(sec.out_dir / "gpu_curve"),
            *(["--eval-every", str(every)] if every else ["--evals", "10"])]
    if sec.tiny:
        argv += [a for o in TINY_MODEL if "img_width" not in o for a in ("--set", o)]
        argv += ["--set", "train.batch_size=2", "--set", "eval.horizon=2", "--set", "eval.batch_size=2"]
    sec.set(budget_s=budget, eval_every=every, command="python benchmarks/train_budget.py " + shlex.join(argv))
    args = train_budget.parse_args(argv)

    def point(p: dict[str, Any]) -> None:
        sec.emit({"iteration": p["iteration"], "train_s": p["train_s"], "wall_s": p["wall_s"],
                  "train_loss": p["train_loss"], "mse": p["model"]["mse"], "ssim": p["model"]["ssim"],
                  "psnr": p["model"]["psnr"], "lpips": p["model"]["lpips"]})

    report = train_budget.run(args, argv, on_point=point)
    report["extrapolation"] = extrapolate(report["curve"], report["final"]["it_per_s"])
    train_budget.write_report(report, sec.out_dir / "gpu_curve")
    sec.set(final={"iteration": report["final"]["iteration"], "it_per_s": report["final"]["it_per_s"],
                   "mse": report["final"]["model"]["mse"], "ssim": report["final"]["model"]["ssim"]},
            baselines={k: {"mse": v["mse"], "ssim": v["ssim"]} for k, v in report["baselines"].items()},
            lpips=report["lpips"], extrapolation=report["extrapolation"], schedule=report["schedule"])
