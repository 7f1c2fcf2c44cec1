"""Find and load what training produced: a run folder, an mbvc model file or a training checkpoint.

``mbvc test``, ``mbvc predict`` and ``mbvc visualize`` accept any of the three:

* a run folder: ``model.safetensors`` (or ``best.safetensors`` with ``which="best"``; the newest
  ``checkpoints/ckpt-*.pt`` while the run has not finished) and its ``config.yaml``;
* an mbvc model file (``*.safetensors``): the model config is in its metadata, and the run
  configuration too when training wrote it;
* a training checkpoint (``ckpt-*.pt``, ``best.pt``): weights, model config and run configuration.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from omegaconf import OmegaConf

from mbvc.errors import CheckpointError, ConfigError
from mbvc.models import ModelConfig, build_model, model_config_from_dict, read_model_file
from mbvc.models.checkpoint import load_state_dict_checked
from mbvc.training.checkpoint import CheckpointManager, load_checkpoint

if TYPE_CHECKING:  # mbvc.config composes the section configs, this package's among them
    from mbvc.config import RunConfig

log = logging.getLogger(__name__)


@dataclass
class Trained:
    """A loaded model and what is known about how it was trained.

    Attributes:
        model: the network (eval mode, on the CPU).
        run_config: the run's resolved configuration as a dict, or None (e.g. a converted
            reference checkpoint).
        source: the file the weights came from.
        run_dir: the run folder, when the source lives in one.
    """

    model: torch.nn.Module
    run_config: dict | None
    source: Path
    run_dir: Path | None


def _yaml_dict(text: str | None) -> dict | None:
    if not text:
        return None
    return OmegaConf.to_container(OmegaConf.create(text), resolve=True)  # type: ignore[return-value]


def _resolve(path: Path, which: str) -> tuple[Path, Path | None]:
    """(weights file, run folder or None) for a folder or file argument."""
    if path.is_dir():
        for name in (("best.safetensors",) if which == "best" else ("model.safetensors",)):
            if (path / name).is_file():
                return path / name, path
        ckpts = CheckpointManager(path / "checkpoints")
        candidates = [ckpts.best_path] if which == "best" else list(reversed(ckpts.list()))
        for c in candidates:
            if c.is_file():
                log.info("%s has no final model file yet: using %s", path, c)
                return c, path
        raise CheckpointError(f"{path}: no model.safetensors, best.safetensors or checkpoints/ckpt-*.pt; "
                              "is it an mbvc run folder?")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file or run folder")
    parent = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return path, parent if (parent / "config.yaml").is_file() else None


def load_trained(path: str | os.PathLike, which: str = "final") -> Trained:
    """Load a model from a run folder, a model file or a training checkpoint.

    Args:
        path: run folder, ``*.safetensors`` model file or ``*.pt`` training checkpoint.
        which: ``final`` or ``best`` (run folders only).

    Raises:
        CheckpointError: nothing loadable there, or a file that is no mbvc model / checkpoint.
    """
    if which not in ("final", "best"):
        raise ConfigError(f"which must be 'final' or 'best', got {which!r}")
    weights, run_dir = _resolve(Path(path), which)
    if weights.suffix == ".safetensors":
        config, tensors, extra = read_model_file(weights)
        text = extra.get("run_config")
    else:
        state = load_checkpoint(weights)
        try:
            config = model_config_from_dict(state["model_config"])
        except (KeyError, ConfigError) as e:
            raise CheckpointError(f"{weights}: invalid model config ({e})") from None
        tensors, text = state["model"], state.get("config")
    model = build_model(config)
    load_state_dict_checked(model, tensors, str(weights))
    run_config = _yaml_dict(text)
    if run_config is None and run_dir is not None:
        run_config = _yaml_dict((run_dir / "config.yaml").read_text())
    model.eval()
    return Trained(model, run_config, weights, run_dir)


def run_config_for(trained: Trained, preset: str | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """The configuration used to evaluate ``trained``: its own, or ``preset``, plus overrides.

    Raises:
        ConfigError: no stored configuration and no preset.
        CheckpointError: the preset (or an override) describes another model than the file's.
    """
    from mbvc.config import RunConfig, apply_overrides, load_preset  # the layer above: see mbvc/training/__init__.py

    if preset is not None:
        base = load_preset(preset, [])
        source = base.pop("_source")
    elif trained.run_config is not None:
        base, source = dict(trained.run_config), str(trained.source)
    else:
        raise ConfigError(f"{trained.source} carries no run configuration: pass --preset NAME for its data "
                          "and evaluation settings")
    cfg = RunConfig.from_dict(apply_overrides(base, overrides, source), source=source)
    check_model_matches(trained.model.config, cfg.model, str(trained.source), source)
    return cfg


def check_model_matches(have: ModelConfig, want: ModelConfig, file: str, source: str) -> None:
    """Raise a :class:`CheckpointError` naming each differing field of two model configs."""
    a, b = have.to_dict(), want.to_dict()
    diff = [k for k in a if a[k] != b.get(k)]
    if diff:
        details = ", ".join(f"{k}: file {a[k]!r}, {source} {b.get(k)!r}" for k in diff[:6])
        raise CheckpointError(f"{file} holds another model than {source} describes ({details})")
