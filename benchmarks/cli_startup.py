"""Command-line start-up: wall time of ``mbvc --help``, ``mbvc COMMAND --help`` and a 2-iteration
``mbvc train`` with TensorBoard logging on, for this checkout and optionally another one.

Each command runs in a fresh ``python -m mbvc`` process (``PYTHONPATH`` set to the checkout),
``--repeats`` times; the median is reported. Comparing two checkouts in one run gives a ratio
that means something on a shared machine; the absolute seconds depend on its load.

    python benchmarks/cli_startup.py --compare /path/to/other/checkout --repeats 3

Writes ``benchmarks/results/cli_startup.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info  # noqa: E402

COMMANDS = ("train", "test", "evaluate", "predict", "convert", "collect", "demo", "visualize")
#: A tiny Moving MNIST run (as in tests/training/conftest.py), TensorBoard on.
TRAIN = [
    "train", "mnist-predrnn-v2-small", "--threads", "1", "--no-progress",
    *[x for kv in ("model.num_hidden=[4,4]", "model.img_width=32", "model.filter_size=3", "model.input_length=3",
                   "model.total_length=6", "data.image_size=32", "data.train_size=8", "data.val_size=4",
                   "train.batch_size=4", "train.iterations=2", "train.eval_interval=0", "train.tensorboard=true",
                   "eval.horizon=3", "eval.batch_size=4", "eval.lpips=false", "eval.val_batches=1")
      for x in ("--set", kv)],
]


def timed(tree: Path, args: list[str], repeats: int) -> float:
    """Median wall seconds of ``python -m mbvc ARGS`` with ``tree`` first on the path."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            extra = ["--run-dir", str(Path(tmp) / "run")] if args[:1] == ["train"] and "--help" not in args else []
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "mbvc", *args, *extra], env=env, cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--compare", type=Path, help="another checkout to time side by side (e.g. before a change)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cli_startup")
    args = p.parse_args()
    trees = {"this": ROOT} | ({"compare": args.compare.resolve()} if args.compare else {})
    cases = {"mbvc --help": ["--help"]} | {f"mbvc {c} --help": [c, "--help"] for c in COMMANDS}
    cases["mbvc train (2 iterations, TensorBoard on)"] = TRAIN
    rows = {name: {label: timed(tree, argv, args.repeats) for label, tree in trees.items()}
            for name, argv in cases.items()}
    result = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "repeats": args.repeats,
              "trees": {k: str(v) for k, v in trees.items()}, "seconds": rows, "machine": machine_info()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    head = "| command | " + " | ".join(f"{k} (s)" for k in trees) + (" | ratio |" if len(trees) > 1 else " |")
    lines = [f"# CLI start-up ({result['machine']['cpu']}, median of {args.repeats})", "",
             f"`{result['command']}`; trees: " + ", ".join(f"{k} = `{v}`" for k, v in trees.items()), "",
             head, "|---" * (len(trees) + 1 + (len(trees) > 1)) + "|"]
    for name, t in rows.items():
        ratio = f" | {t['compare'] / t['this']:.0f}x |" if "compare" in t else " |"
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in t.values()) + ratio)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
