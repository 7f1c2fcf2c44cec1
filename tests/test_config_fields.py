"""Every configuration field is read by some code: an option that nothing uses cannot hide in a preset.

For each preset (``mbvc/configs/*.yaml``) and each of its sections, the section's dataclass is found:
``model`` through the family registry by ``model.name``, ``data`` by ``data.name`` (the common
fields and the dataset's own), ``train`` and ``eval``, their nested dataclasses such as
``train.curriculum``, and the application sections a preset carries (``collect``, ``cost`` by its
registered name, ``plan``, ``demo``); so are every registered model family's and dataset's
config classes, used by a preset or not. Each field must be read
somewhere in the non-test code of ``mbvc/``, ``agents/`` or ``envs/``: an attribute access
``<anything>.<field>``, ``getattr(<anything>, "<field>")`` or a subscript ``<anything>["<field>"]``.
Reads inside the config classes' own validation and (de)serialisation methods (``__post_init__``,
``from_dict``, ``to_dict``, ``replace``) do not count: a field only checked and written back is
unused. The match is by name, so a field whose name another object also uses is taken as read;
a new, unused option with a name of its own fails.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
from pathlib import Path
from typing import Any

import pytest

from mbvc.config import APP_SECTIONS, SECTIONS, load_preset, preset_names

ROOT = Path(__file__).resolve().parents[1]
CODE = ("mbvc", "agents", "envs")
#: Methods of config classes that validate or convert a config without using it.
NOT_A_READ = {"__post_init__", "from_dict", "to_dict", "replace"}
#: Application sections: where their dataclass lives (a module attribute; ``cost`` is looked up by name).
APP_CLASSES = {"collect": "envs.collect:CollectConfig", "plan": "agents.planners.config:PlannerConfig",
               "demo": "agents.demo_config:DemoConfig"}


@functools.cache
def reads() -> frozenset[str]:
    """Every name the code reads as an attribute, through ``getattr`` or as a string subscript."""
    found: set[str] = set()
    for package in CODE:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            skip = {id(node) for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef)
                    for fn in cls.body if isinstance(fn, ast.FunctionDef) and fn.name in NOT_A_READ
                    for node in ast.walk(fn)}
            for node in ast.walk(tree):
                if id(node) in skip:
                    continue
                if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                    found.add(node.attr)
                elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                      and node.func.id in ("getattr", "hasattr") and len(node.args) >= 2
                      and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
                    found.add(node.args[1].value)
                elif (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
                      and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
                    found.add(node.slice.value)
    return frozenset(found)


def _import(spec: str) -> Any:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def section_classes(section: str, values: dict[str, Any]) -> list[type]:
    """The dataclass of a preset's section, for ``values`` (the section's mapping)."""
    if section == "model":
        from mbvc.models import model_family

        return [model_family(str(values.get("name", "predrnn_v2"))).config_cls]
    if section == "data":
        from mbvc.data.config import dataset_config

        return [dataset_config(values.get("name", "moving_mnist"))]
    if section == "train":
        from mbvc.training.config import TrainConfig

        return [TrainConfig]
    if section == "eval":
        from mbvc.evaluation import EvalConfig

        return [EvalConfig]
    if section == "cost":
        from agents.costs.registry import cost_config

        return [type(cost_config(values))]
    return [_import(APP_CLASSES[section])]


def fields_of(cls: type, prefix: str) -> list[tuple[str, str]]:
    """``(dotted key, field name)`` of every field of ``cls`` and of its nested dataclasses."""
    out = []
    for f in dataclasses.fields(cls):
        out.append((f"{prefix}.{f.name}", f.name))
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            out += fields_of(type(default), f"{prefix}.{f.name}")
    return out


def preset_fields(name: str) -> list[tuple[str, str]]:
    data = load_preset(name)
    keys = []
    for section in (*SECTIONS, *APP_SECTIONS):
        if section in data or section in SECTIONS:
            for cls in section_classes(section, data.get(section) or {}):
                keys += fields_of(cls, section)
    return keys


@pytest.mark.parametrize("preset", preset_names())
def test_every_field_of_every_preset_section_is_read_by_some_code(preset):
    unread = sorted(key for key, field in preset_fields(preset) if field not in reads())
    assert not unread, f"{preset}: config fields that no code in {', '.join(CODE)} reads: {unread}"


def test_every_field_of_every_registered_model_and_dataset_config_is_read():
    """Families and datasets that no preset uses (ConvLSTM's, ``arrays``, ``folder``...) too."""
    from mbvc.data.config import DATASETS
    from mbvc.models import model_families, model_family

    classes = {model_family(name).config_cls for name in model_families()} | set(DATASETS.values())
    unread = sorted(f"{cls.__name__}.{field}" for cls in classes for _, field in fields_of(cls, "")
                    if field not in reads())
    assert not unread, f"config fields that no code in {', '.join(CODE)} reads: {unread}"


def test_the_check_finds_an_unread_field(tmp_path, monkeypatch):
    """A field added to a section but never read is reported; one read by an attribute access is not."""
    from mbvc.training.config import TrainConfig

    @dataclasses.dataclass(frozen=True)
    class Extended(TrainConfig):
        never_read_anywhere_weight: float = 0.0

    keys = dict(fields_of(Extended, "train"))
    assert keys["train.never_read_anywhere_weight"] not in reads()
    assert keys["train.iterations"] in reads() and keys["train.curriculum.r_sampling_step_1"] in reads()
    code = tmp_path / "mbvc"
    code.mkdir()
    (code / "uses.py").write_text("class C:\n    def __post_init__(self):\n        self.only_validated\n"
                                  "def f(cfg):\n    return cfg.read_here + getattr(cfg, 'read_by_getattr')\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "CODE", ("mbvc",))
    reads.cache_clear()
    try:
        assert {"read_here", "read_by_getattr"} <= reads() and "only_validated" not in reads()
    finally:
        reads.cache_clear()
