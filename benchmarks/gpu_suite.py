"""GPU figures in one run: training steps, planning latency, evaluation throughput, a training curve.

Made for a device machine lent for a few minutes (one H100 / H200, ~8 minutes of command time):
one command runs every section in its own process under its own time cap, and every finished
measurement is written at once, so a section that fails or runs out of time costs only its own
unfinished rows. Sections, in order:

* ``train``: a training iteration of every full preset (mnist-predrnn-v2, kth-predrnn-v2,
  bair-predrnn, bair-predrnn-v2) with mbvc in fp32, TF32 and bf16 autocast, against the
  reference-style loop (``benchmarks/reference_style.py``) on the same GPU and batch; FLOPs of a
  step counted with ``torch.utils.flop_counter.FlopCounterMode``, achieved TFLOP/s against a bf16
  matmul measured in the same run.
* ``train_fast``: the same steps with bf16 plus CUDA graphs (the whole step captured) and with
  bf16 plus ``torch.compile`` of each recurrent cell (CUDA only).
* ``planning``: latency per control step of :class:`agents.mpc.MPCAgent` (goal-image cost against
  a random goal, random observations; no simulator) with the push-demo model and a full-size
  action-conditioned model (bair-predrnn-v2, 64x64): CEM 200 x 3 x horizon 10 and iCEM at equal
  model calls, fp32/TF32 and bf16; target <= 100 ms per step for the full-size model.
* ``eval``: MSE/PSNR/SSIM (``benchmarks/eval_throughput.py``) plus LPIPS on the device against the
  reference's per-image loop on the same frames; target >= 10x.
* ``curve``: mnist-predrnn-v2 trained for the iterations that fit the time left
  (``benchmarks/train_budget.py`` with ``train.time_budget_min``, the preset's constant learning rate), MSE/SSIM on a fixed generated test set every N iterations,
  and what that says about reaching the paper's MSE 48.4.

Writes ``gpu_suite.json`` / ``gpu_suite.md`` and ``gpu_curve.{json,md,png}`` into ``--out-dir``
(default ``$OUT`` when set, else ``benchmarks/results``). Run it through ``benchmarks/gpu_suite.sh``;
docs/gpu.md says how on a lent device machine. The sections live in ``benchmarks/gpu_sections.py``.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import gpu_report, gpu_sections  # noqa: E402
from benchmarks.gpu_sections import (  # noqa: E402
    PAPER_MSE,
    TARGET_EVAL_SPEEDUP,
    TARGET_PLAN_MS,
    Section,
    load_results,
    save_results,
    update_section,
)
from benchmarks.machine import machine_info  # noqa: E402

log = logging.getLogger("gpu_suite")
SECTIONS = ("train", "train_fast", "planning", "eval", "curve")
#: Seconds each section may take at most (the curve takes what is left); a section never gets
#: more than the time left in the budget.
CAPS = {"train": 100.0, "train_fast": 110.0, "planning": 50.0, "eval": 50.0, "curve": None}


# ---------------------------------------------------------------------------------- driver
def run_section(args: argparse.Namespace) -> int:
    """Child process: run one section until its deadline (the parent kills it after that)."""
    sec = Section(args.section, args.device, args.tiny, time.monotonic() + args.cap, args.out_dir)
    if not sec.cuda:  # one thread: the dry run shares small machines; threads fight there
        torch.set_num_threads(1)
    torch.manual_seed(0)
    try:
        if args.section == "curve":
            gpu_sections.section_curve(sec, args.curve_s)
        else:
            getattr(gpu_sections, f"section_{args.section}")(sec)
    except Exception:
        update_section(args.out_dir, args.section, error="\n".join(traceback.format_exc().strip().splitlines()[-12:]))
        raise
    return 0


def nvidia_smi() -> str | None:
    """One line per GPU from nvidia-smi (no CUDA context needed), or None."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


