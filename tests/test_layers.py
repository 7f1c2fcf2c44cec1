"""The layers stay clean: the core never imports the application code, and no package imports tests.

Imports are read with ``ast`` from every file (module level and inside functions), so a lazy
import counts as much as a top-level one. See docs/architecture.md for the layers.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mbvc", "envs", "agents", "benchmarks")
#: The library core: world models, data, metrics, training and evaluation.
CORE = ("mbvc.models", "mbvc.data", "mbvc.metrics", "mbvc.training", "mbvc.evaluation")
#: What the core must never import: the application layer (environments, agents, benchmarks,
#: the command line and the demo) and the tests.
NOT_FROM_CORE = ("envs", "agents", "benchmarks", "tests", "mbvc.cli", "mbvc.commands", "mbvc.demo")
#: The command line sits on top: the packages below it and the benchmarks call library functions, as a user does.
COMMAND_LINE = ("mbvc.cli", "mbvc.commands")
BELOW_COMMAND_LINE = ("envs", "agents", "benchmarks")
#: Longest source file (lines) in the packages: a longer one holds more than one thing.
MAX_LINES = 500
#: Inside the core, lower layers never import higher ones.
CORE_ORDER = {
    "mbvc.models": ("mbvc.data", "mbvc.metrics", "mbvc.training", "mbvc.evaluation"),
    "mbvc.data": ("mbvc.models", "mbvc.metrics", "mbvc.training", "mbvc.evaluation"),
    "mbvc.metrics": ("mbvc.models", "mbvc.data", "mbvc.training", "mbvc.evaluation"),
    "mbvc.evaluation": ("mbvc.training",),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, module_level: bool = False) -> set[str]:
    """Every module ``path`` imports, relative imports resolved to absolute names.

    Args:
        module_level: only what importing ``path`` imports at once (top-level statements,
            without ``TYPE_CHECKING`` blocks and function bodies).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    nodes = list(ast.walk(tree))
    if module_level:
        nodes = []
        for node in tree.body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            nodes += node.body if isinstance(node, (ast.If, ast.Try)) else [node]
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def within(name: str, prefixes: tuple[str, ...]) -> str | None:
    return next((p for p in prefixes if name == p or name.startswith(p + ".")), None)


def files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def violations() -> list[str]:
    bad = []
    for path in files():
        name = module_name(path)
        for target in sorted(imports(path)):
            core = within(name, CORE)
            if within(target, ("tests",)):
                bad.append(f"{name} imports {target}: packages never import tests")
            elif core and within(target, NOT_FROM_CORE):
                bad.append(f"{name} (core) imports {target}: the core never imports application code")
            elif core in CORE_ORDER and within(target, CORE_ORDER[core]):
                bad.append(f"{name} imports {target}: {core} sits below {within(target, CORE_ORDER[core])}")
            elif within(name, BELOW_COMMAND_LINE) and within(target, COMMAND_LINE):
                bad.append(f"{name} imports {target}: only the command line imports the command line; "
                           "call the library function it calls")
    return bad


def test_the_core_imports_no_application_code_and_no_package_imports_tests():
    assert files(), "no source files found"
    bad = violations()
    assert not bad, "import-layer violations:\n" + "\n".join(bad)


@pytest.mark.parametrize("path, source, expected", [
    ("mbvc/training/fake.py", "import envs\n", "mbvc.training.fake (core) imports envs"),
    ("mbvc/models/fake.py", "from agents.mpc import MPCAgent\n", "mbvc.models.fake (core) imports agents.mpc"),
    ("mbvc/data/fake.py", "def f():\n    from benchmarks import machine\n", "mbvc.data.fake (core) imports benchmarks"),
    ("mbvc/training/fake.py", "from ..commands import train\n", "mbvc.training.fake (core) imports mbvc.commands"),
    ("agents/fake.py", "from tests.agents.conftest import LineEnv\n", "agents.fake imports tests.agents.conftest"),
    ("mbvc/models/fake.py", "from mbvc.training import Trainer\n", "mbvc.models sits below mbvc.training"),
    ("benchmarks/fake.py", "from mbvc.commands.plan import parse_seeds\n", "benchmarks.fake imports mbvc.commands.plan"),
    ("agents/fake.py", "def f():\n    from mbvc.cli import say\n", "agents.fake imports mbvc.cli"),
])
def test_the_checker_sees_direct_lazy_and_relative_imports(tmp_path, monkeypatch, path, source, expected):
    fake = tmp_path / path
    fake.parent.mkdir(parents=True)
    fake.write_text(source)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert any(expected in line for line in violations()), violations()


def test_no_import_cycle_between_mbvc_packages_at_import_time():
    """``mbvc.config`` composes the section configs of models, data and training; nothing in those
    packages imports it (or anything above it) when imported."""
    def group(name: str) -> str:
        return ".".join(name.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / "mbvc").rglob("*.py")):
        src = group(module_name(path))
        for target in imports(path, module_level=True):
            if target.startswith("mbvc.") and group(target) != src:
                graph.setdefault(src, set()).add(group(target))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    cycles = sorted(a for a in graph if reaches(a, a, set()))
    assert not cycles, f"import cycles through {cycles}: {graph}"


def test_no_source_file_is_over_the_line_limit():
    long = [f"{path.relative_to(ROOT)}: {n} lines" for path in files()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not long, f"files over {MAX_LINES} lines (split them by what they hold):\n" + "\n".join(long)
