"""Evaluation throughput: mbvc's batched metrics vs the PredRNN reference's per-image loop.

Both sides score the same frames (MSE and PSNR and SSIM per future frame, with the paper's
conventions) batch by batch:

* reference: numpy per future frame and batch, ``np.uint8(x * 255)`` truncation, a PSNR
  helper like the reference's ``batch_psnr``, and one ``skimage.metrics.structural_similarity``
  call per image, frames held channels-last as the reference holds them;
* mbvc: :func:`mbvc.metrics.pixel_metrics` on the ``(B, T, C, H, W)`` batch, on ``--device``.

The two results are checked to agree (SSIM and PSNR to 1e-4, MSE to 1e-6 relative) before any
time is reported. Results are merged into ``benchmarks/results/eval_throughput.json`` (one
entry per machine, device and case, so CPU and GPU runs can live side by side) and the
Markdown table next to it is rewritten from all entries.

Usage:
    python benchmarks/eval_throughput.py                    # CPU, all cases
    python benchmarks/eval_throughput.py --device cuda      # on a GPU machine
    python benchmarks/eval_throughput.py --cases mnist --sequences 32 --repeats 2
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine_info  # noqa: E402
from mbvc.io import atomic_write, write_json  # noqa: E402
from mbvc.metrics import pixel_metrics  # noqa: E402

log = logging.getLogger("eval_throughput")
RESULTS = Path(__file__).resolve().parent / "results"
#: name -> (future frames, channels, size): the paper's evaluation settings.
CASES = {"mnist": (10, 1, 64), "bair": (28, 3, 64), "kth": (20, 1, 128)}


def reference_loop(pred: np.ndarray, target: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    """Per-frame means the way the reference computes them (numpy + skimage, per image).

    Args:
        pred: ``(N, T, H, W, C)`` float32 predictions (channels-last, as the reference holds them).
        target: same shape, ground truth.
        batch: sequences per batch, as the reference's loader yields them.

    Returns:
        ``{"mse", "psnr", "ssim"}`` each ``(T,)``: mean over sequences per future frame.
    """
    from skimage.metrics import structural_similarity

    n, t = pred.shape[:2]
    sums = {k: np.zeros(t) for k in ("mse", "psnr", "ssim")}
    for start in range(0, n, batch):
        x, gx = target[start:start + batch], np.clip(pred[start:start + batch], 0, 1)
        for i in range(t):
            sums["mse"][i] += np.square(x[:, i] - gx[:, i]).sum()
            real_frm, pred_frm = np.uint8(x[:, i] * 255), np.uint8(gx[:, i] * 255)
            a, b = np.int32(pred_frm), np.int32(real_frm)
            mse = np.sum((a - b) ** 2, axis=(1, 2, 3), dtype=np.float32) / float(np.size(a[0]))
            sums["psnr"][i] += np.sum(20 * np.log10(255) - 10 * np.log10(mse))
            for j in range(x.shape[0]):
                kwargs = {"channel_axis": -1} if x.shape[-1] > 1 else {}
                p, r = (pred_frm[j], real_frm[j]) if kwargs else (pred_frm[j, ..., 0], real_frm[j, ..., 0])
                sums["ssim"][i] += structural_similarity(p, r, data_range=255, **kwargs)
    return {k: v / n for k, v in sums.items()}


def mbvc_batched(pred: torch.Tensor, target: torch.Tensor, batch: int) -> dict[str, np.ndarray]:
    """Per-frame means with :func:`mbvc.metrics.pixel_metrics`, one call per batch."""
    sums: dict[str, torch.Tensor] = {}
    for start in range(0, pred.shape[0], batch):
        values = pixel_metrics(pred[start:start + batch], target[start:start + batch])
        for k in ("mse", "psnr", "ssim"):
            s = values[k].sum(dim=0)
            sums[k] = sums[k] + s if k in sums else s
    return {k: (v / pred.shape[0]).cpu().numpy() for k, v in sums.items()}


def best_time(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> tuple[float, Any]:
    """Minimum wall time over ``repeats`` runs (the least disturbed by other processes)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best, out


def machine(device: torch.device) -> dict[str, Any]:
    """A description of where the benchmark ran."""
    import skimage

    return {**machine_info(device), "numpy": np.__version__, "scikit-image": skimage.__version__}