@contextlib.contextmanager
def _child(cmd: list[str]) -> Iterator[subprocess.Popen]:
    # Own process group: torch.compile's worker processes go down with the section.
    proc = subprocess.Popen(cmd, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_suite(args: argparse.Namespace, argv: list[str]) -> int:
    """Parent: run each section in a child process under its cap; record what became of it."""
    start = time.monotonic()
    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    results = load_results(out_dir)
    sections = results.setdefault("sections", {})
    for name in args.sections:
        sections[name] = {"status": "pending"}
    info = machine_info()
    command = "bash benchmarks/gpu_suite.sh " + shlex.join(argv)
    date = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    # A rerun of some sections into the same folder keeps the others: each run is listed.
    runs = [*results.get("runs", []), {"command": command, "date": date, "sections": args.sections}]
    results.update({
        "suite": "gpu_suite", "device": args.device, "tiny": args.tiny, "budget_s": args.budget_s,
        "command": command, "date": date, "runs": runs,
        "machine": {**info, "nvidia_smi": nvidia_smi()}, "finished": None,
        "targets": {"planning_ms_per_step_full_size": TARGET_PLAN_MS, "eval_speedup": TARGET_EVAL_SPEEDUP,
                    "paper_mse": PAPER_MSE},
    })
    save_results(out_dir, results)
    for name in args.sections:
        left = args.budget_s - (time.monotonic() - start)
        # The tiny dry run keeps the full caps: they only guard against a hang, and a loaded CI
        # machine must not turn a slow start-up into a timed-out section.
        cap = left if CAPS[name] is None else min(CAPS[name], left)
        if name == "train_fast" and not args.device.startswith("cuda"):
            update_section(out_dir, name, status="skipped", note="CUDA graphs and torch.compile are measured on CUDA only")
            continue
        if cap < (2 if args.tiny else 15):
            update_section(out_dir, name, status="skipped", note=f"{left:.0f} s of the {args.budget_s:.0f} s budget left")
            continue
        cmd = [sys.executable, "-m", "benchmarks.gpu_suite", "--section", name, "--cap", f"{cap:.1f}",
               "--device", args.device, "--out-dir", str(out_dir), *(["--tiny"] if args.tiny else []),
               *(["--curve-s", str(args.curve_s)] if args.curve_s is not None else [])]
        update_section(out_dir, name, status="running", cap_s=cap)
        t0 = time.monotonic()
        log.info("section %s: up to %.0f s", name, cap)
        with _child(cmd) as proc:
            try:
                status = "ok" if proc.wait(timeout=cap) == 0 else "failed"
            except subprocess.TimeoutExpired:
                status = "timed_out"  # _child kills the process group
        fields: dict[str, Any] = {"status": status, "wall_s": time.monotonic() - t0}
        if status == "failed" and not load_results(out_dir)["sections"][name].get("error"):
            fields["error"] = f"exit status {proc.returncode} (killed by a signal if negative)"
        if status == "timed_out":
            fields["note"] = f"stopped at its {cap:.0f} s cap; the rows written before are kept"
        update_section(out_dir, name, **fields)
        log.info("section %s: %s in %.0f s", name, status, fields["wall_s"])
    results = load_results(out_dir)
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results["wall_s"] = time.monotonic() - start
    save_results(out_dir, results)
    print(gpu_report.markdown(results), flush=True)
    return 0


def default_out_dir() -> Path:
    """``$OUT`` on the device machine (what is there comes back), else benchmarks/results."""
    return Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/gpu_suite.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="torch device (cuda, cuda:N; cpu for the dry run)")
    p.add_argument("--tiny", action="store_true", help="tiny models and counts: a dry run in seconds")
    p.add_argument("--budget-s", type=float, default=None,
                   help="seconds for all sections together (default 420; 300 with --tiny)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--curve-s", type=float, default=None,
                   help="training seconds of the curve at most (default: what is left; 1 with --tiny)")
    p.add_argument("--out-dir", type=Path, default=None, help="default $OUT when set, else benchmarks/results")
    p.add_argument("--section", choices=SECTIONS, help=argparse.SUPPRESS)  # child process
    p.add_argument("--cap", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    names = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown or not names:
        p.error(f"--sections takes a comma-separated subset of {','.join(SECTIONS)}, got {args.sections!r}")
    args.sections = [s for s in SECTIONS if s in names]
    if args.budget_s is None:
        args.budget_s = 300.0 if args.tiny else 420.0
    if args.curve_s is None and args.tiny:
        args.curve_s = 1.0
    if args.out_dir is None:
        args.out_dir = default_out_dir()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: torch {torch.__version__} sees no CUDA device (use --device cpu for the dry run)")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.section:
        return run_section(args)
    return run_suite(args, argv)


if __name__ == "__main__":
    sys.exit(main())
