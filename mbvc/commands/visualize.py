"""``mbvc visualize``: are PredRNN-V2's two memories decoupled? (the reference's ``visual`` option)."""
from __future__ import annotations

import argparse
from pathlib import Path

from mbvc.cli import positive_int, say

HELP = "plot the delta_c / delta_m memory increments of a PredRNN-V2 model (PCA or t-SNE)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="run folder, model file (.safetensors) or training checkpoint (.pt)")
    parser.add_argument("--preset", help="data settings from this preset (for files without a run config)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. data.test_size=64 (repeatable)")
    parser.add_argument("--split", help="dataset split (default: eval.test_split)")
    parser.add_argument("--sequences", type=positive_int, default=8, help="sequences run through the model (default 8)")
    parser.add_argument("--method", choices=("pca", "tsne"), default="pca", help="2-D embedding (tsne needs scikit-learn)")
    parser.add_argument("--features", choices=("topk", "flat"), default="topk", help="point features of an increment map")
    parser.add_argument("--best", action="store_true", help="run folders: the best model by validation")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (1 is often fastest on a busy machine)")
    parser.add_argument("-o", "--output", type=Path, help="PNG to write (default <run>/decoupling.png or <file>-decoupling.png)")


def run(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader

    from mbvc.data import build_dataset, to_float
    from mbvc.errors import ConfigError
    from mbvc.evaluation import decoupling_analysis, plot_decoupling
    from mbvc.io import check_output_file, write_json
    from mbvc.models import test_mask
    from mbvc.training.artifacts import load_trained, run_config_for
    from mbvc.training.setup import set_threads

    if args.output is not None:
        check_output_file(args.output, overwrite=True, option="-o")
    set_threads(args.threads)
    trained = load_trained(args.checkpoint, "best" if args.best else "final")
    mcfg = trained.model.config
    if not mcfg.is_v2:
        raise ConfigError(f"the decoupling visualisation needs a PredRNN-V2 model (predrnn_v2 or "
                          f"action_cond_predrnn_v2), {trained.source} holds {mcfg.name}")
    if args.sequences < 1:
        raise ConfigError(f"--sequences must be >= 1, got {args.sequences}")
    cfg = run_config_for(trained, args.preset, args.overrides)
    split = args.split or cfg.eval.test_split
    batch = next(iter(DataLoader(build_dataset(cfg.data_for(split), split), batch_size=args.sequences)))
    total = mcfg.total_length
    frames = to_float(batch["frames"][:, :total])
    actions = batch.get("actions")
    actions = actions[:, :total].float() if mcfg.is_action and actions is not None else None
    with torch.no_grad():
        out = trained.model(frames, test_mask(mcfg, frames.shape[0], total_length=frames.shape[1]), actions,
                            return_increments=True)
    result = decoupling_analysis(out.increments, method=args.method, features=args.features)
    if args.output is not None:
        path = args.output
    elif trained.run_dir is not None:
        path = trained.run_dir / "decoupling.png"
    else:
        path = trained.source.with_name(trained.source.stem + "-decoupling.png")
    plot_decoupling(result, path, title=f"{mcfg.name}: memory increments ({args.method.upper()})")
    write_json(path.with_suffix(".json"), {"checkpoint": str(trained.source), "split": split,
                                           "sequences": int(frames.shape[0]), **result.to_dict()})
    say(f"silhouette {result.silhouette:.3f} (1 = separated), mean |cos| {result.mean_abs_cosine:.3f} "
          f"(0 = orthogonal)\nwrote {path} and {path.with_suffix('.json')}")
    return 0
