"""Presets: YAML files in ``mbvc/configs`` (or any path) with sections ``model``, ``data``,
``train`` and ``eval``, plus ``section.key=value`` overrides from the command line.

This module resolves and merges presets; each section is validated by its own frozen
dataclass (``ModelConfig``, ``DataConfig``, ``TrainConfig``, ``EvalConfig``), and an unknown
key or a value of the wrong type is rejected with the file and the key named.

Example:
    >>> cfg = load_run_config("mnist-predrnn-v2-small", ["train.lr=3e-4"])
    >>> cfg.train.lr, cfg.model.name, cfg.eval.horizon
    (0.0003, 'predrnn_v2', 10)
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from mbvc.errors import ConfigError, did_you_mean
from mbvc.data.config import DataConfig
from mbvc.evaluation.runner import EvalConfig
from mbvc.models.base import model_config_from_dict
from mbvc.models.config import ModelConfig
from mbvc.presets import PRESET_DIR, preset_names
from mbvc.training.config import TrainConfig, without_retired


def preset_path(name_or_path: str | os.PathLike) -> Path:
    """Resolve a preset name (``mnist-predrnn-v2``) or a YAML file path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"preset file {path} does not exist")
        return path
    candidate = PRESET_DIR / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise ConfigError(
            f"unknown preset {str(name_or_path)!r}; available: {', '.join(preset_names())}."
            + did_you_mean(str(name_or_path), preset_names())
        )
    return candidate


def load_preset(name_or_path: str | os.PathLike, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Load a preset and apply ``section.key=value`` overrides.

    Args:
        name_or_path: preset name or YAML path.
        overrides: e.g. ``["model.num_hidden=[64,64]", "train.lr=3e-4"]``.

    Returns:
        A plain nested dict.
    """
    path = preset_path(name_or_path)
    try:
        conf = OmegaConf.load(path)
    except yaml.YAMLError as e:
        raise ConfigError(yaml_error_line(path, e)) from None
    except (OmegaConfBaseException, OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot be parsed as YAML: {str(e).splitlines()[0]}") from None
    if conf is None or not isinstance(OmegaConf.to_container(conf), dict):
        raise ConfigError(f"{path}: a preset must be a mapping of sections")
    data = apply_overrides(conf, overrides, str(path))
    data["_source"] = str(path)
    return data


def yaml_error_line(path: Path, error: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: file, line, column, the problem, and a hint for tabs."""
    mark = getattr(error, "problem_mark", None)
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(path)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    line = ""
    if mark is not None:
        lines = path.read_text(errors="replace").splitlines()
        line = lines[mark.line] if mark.line < len(lines) else ""
    hint = "; indent with spaces, YAML does not allow tabs" if "\t" in line else ""
    return f"{where}: not valid YAML ({problem}){hint}"


def apply_overrides(base: Any, overrides: Sequence[str], source: str) -> dict[str, Any]:
    """Merge ``section.key=value`` strings into a dict or OmegaConf config; resolve interpolations.

    Raises:
        ConfigError: a malformed override or a failed merge, naming ``source``.
    """
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"override {item!r} must look like section.key=value (e.g. train.lr=3e-4)")
    try:
        conf = OmegaConf.merge(OmegaConf.create(base) if isinstance(base, dict) else base,
                               OmegaConf.from_dotlist(list(overrides)))
        return OmegaConf.to_container(conf, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        raise ConfigError(f"{source}: {str(e).splitlines()[0]}") from None


def model_config_from_preset(name_or_path: str | os.PathLike, overrides: Sequence[str] = ()) -> ModelConfig:
    """The :class:`ModelConfig` of a preset's ``model`` section."""
    data = load_preset(name_or_path, overrides)
    if "model" not in data:
        raise ConfigError(f"{data['_source']}: no 'model' section")
    try:
        return model_config_from_dict(data["model"])
    except ConfigError as e:
        raise ConfigError(f"{data['_source']}: model: {e}") from None


SECTIONS = ("model", "data", "train", "eval")
#: Sections of the application layer (collection, cost, planning, the demo), kept as plain
#: mappings here and validated by their own dataclasses where they are used
#: (:func:`section_config`; the core does not import the packages that define them).
APP_SECTIONS = ("collect", "cost", "plan", "demo")


@dataclass(frozen=True)
class RunConfig:
    """A whole run: what to build (model), on what (data), how (train) and how it is scored (eval).

    Attributes:
        model: architecture and input rule (the config class of its family, :mod:`mbvc.models.base`).
        data: dataset and windows (``data.seq_len`` is the training length T).
        train: optimisation, curriculum, checkpoints, logging.
        eval: context and horizon of evaluation (independent of the training length).
        source: the YAML file it was read from.
        app: the application sections present (``collect``, ``cost``, ``plan``, ``demo``) as mappings.
    """

    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    eval: EvalConfig
    source: str = ""
    app: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        where = self.source or "config"
        if self.data.seq_len < self.model.total_length:
            raise ConfigError(f"{where}: data.seq_len={self.data.seq_len} is shorter than "
                              f"model.total_length={self.model.total_length}")
        if self.data.eval_seq_len and self.data.eval_seq_len < self.eval.seq_len:
            raise ConfigError(f"{where}: data.eval_seq_len={self.data.eval_seq_len} is shorter than "
                              f"eval.context + eval.horizon = {self.eval.seq_len}")

    def data_for(self, split: str) -> DataConfig:
        """The data config of ``split``: val/test windows are ``eval.context + eval.horizon`` long."""
        if split == "train" or self.data.eval_seq_len:
            return self.data
        return dataclasses.replace(self.data, eval_seq_len=self.eval.seq_len)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, not tuples), the content of ``config.yaml``."""
        return {
            "model": self.model.to_dict(),
            "data": _plain(dataclasses.asdict(self.data)),
            "train": _plain(dataclasses.asdict(self.train)),
            "eval": _plain(dataclasses.asdict(self.eval)),
            **{k: _plain(v) for k, v in self.app.items()},
        }

    def to_yaml(self) -> str:
        """The resolved configuration as YAML text (loadable by :func:`load_run_config`)."""
        return OmegaConf.to_yaml(OmegaConf.create(self.to_dict()))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> RunConfig:
        """Validate a nested dict of sections, naming ``source`` and the key in every error."""
        data = {k: v for k, v in data.items() if k != "_source"}
        for key in data:
            if key not in SECTIONS + APP_SECTIONS:
                raise ConfigError(f"{source}: unknown section {key!r}; expected {', '.join(SECTIONS + APP_SECTIONS)}."
                                  + did_you_mean(key, SECTIONS + APP_SECTIONS))
        app = {k: data[k] for k in APP_SECTIONS if data.get(k) is not None}
        for key, value in app.items():
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{key}' must be a mapping, got {type(value).__name__}")
        for key in ("model", "data"):
            if not isinstance(data.get(key), dict):
                raise ConfigError(f"{source}: a '{key}' section (a mapping) is required")
        try:
            model = model_config_from_dict(data["model"])
        except ConfigError as e:
            raise ConfigError(f"{source}: model: {e}") from None
        try:
            data_cfg = DataConfig.from_dict(data["data"])
        except ConfigError as e:
            raise ConfigError(f"{source}: data: {e}") from None
        train = _structured(TrainConfig, without_retired(data.get("train") or {}, source), "train", source)
        evaluation = _structured(EvalConfig, data.get("eval") or {}, "eval", source)
        return cls(model, data_cfg, train, evaluation, source, app)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _schema(cls: type) -> Any:
    """The OmegaConf schema of the dataclass ``cls``, writable (frozen dataclasses give read-only ones)."""
    schema = OmegaConf.structured(cls)
    OmegaConf.set_readonly(schema, False)
    return schema


def _structured(cls: type, values: Any, section: str, source: str) -> Any:
    """Merge ``values`` into the dataclass schema ``cls`` with OmegaConf (strict keys and types)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: '{section}' must be a mapping, got {type(values).__name__}")
    try:
        return OmegaConf.to_object(OmegaConf.merge(_schema(cls), values))
    except ConfigKeyError as e:
        key = f"{section}.{e.full_key}" if getattr(e, "full_key", None) else section
        names = [f.name for f in dataclasses.fields(cls)]
        raise ConfigError(f"{source}: unknown key {key!r}." + did_you_mean(str(e.key), names)) from None
    except OmegaConfBaseException as e:
        key = f"{section}.{e.full_key}" if getattr(e, "full_key", None) else section
        message = str(e).splitlines()[0]
        if "$VALUE" in message:  # OmegaConf lost the context (an element of a list): find the key
            key, message = _wrong_type(cls, values, section, message)
        raise ConfigError(f"{source}: {key}: {message}") from None
    except ConfigError as e:  # __post_init__ validation
        raise ConfigError(f"{source}: {e}") from None


