"""Training and inference throughput of mbvc's models against a reference-style implementation.

Both run side by side in one process, with the same weights, batch and configuration, their
iterations interleaved so that load from other processes hits both alike. The reference-style
baseline (benchmarks/reference_style.py) does what the reference release does per iteration:
numpy batch in (B, T, H, W, C), numpy patching, full-frame numpy masks, FloatTensor copies,
separate gate convolutions, per-step state lists, zero states made on the host.

Usage:
    python benchmarks/speed.py                       # CPU: small model + mnist/bair presets
    python benchmarks/speed.py --presets mnist-predrnn-v2-small --iters 5
    python benchmarks/speed.py --device cuda --bf16 --compile   # on a GPU machine

Writes benchmarks/results/speed_<device>.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine_info  # noqa: E402
from benchmarks.reference_style import RefRNN, RefTrainer, np_rss_mask, np_ss_mask  # noqa: E402
from mbvc.config import model_config_from_preset  # noqa: E402
from mbvc.io import write_json  # noqa: E402
from mbvc.models import CurriculumConfig, build_model, curriculum_mask, export_reference_state_dict  # noqa: E402
from mbvc.models.curriculum import test_mask  # noqa: E402

BATCH = {"mnist": 8, "kth": 4, "bair": 16}


def machine() -> str:
    """One line: CPU (or GPU), cores, torch threads, torch version."""
    m = machine_info()
    desc = f"{m['cpu']}, {m['cpu_count']} cores, {m['torch_threads']} torch threads, torch {m['torch']}"
    if torch.cuda.is_available():
        desc += f", {torch.cuda.get_device_name()}"
    return desc


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def build_pair(cfg: Any, device: str) -> tuple[torch.nn.Module, RefTrainer]:
    """mbvc's model for ``cfg`` (seed 0) and a reference-style trainer holding the same weights."""
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    ref = RefRNN(cfg.name, cfg.num_hidden, cfg.patch_size, cfg.img_channel, cfg.img_width, cfg.filter_size,
                 cfg.layer_norm, cfg.input_length, cfg.total_length, cfg.reverse_scheduled_sampling,
                 cfg.decouple_beta, cfg.conv_on_input, cfg.res_on_conv, cfg.num_action_ch, device=device).to(device)
    ref.load_state_dict(export_reference_state_dict(model))
    return model, RefTrainer(ref, 1e-4, cfg.patch_size, device)


def make_batch(cfg: Any, batch: int, device: str) -> tuple[np.ndarray, np.ndarray | None, torch.Tensor, torch.Tensor | None]:
    """A seeded random batch: numpy ``(B, T, H, W, C)`` frames (and ``(B, T, A)`` actions) for the
    reference side, the same values as ``(B, T, C, H, W)`` tensors on ``device`` for mbvc."""
    rng = np.random.RandomState(0)
    frames_np = rng.rand(batch, cfg.total_length, cfg.img_height, cfg.img_width, cfg.img_channel).astype(np.float32)
    actions_np = rng.randn(batch, cfg.total_length, cfg.num_action_ch).astype(np.float32) if cfg.is_action else None
    frames = torch.from_numpy(frames_np).permute(0, 1, 4, 2, 3).contiguous().to(device)
    actions = None if actions_np is None else torch.from_numpy(actions_np).to(device)
    return frames_np, actions_np, frames, actions


def mbvc_train_fn(step_fn: Callable[..., Any], opt: torch.optim.Optimizer, cfg: Any, frames: torch.Tensor,
                  actions: torch.Tensor | None, device: str, autocast: Any) -> Callable[[int], None]:
    """One mbvc training iteration ``f(itr)``: curriculum mask, forward under ``autocast``, backward, Adam."""
    cur, gen, b = CurriculumConfig(), torch.Generator().manual_seed(0), frames.shape[0]

    def train(itr: int) -> None:
        mask = curriculum_mask(cfg, cur, itr, b, generator=gen, device=device)
        with autocast:
            out = step_fn(frames, mask, actions)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    return train


def ref_train_fn(ref_trainer: RefTrainer, cfg: Any, frames_np: np.ndarray,
                 actions_np: np.ndarray | None) -> Callable[[int], None]:
    """One reference-style training iteration ``f(itr)``: numpy mask, patching, copies, step."""
    rng, b, k, t = np.random.RandomState(0), frames_np.shape[0], cfg.input_length, cfg.total_length

    def train(itr: int) -> None:
        if cfg.reverse_input_rule:
            mask = np_rss_mask(itr, b, k, t, rng=rng)
        else:
            mask = np_ss_mask(itr, b, k, t, rng=rng)
        ref_trainer.train_step(frames_np, mask, actions_np)

    return train


