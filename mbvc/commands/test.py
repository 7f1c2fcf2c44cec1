"""``mbvc test``: evaluate a trained model (per-frame metrics, baselines, JSON/Markdown/plot/GIF report)."""
from __future__ import annotations

import argparse
from pathlib import Path

from mbvc.cli import positive_int, say

HELP = "evaluate a run, model file or checkpoint: per-frame MSE/MAE/PSNR/SSIM/LPIPS vs baselines"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="run folder, model file (.safetensors) or training checkpoint (.pt)")
    parser.add_argument("--best", action="store_true", help="run folders: the best model by validation, not the final one")
    parser.add_argument("--preset", help="take data/eval settings from this preset (needed for files without a run config)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. eval.horizon=20 or data.test_size=500 (repeatable)")
    parser.add_argument("--data", type=Path, help="evaluate on your sequences: a folder of <video>/<frame>.png or .npy/.npz arrays")
    parser.add_argument("--split", help="dataset split (default: eval.test_split)")
    parser.add_argument("--horizon", type=positive_int, help="frames to predict (default: eval.horizon)")
    parser.add_argument("--max-batches", type=positive_int, help="stop after this many batches (quick look)")
    parser.add_argument("--no-lpips", action="store_true", help="skip LPIPS")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (1 is often fastest on a busy machine)")
    parser.add_argument("-o", "--output", type=Path, help="report folder (default <run>/eval-<split> or <file>-eval)")


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = list(args.overrides)
    if args.data is not None:
        name = "arrays" if args.data.suffix in (".npy", ".npz") else "folder"
        split = args.split or "test"
        extra += [f"data.name={name}", f"data.{split}_paths=[{str(args.data)!r}]", "data.eval_seq_len=0"]
    if args.horizon is not None:
        extra.append(f"eval.horizon={args.horizon}")
    if args.no_lpips:
        extra.append("eval.lpips=false")
    return extra


def run(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader

    from mbvc.data import build_dataset
    from mbvc.errors import DataError
    from mbvc.evaluation import evaluate, markdown_report, write_report
    from mbvc.io import check_output_folder
    from mbvc.training.artifacts import load_trained, run_config_for
    from mbvc.training.distributed import DistInfo
    from mbvc.training.setup import set_threads
    from mbvc.training.trainer import resolve_device

    check_output_folder(args.output)
    if args.data is not None and not args.data.exists():
        raise DataError(f"--data {args.data}: no such file or folder")
    set_threads(args.threads)
    trained = load_trained(args.checkpoint, "best" if args.best else "final")
    cfg = run_config_for(trained, args.preset, _overrides(args))
    split = args.split or cfg.eval.test_split
    device = resolve_device(args.device, DistInfo())
    dataset = build_dataset(cfg.data_for(split), split)
    loader = DataLoader(dataset, batch_size=cfg.eval.batch_size, shuffle=False,
                        num_workers=cfg.train.num_workers, pin_memory=device.type == "cuda")
    eval_cfg = cfg.eval if args.max_batches is None else cfg.eval.replace(max_batches=args.max_batches)
    result = evaluate(trained.model.to(device), loader, eval_cfg, device=device, progress=True)
    if args.output is not None:
        out = args.output
    elif trained.run_dir is not None:
        out = trained.run_dir / f"eval-{split}{'-best' if args.best else ''}"
    else:
        out = trained.source.with_name(trained.source.stem + "-eval")
    config = cfg.to_dict() | {"checkpoint": str(trained.source), "split": split}
    paths = write_report(result, out, config=config, strip_scale=2 if max(cfg.model.img_width, cfg.model.img_height) <= 64 else 1)
    say(markdown_report(result).split("\n## ")[0].rstrip())
    say(f"\nreport: {', '.join(str(p) for p in paths.values())}")
    return 0
