"""``mbvc predict``: predict future frames from your own context (video, frame folder or array)."""
from __future__ import annotations

import argparse
from pathlib import Path

from mbvc.cli import positive_int, say

#: ``-n`` above this needs ``--max-frames``: every predicted frame is a PNG, and far past the
#: model's trained horizon the predictions drift into noise.
MAX_FRAMES = 1000

HELP = "predict N future frames from a context video / frame folder / .npy; writes npy + PNG + GIF"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="run folder, model file (.safetensors) or training checkpoint (.pt)")
    parser.add_argument("--context", type=Path, required=True,
                        help="video file, folder of frame images, or .npy/.npz (T, H, W[, C]); its last K frames are used")
    parser.add_argument("--actions", type=Path,
                        help="action models: .npy/.npz/.csv/.txt (steps, A), K - 1 + N rows (actions at the context frames, then at the predicted ones)")
    parser.add_argument("-n", "--num-frames", type=positive_int, default=10,
                        help="frames to predict (default 10, at most --max-frames)")
    parser.add_argument("--max-frames", type=positive_int, default=MAX_FRAMES,
                        help=f"the largest -n accepted (default {MAX_FRAMES}; one PNG is written per frame)")
    parser.add_argument("-k", "--context-length", type=positive_int,
                        help="context frames K (default: the model's input_length)")
    parser.add_argument("--grey", action="store_true",
                        help="turn colour context frames grey (luma) for a one-channel model (refused otherwise)")
    parser.add_argument("--best", action="store_true", help="run folders: the best model by validation")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (1 is often fastest on a busy machine)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    from mbvc.data.arrays import check_in_memory_size
    from mbvc.errors import ConfigError
    from mbvc.io import check_output_folder
    from mbvc.training.artifacts import load_trained
    from mbvc.training.setup import set_threads
    from mbvc.training.distributed import DistInfo
    from mbvc.training.predict import read_actions, read_context, write_predictions
    from mbvc.training.trainer import resolve_device

    if args.num_frames < 1:
        raise ConfigError(f"-n must be >= 1, got {args.num_frames}")
    if args.num_frames > args.max_frames:
        raise ConfigError(f"-n {args.num_frames} is above the limit of {args.max_frames} predicted frames "
                          f"(one PNG each); pass --max-frames {args.num_frames} to allow it")
    if args.context_length is not None and args.context_length < 1:
        raise ConfigError(f"-k/--context-length must be >= 1, got {args.context_length}")
    check_output_folder(args.output)
    set_threads(args.threads)
    trained = load_trained(args.checkpoint, "best" if args.best else "final")
    cfg = trained.model.config
    k = cfg.input_length if args.context_length is None else args.context_length
    check_in_memory_size(args.num_frames * cfg.img_channel * cfg.img_height * cfg.img_width * 4 * 2,
                         f"-n {args.num_frames}", "prediction")
    context = read_context(args.context, cfg, k, grey=args.grey)
    actions = None
    if cfg.is_action:
        if args.actions is None:
            raise ConfigError(f"{cfg.name} is action-conditioned: pass --actions FILE with {k - 1 + args.num_frames} rows")
        actions = read_actions(args.actions, cfg, k - 1 + args.num_frames)
    elif args.actions is not None:
        raise ConfigError(f"{cfg.name} does not take actions; drop --actions")
    device = resolve_device(args.device, DistInfo())
    model = trained.model.to(device)
    pred = model.predict(context.to(device), args.num_frames,
                         actions=None if actions is None else actions.to(device))
    paths = write_predictions(args.output, context[0], pred[0])
    say(f"predicted {args.num_frames} frames from {k} context frames of {args.context} with {trained.source}")
    say("wrote " + ", ".join(str(p) for p in paths.values()) + f" and {args.num_frames} pred_*.png")
    return 0