def bench_preset(preset: str, iters: int, device: str, bf16: bool, compile_: bool, channels_last: bool,
                 batch: int | None) -> dict:
    cfg = model_config_from_preset(preset)
    b = batch or BATCH[preset.split("-")[0]]
    model, ref_trainer = build_pair(cfg, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    step_fn = model
    if compile_:
        step_fn = torch.compile(model)

    T, K = cfg.total_length, cfg.input_length
    frames_np, actions_np, frames, actions = make_batch(cfg, b, device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and device.startswith("cuda"))
    mbvc_train = mbvc_train_fn(step_fn, opt, cfg, frames, actions, device, autocast)
    ref_train = ref_train_fn(ref_trainer, cfg, frames_np, actions_np)

    tmask = test_mask(cfg, b, device=device)

    def mbvc_infer(_: int) -> None:
        model.eval()
        with torch.no_grad(), autocast:
            model.predict(frames[:, :K], T - K, actions)
        model.train()

    ref_tmask = np.zeros((b, cfg.mask_steps()), dtype=bool)
    if cfg.reverse_input_rule:
        ref_tmask[:, : K - 1] = True

    def ref_infer(_: int) -> None:
        ref_trainer.test_step(frames_np, ref_tmask, actions_np)

    del tmask
    results = {}
    for kind, fa, fb in (("train", ref_train, mbvc_train), ("infer", ref_infer, mbvc_infer)):
        fa(1), fb(1)  # warm-up (and compilation)
        ta, tb = [], []
        for i in range(iters):
            for f, acc in ((fa, ta), (fb, tb)) if i % 2 == 0 else ((fb, tb), (fa, ta)):
                _sync(device)
                t0 = time.perf_counter()
                f(i + 2)
                _sync(device)
                acc.append(time.perf_counter() - t0)
        # The minimum is the least disturbed by other processes; the medians are kept too.
        ref_s, mbvc_s = min(ta), min(tb)
        unit = "it/s" if kind == "train" else "seq/s"
        scale = 1.0 if kind == "train" else float(b)
        results[kind] = {
            "reference_s": ref_s, "mbvc_s": mbvc_s,
            "reference_median_s": statistics.median(ta), "mbvc_median_s": statistics.median(tb),
            f"reference_{unit}": scale / ref_s, f"mbvc_{unit}": scale / mbvc_s, "ratio": ref_s / mbvc_s,
        }
    params = sum(p.numel() for p in model.parameters())
    return {"preset": preset, "model": cfg.name, "hidden": list(cfg.num_hidden), "batch": b, "params": params,
            "frames": f"{T}x{cfg.img_channel}x{cfg.img_height}x{cfg.img_width}", **results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="mnist-predrnn-v2-small,bair-predrnn-v2-small,mnist-predrnn-v2,bair-predrnn")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--batch", type=int, default=None, help="override the presets' batch size")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for mbvc (CUDA)")
    ap.add_argument("--compile", action="store_true", help="torch.compile mbvc's model")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    rows = []
    for preset in args.presets.split(","):
        row = bench_preset(preset, args.iters, args.device, args.bf16, args.compile, args.channels_last, args.batch)
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = args.out or Path(__file__).parent / "results" / f"speed_{args.device.split(':')[0]}.json"
    report = {"machine": machine(), "device": args.device, "date": time.strftime("%Y-%m-%d %H:%M"),
              "load_average_at_end": os.getloadavg(),
              "options": {"bf16": args.bf16, "compile": args.compile, "channels_last": args.channels_last,
                          "iters": args.iters},
              "command": "python " + " ".join(sys.argv), "results": rows}
    write_json(out, report)
    lines = [f"# Speed: mbvc vs reference-style implementation ({args.device})", "",
             f"Machine: {report['machine']}. Date: {report['date']}. Command: `{report['command']}`. "
             f"Load average at the end: {', '.join(f'{x:.2f}' for x in report['load_average_at_end'])} "
             "(other jobs slow both sides alike: iterations are interleaved and the minimum is kept).", "",
             "| preset | batch | train ref it/s | train mbvc it/s | ratio | infer ref seq/s | infer mbvc seq/s | ratio |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        t, i = r["train"], r["infer"]
        lines.append(f"| {r['preset']} | {r['batch']} | {t['reference_it/s']:.3f} | {t['mbvc_it/s']:.3f} | "
                     f"{t['ratio']:.2f}x | {i['reference_seq/s']:.2f} | {i['mbvc_seq/s']:.2f} | {i['ratio']:.2f}x |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
