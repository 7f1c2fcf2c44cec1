"""The ``mbvc`` console script: a thin dispatcher over :mod:`mbvc.commands`.

Each subcommand lives in ``mbvc/commands/<name>.py`` and defines ``HELP`` (one line, the same
as its entry in :data:`COMMANDS`), ``add_arguments(parser)`` and ``run(args) -> int``. Only the
module of the command being run is imported, and command modules import torch and the rest
of mbvc inside ``run``, so ``mbvc --help`` and ``mbvc COMMAND --help`` answer at once. Errors
derived from :class:`mbvc.errors.MbvcError` are printed as one line on stderr with exit code 2.
Process-wide settings (logging here; threads and ``MUJOCO_GL`` in the commands that use them,
through ``--threads`` and ``envs.setup_gl()``) are made by the command line, not on import.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import typing
from collections.abc import Iterable, Sequence

from mbvc.errors import MbvcError

#: Command name -> its help line, in the order `mbvc --help` shows them (a table, so that the
#: top-level help imports no command module).
COMMANDS: dict[str, str] = {
    "train": "train a model from a preset (resumable; multi-GPU with torchrun)",
    "test": "evaluate a run, model file or checkpoint: per-frame MSE/MAE/PSNR/SSIM/LPIPS vs baselines",
    "evaluate": "evaluate a run, model file or checkpoint: per-frame MSE/MAE/PSNR/SSIM/LPIPS vs baselines",
    "predict": "predict N future frames from a context video / frame folder / .npy; writes npy + PNG + GIF",
    "convert": "convert a reference PredRNN checkpoint (model.ckpt-N) into an mbvc model file",
    "collect": "collect episodes of an environment with a policy into a rollout folder (resumable)",
    "plan": ("plan with a trained world model: MPC on seeded episodes of a gymnasium env next to random and "
             "oracle agents (table, results.json, GIF; resumable)"),
    "demo": ("the end-to-end demo: collect pushing rollouts, train an action-conditioned PredRNN-V2, "
             "run visual MPC on held-out goals next to random and oracle agents"),
    "visualize": "plot the delta_c / delta_m memory increments of a PredRNN-V2 model (PCA or t-SNE)",
    "data": "fetch Moving MNIST, KTH or BAIR once, verified and prepared (`data list`, `data get NAME`)",
}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit code 2), like mbvc's own."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """``argparse`` type: an integer >= 1 (``--threads``, ``-n``...); refuses 0, negatives and words.

    Example:
        >>> parser.add_argument("--threads", type=positive_int)
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def say(*parts: object) -> None:
    """Write a line of a command's result to stdout (subcommands report through this)."""
    print(*parts, flush=True)


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """Return the top-level argument parser.

    Args:
        commands: the subcommands whose arguments are added (their modules are imported);
            None adds all. The others are listed with their help line only.
    """
    parser = _Parser(prog="mbvc", description="PredRNN world models and visual MPC.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wanted = set(COMMANDS if commands is None else commands)
    for name, help_line in COMMANDS.items():
        p = sub.add_parser(name, help=help_line, description=help_line)
        if name in wanted:
            module = importlib.import_module(f"mbvc.commands.{name}")
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first argument that is not an option)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mbvc`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command(argv)
    parser = build_parser([] if command is None else [command])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args._run(args) or 0)
    except MbvcError as e:
        one_line = " ".join(part.strip() for part in str(e).splitlines())  # messages quoting other errors
        print(f"mbvc {args.command}: error: {one_line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mbvc {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`mbvc data list | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141
    except OSError as e:  # the file system refused: name the path, no traceback (-v logs it)
        logging.getLogger(__name__).debug("mbvc %s failed", args.command, exc_info=True)
        where = f"{e.filename}: " if e.filename else ""
        print(f"mbvc {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except MemoryError as e:
        logging.getLogger(__name__).debug("mbvc %s failed", args.command, exc_info=True)
        detail = f" ({e})" if str(e) else ""
        print(f"mbvc {args.command}: error: out of memory{detail}; a file or argument asks for more than "
              f"this machine has (arrays read into memory are bounded by MBVC_MAX_ARRAY_GIB)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
