"""``mbvc convert``: turn a reference checkpoint into an mbvc model file."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mbvc.cli import say
from mbvc.presets import preset_names

HELP = "convert a reference PredRNN checkpoint (model.ckpt-N) into an mbvc model file"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="reference checkpoint ({'net_param': state_dict})")
    parser.add_argument("--preset", required=True, help=f"architecture preset: {', '.join(preset_names())} or a YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a preset field, e.g. model.layer_norm=true (repeatable)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="mbvc model file to write (.safetensors)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file (never the input)")


def _check_readable_checkpoint(path: Path) -> None:
    """Refuse a missing or empty checkpoint file with a complete sentence, before torch reads it."""
    from mbvc.errors import CheckpointError

    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the reference checkpoint file (model.ckpt-N)")
    if path.is_file() and path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes); expected a reference checkpoint "
                              "model.ckpt-N written by the reference's torch.save({'net_param': ...})")


def run(args: argparse.Namespace) -> int:
    from mbvc.config import model_config_from_preset
    from mbvc.errors import CheckpointError
    from mbvc.io import check_output_file
    from mbvc.models import save_model
    from mbvc.models.reference import from_reference

    check_output_file(args.output, args.overwrite, inputs=[args.checkpoint])
    _check_readable_checkpoint(args.checkpoint)
    cfg = model_config_from_preset(args.preset, args.overrides)
    flags = dict(
        model_name=cfg.name, num_hidden=",".join(map(str, cfg.num_hidden)), filter_size=cfg.filter_size,
        stride=cfg.stride, patch_size=cfg.patch_size, img_channel=cfg.img_channel, img_width=cfg.img_width,
        layer_norm=int(cfg.layer_norm), input_length=cfg.input_length, total_length=cfg.total_length,
        reverse_scheduled_sampling=int(cfg.reverse_scheduled_sampling), decouple_beta=cfg.decouple_beta,
        conv_on_input=int(cfg.conv_on_input), res_on_conv=int(cfg.res_on_conv), num_action_ch=cfg.num_action_ch,
    )
    try:
        model = from_reference(args.checkpoint, **flags)
    except CheckpointError as e:
        if str(e).rstrip().endswith(":"):  # torch's error had no text (EOFError of a truncated file)
            raise CheckpointError(f"{str(e).rstrip()} the file ends early (truncated or not a torch "
                                  "checkpoint); expected a reference model.ckpt-N") from None
        raise
    out = save_model(model, args.output, metadata={"source": str(args.checkpoint), "preset": str(args.preset)})
    n = sum(p.numel() for p in model.parameters())
    say(f"wrote {out} ({cfg.name}, {n:,} parameters) from {args.checkpoint}")
    return 0
