"""mbvc's own model file: safetensors weights with the full config in the metadata.

A file written by :func:`save_model` is enough to rebuild the model (:func:`load_model`);
nothing in it is executable, unlike a pickled checkpoint.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mbvc import __version__
from mbvc.errors import CheckpointError, ConfigError
from mbvc.io import atomic_path
from mbvc.models.base import model_config_from_dict

FORMAT = "mbvc-model/1"
log = logging.getLogger(__name__)


def save_model(model: torch.nn.Module, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write the model's weights and config to ``path`` (safetensors), atomically.

    Args:
        model: a :class:`~mbvc.models.WorldModel` (anything with ``.config`` and a state dict).
        path: destination file, conventionally ``*.safetensors``.
        metadata: extra JSON-serialisable information (e.g. the source checkpoint).

    Returns:
        The path written.
    """
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "mbvc_version": __version__,
        "config": json.dumps(model.config.to_dict()),
        "extra": json.dumps(dict(metadata or {})),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return Path(path)


def read_model_file(path: str | os.PathLike) -> tuple[Any, dict[str, torch.Tensor], dict[str, Any]]:
    """Read an mbvc model file without building the model.

    The stored config is checked against the tensors in the file before anything is allocated:
    the model the config describes is built on the meta device (no memory) and its parameter
    shapes must equal the file's, so a small file whose config asks for a huge model is refused.

    Returns:
        ``(config, state_dict, extra_metadata)``.

    Raises:
        CheckpointError: not a safetensors file, no mbvc metadata, an invalid config, or a config
            whose model does not match the tensors stored in the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path}: not a safetensors model file ({e}); a reference checkpoint "
            "(model.ckpt-N) is imported with `mbvc convert` or mbvc.models.from_reference"
        ) from None
    if meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{path}: safetensors file without mbvc metadata (format {meta.get('format')!r}, expected {FORMAT!r})")
    try:
        config = model_config_from_dict(json.loads(meta["config"]))
    except (json.JSONDecodeError, ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: invalid model config in metadata: {e}") from None
    check_config_matches(config, shapes, str(path))
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: the tensors of the model file cannot be read ({e})") from None
    try:
        extra = json.loads(meta.get("extra") or "{}")
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: invalid 'extra' metadata ({e})") from None
    return config, tensors, extra


def expected_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    """Parameter and buffer shapes of the model ``config`` builds, computed on the meta device.

    Nothing is allocated, however large the config (e.g. ``num_hidden=[200000, 200000]``).
    """
    from mbvc.models.base import build_model

    with torch.device("meta"):
        model = build_model(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_config_matches(config: Any, shapes: Mapping[str, tuple], source: str) -> None:
    """Refuse a stored config whose model differs from the tensors stored with it, before building it.

    Args:
        config: the model config read from the file.
        shapes: name -> shape of every tensor in the file.
        source: the file, for the message.

    Raises:
        CheckpointError: one line naming ``source``, the parameter counts and the first mismatches.
    """
    try:
        expected = expected_shapes(config)
    except ConfigError as e:
        raise CheckpointError(f"{source}: the stored model config cannot be built ({e})") from None
    except (RuntimeError, NotImplementedError, ValueError, TypeError) as e:  # a family that cannot build on meta
        log.debug("%s: shapes not checked before building (%s: %s)", source, type(e).__name__, e)
        return
    problems = describe_mismatch(expected, shapes, limit=3)
    if problems:
        n_config = sum(_numel(s) for s in expected.values())
        n_file = sum(_numel(s) for s in shapes.values())
        details = "; ".join(line.strip() for line in problems.splitlines())
        raise CheckpointError(f"{source}: corrupt model file: its stored config ({config.name}, num_hidden "
                              f"{list(getattr(config, 'num_hidden', []))}) describes a model of {n_config:,} "
                              f"parameters but the file holds tensors of {n_file:,} ({details})")


def _numel(shape: tuple) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a model from a file written by :func:`save_model`."""
    from mbvc.models.base import build_model

    config, tensors, _ = read_model_file(path)
    model = build_model(config)
    load_state_dict_checked(model, tensors, source=str(path))
    return model.to(map_location)


def load_state_dict_checked(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with an error naming missing/unexpected keys and shapes."""
    expected = model.state_dict()
    problems = describe_mismatch({k: tuple(v.shape) for k, v in expected.items()}, {k: tuple(v.shape) for k, v in state.items()})
    if problems:
        raise CheckpointError(f"{source} does not match the model ({model.config.name}):\n{problems}")
    with torch.no_grad():
        model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def describe_mismatch(expected: Mapping[str, tuple], found: Mapping[str, tuple], limit: int = 12) -> str:
    """List missing keys, unexpected keys and shape mismatches, one per line ('' if none)."""
    lines = []
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [k for k in expected if k in found and tuple(found[k]) != tuple(expected[k])]
    for title, keys, fmt in (
        ("missing keys", missing, lambda k: f"{k} {list(expected[k])}"),
        ("unexpected keys", unexpected, lambda k: f"{k} {list(found[k])}"),
        ("shape mismatches", wrong, lambda k: f"{k}: file {list(found[k])}, model {list(expected[k])}"),
    ):
        if keys:
            shown = ", ".join(fmt(k) for k in keys[:limit])
            more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
            lines.append(f"  {title}: {shown}{more}")
    return "\n".join(lines)
