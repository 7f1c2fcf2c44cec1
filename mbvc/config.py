"""Presets: YAML files in ``mbvc/configs`` (or any path) with sections ``model``, ``data``,
``train`` and ``eval``, plus ``section.key=value`` overrides from the command line.

This module resolves and merges presets; each section is validated by its own frozen
dataclass (``ModelConfig`` for ``model``...), which rejects unknown keys by name.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mbvc.errors import ConfigError, did_you_mean
from mbvc.models.config import ModelConfig

PRESET_DIR = Path(__file__).parent / "configs"


def preset_names() -> list[str]:
    """Names of the presets shipped with mbvc."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


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
    except (OmegaConfBaseException, OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot be parsed as YAML: {e}") from None
    if conf is None or not isinstance(OmegaConf.to_container(conf), dict):
        raise ConfigError(f"{path}: a preset must be a mapping of sections")
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"override {item!r} must look like section.key=value (e.g. train.lr=3e-4)")
    try:
        conf = OmegaConf.merge(conf, OmegaConf.from_dotlist(list(overrides)))
        data = OmegaConf.to_container(conf, resolve=True)
    except OmegaConfBaseException as e:
        raise ConfigError(f"{path}: {e}") from None
    data["_source"] = str(path)
    return data


def model_config_from_preset(name_or_path: str | os.PathLike, overrides: Sequence[str] = ()) -> ModelConfig:
    """The :class:`ModelConfig` of a preset's ``model`` section."""
    data = load_preset(name_or_path, overrides)
    if "model" not in data:
        raise ConfigError(f"{data['_source']}: no 'model' section")
    try:
        return ModelConfig.from_dict(data["model"])
    except ConfigError as e:
        raise ConfigError(f"{data['_source']}: model: {e}") from None
