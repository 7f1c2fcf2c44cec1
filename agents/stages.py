"""Resumable stages over one output folder: each is skipped when its record holds the same settings.

A stage writes ``OUT/<stage>.json`` (its settings and what it produced) when it finishes; the
next run skips it when the settings are the same, reruns it when they changed (or, for a
``strict`` stage whose outputs later stages depend on, refuses and names the changes).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mbvc.errors import ConfigError
from mbvc.io import write_json

log = logging.getLogger(__name__)


class StageRecord:
    """``OUT/<stage>.json``: the settings a stage ran with and what it produced."""

    def __init__(self, out: Path, stage: str) -> None:
        self.path, self.stage = out / f"{stage}.json", stage

    def load(self) -> dict[str, Any] | None:
        """The record, or ``None`` when the stage has not finished."""
        try:
            return json.loads(self.path.read_text()) if self.path.is_file() else None
        except ValueError:
            return None

    def write(self, settings: dict[str, Any], **content: Any) -> dict[str, Any]:
        """Write the record and return it."""
        record = {"stage": self.stage, "settings": settings, **content}
        write_json(self.path, record)
        return record


def prepare_out_dir(out: str | os.PathLike, marker: str, content: dict[str, Any], force: bool,
                    outputs: Sequence[str] = ()) -> Path:
    """Check and create the output folder and write its ``marker``; with ``force``, remove ``outputs`` there.

    Raises:
        ConfigError: ``out`` is a file, cannot be written, or is a non-empty folder without ``marker``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; a folder is needed")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise ConfigError(f"--out {out} is a non-empty folder that the demo did not make (no {marker}); "
                          "choose an empty or new folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / marker, {**content, "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    if force:
        for name in outputs:
            if (out / name).is_dir():
                shutil.rmtree(out / name)
            else:
                (out / name).unlink(missing_ok=True)
    return out


class Stages:
    """Runs named stages in ``out``, once each per object, timing them (:attr:`timings`, :attr:`skipped`).

    Args:
        out: the output folder (made by :func:`prepare_out_dir`).
        seed: seeds every stage's global random state before it runs.
        defaults: dotted setting -> the value it had before it existed (:func:`dataclass_defaults`): a
            record from an older mbvc that lacks such a setting still matches when it is at that
            value, so an upgrade resumes instead of redoing (or refusing) finished stages.
    """

    def __init__(self, out: Path, seed: int, defaults: dict[str, Any] | None = None) -> None:
        self.out, self.seed, self.defaults = out, seed, dict(defaults or {})
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []
        self._done: dict[str, dict[str, Any]] = {}

    def run(self, name: str, settings: dict[str, Any], fn: Callable[[], dict[str, Any]], strict: bool) -> dict[str, Any]:
        """The record of stage ``name``: found with the same ``settings``, or made by ``fn()``.

        Raises:
            ConfigError: a ``strict`` stage finished with other settings.
        """
        from mbvc.seeding import seed_everything

        if name in self._done:
            return self._done[name]
        record = StageRecord(self.out, name)
        done = record.load()
        changes = None if done is None else settings_diff(done.get("settings", {}), settings, self.defaults)
        if done is not None and not changes:
            log.info("[%s] already done (%s): skipped; --force redoes it", name, record.path)
            self.skipped.append(name)
            self.timings[name] = float(done.get("stage_seconds", 0.0))
        else:
            if changes and strict:
                raise ConfigError(f"{self.out} holds a finished {name} stage made with other settings "
                                  f"({'; '.join(changes[:3])}); pass --force to redo it or choose another --out")
            log.info("[%s] starting", name)
            seed_everything(self.seed)
            start = time.perf_counter()
            content = fn()
            self.timings[name] = time.perf_counter() - start
            log.info("[%s] done in %.1f s", name, self.timings[name])
            done = record.write(settings, stage_seconds=self.timings[name], **content)
        self._done[name] = done
        return done


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    flat: dict[str, Any] = {}
    for k, v in d.items():
        flat.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return flat


_ABSENT = object()


def dataclass_defaults(sections: dict[str, type]) -> dict[str, Any]:
    """Dotted key -> default of every field with one, for ``{"section": ItsDataclass}`` (nested dataclasses too).

    Values are as a JSON record holds them (lists, not tuples), to compare with :class:`StageRecord`.
    """
    flat: dict[str, Any] = {}
    for name, cls in sections.items():
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                value = f.default
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                continue
            if dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            flat.update(_flatten(json.loads(json.dumps(value, default=str)), f"{name}.{f.name}"))
    return flat


def retired_settings() -> dict[str, Any]:
    """Dotted key -> value of settings an older mbvc recorded and this one no longer has, at the value
    that behaves as today (a removed option when off; another dataset's fields at their defaults)."""
    from mbvc.data.config import DATASETS
    from mbvc.models.config import RETIRED as MODEL
    from mbvc.training.config import RETIRED as TRAIN

    retired = {f"model.{k}": v for k, (v, _) in MODEL.items()}
    retired.update({f"train.{k}": v for k, (v, _) in TRAIN.items()})
    retired.update({"cost.views": 1, "cost.carry_below": 0.0, "cost.carry_radius": 5.0, "plan.shift_elites": False,
                    "planner.shift_elites": False, "demo.train_minutes": None})  # removed in the cleanup (benchmarks/NOTES.md)
    for cls in DATASETS.values():  # the data section once held every dataset's fields
        for key, value in dataclass_defaults({"data": cls}).items():
            retired.setdefault(key, value)
    return retired


def settings_diff(before: dict[str, Any], now: dict[str, Any],
                  defaults: dict[str, Any] | None = None) -> list[str]:
    """The settings that differ, as ``"section.key: was X, now Y"`` (dotted paths into nested sections).

    A key the record lacks is said to be absent (a record written by an older mbvc, before the
    setting existed), so the message names the one setting rather than a whole section. With
    ``defaults`` (dotted key -> value, :func:`dataclass_defaults`), an absent key whose value now is
    its default is no difference: the older mbvc behaved as that default. Likewise a key the
    record has and this mbvc no longer does is no difference at its :func:`retired_settings` value.
    """
    a, b, defaults = _flatten(before), _flatten(now), defaults or {}
    retired = retired_settings() if set(a) - set(b) else {}
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key, _ABSENT), b.get(key, _ABSENT)
        if x is _ABSENT and key in defaults and y == defaults[key]:
            continue
        if y is _ABSENT and key in retired and x == retired[key]:
            continue
        if x != y:
            out.append(f"{key}: was {'absent' if x is _ABSENT else repr(x)}, now {'absent' if y is _ABSENT else repr(y)}")
    return out


__all__ = ["StageRecord", "Stages", "dataclass_defaults", "prepare_out_dir", "retired_settings", "settings_diff"]
