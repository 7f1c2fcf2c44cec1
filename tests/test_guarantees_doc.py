"""docs/guarantees.md names, for every promise, the test that holds it: each named test exists."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def named_tests(text: str) -> list[tuple[str, str]]:
    """``(file, test)`` for each `` `tests/x.py::test` `` in ``text``; a bare `` `::test` `` is in the last file named."""
    out, current = [], None
    for path, name in re.findall(r"`(tests/[\w/]+\.py)?::(\w+)`", text):
        current = path or current
        assert current, f"::{name} comes before any file is named"
        out.append((current, name))
    return out


def test_every_test_the_guarantees_name_exists():
    named = named_tests((ROOT / "docs" / "guarantees.md").read_text())
    assert len(named) > 30
    missing = []
    for path, name in named:
        source = ROOT / path
        defined = {n.name for n in ast.walk(ast.parse(source.read_text())) if isinstance(n, ast.FunctionDef)} \
            if source.is_file() else set()
        if name not in defined:
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/guarantees.md names tests that do not exist: {missing}"