def case_frames(name: str, sequences: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded ``(pred, target)`` stacks ``(N, T, C, H, W)`` of case ``name`` (CPU, float32).

    The predictions are the targets plus noise, so some values leave [0, 1] (clipping is exercised).
    """
    horizon, channels, size = CASES[name]
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(sequences, horizon, channels, size, size, generator=g)
    pred = target + 0.1 * torch.randn(target.shape, generator=g)
    return pred, target


def run_case(name: str, sequences: int, batch: int, repeats: int, device: torch.device, seed: int) -> dict[str, Any]:
    """Time both implementations on one case and check that they agree."""
    horizon, channels, size = CASES[name]
    pred, target = case_frames(name, sequences, seed)
    np_pred = pred.permute(0, 1, 3, 4, 2).numpy().copy()
    np_target = target.permute(0, 1, 3, 4, 2).numpy().copy()
    dev_pred, dev_target = pred.to(device), target.to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    mbvc_batched(dev_pred[:batch], dev_target[:batch], batch)  # warm-up (allocator, kernels)
    t_ref, ref = best_time(lambda: reference_loop(np_pred, np_target, batch), repeats, lambda: None)
    t_mbvc, ours = best_time(lambda: mbvc_batched(dev_pred, dev_target, batch), repeats, sync)
    np.testing.assert_allclose(ours["ssim"], ref["ssim"], atol=1e-4)
    np.testing.assert_allclose(ours["psnr"], ref["psnr"], atol=1e-4)
    np.testing.assert_allclose(ours["mse"], ref["mse"], rtol=1e-6)
    frames = sequences * horizon
    return {
        "case": name, "frames": frames, "frame_shape": [channels, size, size], "batch": batch,
        "reference_s": t_ref, "mbvc_s": t_mbvc, "reference_fps": frames / t_ref, "mbvc_fps": frames / t_mbvc,
        "speedup": t_ref / t_mbvc, "max_abs_diff": {k: float(np.abs(ours[k] - ref[k]).max()) for k in ref},
    }


def write_results(entries: dict[str, Any], out_dir: Path) -> None:
    """Write the JSON and a Markdown table from every entry."""
    write_json(out_dir / "eval_throughput.json", entries)
    lines = ["# Evaluation throughput: batched metrics vs the reference's per-image loop", "",
             "MSE + PSNR + SSIM per frame, identical frames on both sides, results checked to agree "
             "(SSIM/PSNR 1e-4). Frames per second; time is the best of the repeats.", "",
             "| machine / device | case | frames (C,H,W) | batch | reference fps | mbvc fps | speedup |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for entry in entries.values():
        m = entry["machine"]
        where = m.get("gpu", m["cpu"]) + f" ({m['device']}, {m['torch_threads']} torch threads"
        if m.get("load_average") is not None:
            where += f", load {m['load_average'][0]:.1f} on {m['cpu_count']} CPUs"
        where += ")"
        for r in entry["results"]:
            shape = "x".join(map(str, r["frame_shape"]))
            lines.append(f"| {where} | {r['case']} | {r['frames']} ({shape}) | {r['batch']} | "
                         f"{r['reference_fps']:.0f} | {r['mbvc_fps']:.0f} | {r['speedup']:.1f}x |")
    lines += ["", "Command: `python benchmarks/eval_throughput.py [--device cuda] [--threads N]`.", "",
              "Notes: the target of issue 4 is >= 10x on the model's device. On a CPU both sides run "
              "the same kind of work (scikit-image's per-image C filters stay in cache; eager torch "
              "makes ~40 elementwise passes over each chunk), so CPU rows show rough parity at best. "
              "A load average above the CPU count means other jobs shared the machine; torch's "
              "multi-threaded ops suffer most there, since every op waits for its slowest thread.", ""]
    with atomic_write(out_dir / "eval_throughput.md", "w") as f:
        f.write("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device for mbvc's side (cpu, cuda)")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--sequences", type=int, default=64, help="sequences per case")
    parser.add_argument("--batch", type=int, default=16, help="sequences per batch (both sides)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    info = machine(device)
    results = []
    for name in args.cases:
        r = run_case(name, args.sequences, args.batch, args.repeats, device, args.seed)
        log.info("%-6s %5d frames: reference %.2fs (%.0f fps), mbvc %.3fs (%.0f fps), %.1fx",
                 name, r["frames"], r["reference_s"], r["reference_fps"], r["mbvc_s"], r["mbvc_fps"], r["speedup"])
        results.append(r)
    path = args.out_dir / "eval_throughput.json"
    entries = json.loads(path.read_text()) if path.is_file() else {}
    key = f"{info.get('gpu', info['cpu'])} | {info['device']} | {info['torch_threads']} threads"
    entries[key] = {"machine": info, "command": "python benchmarks/eval_throughput.py "
                    + " ".join(argv if argv is not None else sys.argv[1:]), "results": results}
    write_results(entries, args.out_dir)
    log.info("written %s and %s", path, path.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