def _wrong_type(cls: type, values: dict[str, Any], section: str, message: str) -> tuple[str, str]:
    """The key whose value OmegaConf refused without naming it, and what was expected there."""
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    for key, value in values.items():
        try:
            OmegaConf.merge(_schema(cls), {key: value})
        except OmegaConfBaseException:
            return f"{section}.{key}", f"expected {types.get(key, 'another type')}, got {value!r}"
    return section, message.replace("'$VALUE' of type '$VALUE_TYPE'", "of the wrong type")


def section_config(cls: type, cfg: RunConfig | dict[str, Any], section: str, source: str | None = None) -> Any:
    """Validate an application section (absent: all defaults) with its dataclass ``cls``.

    Args:
        cls: the section's frozen dataclass (e.g. ``agents.planners.PlannerConfig`` for ``plan``).
        cfg: a :class:`RunConfig`, or a mapping of sections.
        section: the section's name.
        source: the file named in errors (default: the run config's source).

    Raises:
        ConfigError: an unknown key or a value of the wrong type or range, naming the file and the key.
    """
    if isinstance(cfg, RunConfig):
        values, source = cfg.app.get(section), source or cfg.source
    else:
        values = cfg.get(section)
    return _structured(cls, values or {}, section, source or "config")


def load_run_config(name_or_path: str | os.PathLike, overrides: Sequence[str] = ()) -> RunConfig:
    """Load a preset (or a run's ``config.yaml``) with overrides into a validated :class:`RunConfig`.

    Args:
        name_or_path: preset name or YAML path.
        overrides: ``section.key=value`` strings, e.g. ``["train.iterations=1000"]``.

    Raises:
        ConfigError: unknown preset, section or key; a value of the wrong type or out of range.
    """
    data = load_preset(name_or_path, overrides)
    return RunConfig.from_dict(data, source=data["_source"])
