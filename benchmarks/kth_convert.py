"""KTH conversion speed: decode + resize + write, frames per second, old loop against the new one.

Synthetic KTH-like videos (160x120 grey, lossless ffv1 ``.avi`` in KTH naming, textured so the
codec has work) are converted to 128x128, as ``kth_dataset`` does. Measured side by side in one
run, in the same process (figures on a shared machine are only meaningful as ratios):

* ``per_frame_matmul``: the previous code: one dense bilinear matrix product per frame, with
  NumPy's default BLAS threads (multi-threaded BLAS on a busy machine spin-waits);
* ``per_frame_matmul_1_blas``: the same, BLAS pinned to one thread (threadpoolctl);
* ``batched_1_process``: ``convert_kth(workers=1)``, the two-tap batched float32 resize;
* ``batched_N_processes``: ``convert_kth(workers=N)`` (``--workers``, default 2), videos decoded
  and resized in N spawned processes (``convert_kth``'s default is half the usable CPUs).

The decode time alone (``decode_only``) is measured too, as the floor of a single process.

Usage::

    python benchmarks/kth_convert.py                 # writes benchmarks/results/kth_convert.{json,md}
    python benchmarks/kth_convert.py --videos 8 --frames 60 --out runs/kth
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine_info  # noqa: E402
from mbvc.data.kth import _parse, convert_kth, find_videos  # noqa: E402
from mbvc.data.kth_decode import _runs, _taps, default_workers, read_video  # noqa: E402
from mbvc.data.store import SequenceWriter  # noqa: E402
from mbvc.io import atomic_write, write_json  # noqa: E402

ACTIONS = ("boxing", "handclapping", "handwaving", "walking", "jogging", "running")


def make_videos(root: Path, videos: int, frames: int, seed: int = 0) -> int:
    """Write ``videos`` KTH-named ``.avi`` files (persons 01-16: the train split); return the frame count."""
    import imageio.v2 as imageio

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (120, 160), dtype=np.uint8)
    for v in range(videos):
        action = ACTIONS[v % len(ACTIONS)]
        (root / action).mkdir(parents=True, exist_ok=True)
        path = root / action / f"person{v % 16 + 1:02d}_{action}_d{v // 16 + 1}_uncomp.avi"
        writer = imageio.get_writer(path, format="FFMPEG", fps=25, codec="ffv1", macro_block_size=1,
                                    pixelformat="bgr0")
        for k in range(frames):
            grey = np.roll(base, (k, 2 * k), axis=(0, 1))
            writer.append_data(np.repeat(grey[..., None], 3, axis=2))
        writer.close()
    return videos * frames


def _dense_weights(n_in: int, n_out: int) -> np.ndarray:
    """The previous implementation's dense interpolation matrix (pixel-centre bilinear), from the same taps."""
    lo, hi, frac = _taps(n_in, n_out)
    w = np.zeros((n_out, n_in))
    np.add.at(w, (np.arange(n_out), lo), 1 - frac)
    np.add.at(w, (np.arange(n_out), hi), frac)
    return w


def convert_per_frame(root: Path, cache: Path, size: int) -> None:
    """The previous ``convert_kth`` loop: decode, then one matrix-product resize per frame."""
    videos = [(n, p) for n, p in find_videos(root) if _parse(n)[0] <= 16]
    with SequenceWriter(cache, {"bench": "per_frame"}, shard_size=1 << 30) as writer:
        for vname, path in videos:
            for first, frames in _runs(list(read_video(vname, path)), vname):
                small = np.stack([np.clip(np.rint(_dense_weights(f.shape[0], size) @ f.astype(np.float64)
                                                  @ _dense_weights(f.shape[1], size).T), 0, 255)
                                  for f in frames]).astype(np.uint8)
                writer.add({"frames": small}, {"video": vname, "first_frame": first})


def decode_only(root: Path) -> None:
    for vname, path in find_videos(root):
        for _ in read_video(vname, path):
            pass


def _timed(fn, *args, **kwargs) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=16, help="videos (default 16)")
    parser.add_argument("--frames", type=int, default=150, help="frames per video (default 150)")
    parser.add_argument("--size", type=int, default=128, help="output side (default 128)")
    parser.add_argument("--workers", type=int, default=2, help="processes of the last method (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of all methods, best kept (default 2)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "kth_convert",
                        help="results path without suffix (default benchmarks/results/kth_convert)")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "kth"
        total = make_videos(root, args.videos, args.frames)
        times: dict[str, list[float]] = {}
        many = f"batched_{args.workers}_processes"
        for r in range(args.repeats):  # methods interleaved, so load changes hit all of them
            run = Path(tmp) / f"r{r}"
            times.setdefault("decode_only", []).append(_timed(decode_only, root))
            times.setdefault("per_frame_matmul", []).append(_timed(convert_per_frame, root, run / "a", args.size))
            with threadpool_limits(limits=1, user_api="blas"):
                times.setdefault("per_frame_matmul_1_blas", []).append(
                    _timed(convert_per_frame, root, run / "b", args.size))
            times.setdefault("batched_1_process", []).append(
                _timed(convert_kth, root, run / "c", "train", args.size, workers=1))
            times.setdefault(many, []).append(
                _timed(convert_kth, root, run / "d", "train", args.size, workers=args.workers))
    best = {k: min(v) for k, v in times.items()}
    fps = {k: total / v for k, v in best.items()}
    base = fps["per_frame_matmul"]
    result = {
        "videos": args.videos, "frames_per_video": args.frames, "frames": total, "size": args.size,
        "workers": args.workers, "default_workers": default_workers(), "seconds_best": best, "seconds_all": times,
        "frames_per_s": fps,
        "speedup_vs_per_frame_matmul": {k: v / base for k, v in fps.items()},
        "machine": machine_info(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out.with_suffix(".json"), result)
    m = result["machine"]
    lines = [
        "# KTH conversion speed (decode + resize to "
        f"{args.size}x{args.size} + write)", "",
        f"{args.videos} synthetic 160x120 ffv1 videos x {args.frames} frames = {total} frames; best of "
        f"{args.repeats} interleaved rounds. CPU: {m['cpu']}, {m['cpus_usable']} usable cores, load average "
        f"{', '.join(f'{x:.1f}' for x in m['load_average'] or [])}. Command: `python benchmarks/kth_convert.py"
        f" --videos {args.videos} --frames {args.frames} --workers {args.workers}`; `convert_kth`'s default "
        f"here: {default_workers()} process(es).", "",
        "| method | frames/s | x per-frame matmul |", "|---|---:|---:|",
    ]
    for k in ("per_frame_matmul", "per_frame_matmul_1_blas", "batched_1_process", many, "decode_only"):
        lines.append(f"| {k} | {fps[k]:.0f} | {fps[k] / base:.1f} |")
    with atomic_write(args.out.with_suffix(".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
