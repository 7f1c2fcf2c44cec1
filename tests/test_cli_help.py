"""A fast, quiet command line: help is answered without importing torch (or any heavy library)."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from mbvc.cli import COMMANDS, build_parser

HEAVY = ("torch", "numpy", "omegaconf", "gymnasium", "mujoco", "tensorflow", "tensorboard")

PROBE = """
import sys
from mbvc.cli import main
try:
    main({argv!r})
except SystemExit as e:
    assert e.code == 0, e.code
print([m for m in {heavy!r} if m in sys.modules])
"""


@pytest.mark.parametrize("argv", [["--help"]] + [[name, "--help"] for name in COMMANDS],
                         ids=lambda a: " ".join(a))
def test_help_imports_nothing_heavy(argv):
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    imported = out.strip().splitlines()[-1]
    assert imported == "[]", f"mbvc {' '.join(argv)} imported {imported}"
    assert "usage: mbvc" in out


def test_top_level_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "mbvc", "--help"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert all(name in out for name in COMMANDS)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_table_help_matches_the_command_module(name):
    assert COMMANDS[name] == importlib.import_module(f"mbvc.commands.{name}").HELP


def test_full_parser_knows_every_command_argument():
    args = build_parser().parse_args(["train", "mnist-predrnn-v2-small", "--set", "train.lr=1e-3"])
    assert args.command == "train" and args.overrides == ["train.lr=1e-3"] and callable(args._run)


def test_a_typo_in_set_fails_before_any_folder_is_made(tmp_path, capsys):
    from mbvc.cli import main

    run = tmp_path / "run"
    assert main(["train", "mnist-predrnn-v2-small", "--run-dir", str(run), "--set", "train.lrr=1e-3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.lrr" in err and "Did you mean 'lr'" in err
    assert not run.exists()
