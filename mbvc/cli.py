"""The ``mbvc`` console script: a thin dispatcher over :mod:`mbvc.commands`.

Each subcommand lives in ``mbvc/commands/<name>.py`` and defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Errors derived from
:class:`mbvc.errors.MbvcError` are printed as one line on stderr with a non-zero exit code.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence

from mbvc.errors import MbvcError

# Order is the order shown by `mbvc --help`.
COMMANDS = ("train", "test", "evaluate", "predict", "convert", "collect", "plan", "demo", "visualize")


def say(*parts: object) -> None:
    """Write a line of a command's result to stdout (subcommands report through this)."""
    print(*parts, flush=True)


def _available() -> list[str]:
    return [c for c in COMMANDS if importlib.util.find_spec(f"mbvc.commands.{c}") is not None]


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(prog="mbvc", description="PredRNN world models and visual MPC.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _available():
        module = importlib.import_module(f"mbvc.commands.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mbvc`` console script."""
    parser = build_parser()
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


if __name__ == "__main__":
    sys.exit(main())
