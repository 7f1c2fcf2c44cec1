"""Fixtures shared by the metric and evaluation tests: random LPIPS weight files."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mbvc.metrics.lpips import ALEXNET_FILE, LIN_FILE

# (out, in, kernel) of torchvision AlexNet's `features` convolutions.
ALEX_SHAPES = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
LIN_CHANNELS = (64, 192, 384, 256, 256)


def random_alexnet_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict laid out like torchvision's alexnet-owt file (classifier included)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for i, (o, c, k) in ALEX_SHAPES.items():
        state[f"features.{i}.weight"] = torch.randn(o, c, k, k, generator=g) * (2 / (c * k * k)) ** 0.5
        state[f"features.{i}.bias"] = torch.randn(o, generator=g) * 0.01
    state["classifier.1.weight"] = torch.zeros(4, 9216)  # present in the real file, unused
    return state


def random_lin_state(seed: int = 1) -> dict[str, torch.Tensor]:
    """A state dict laid out like LPIPS v0.1 alex.pth (non-negative 1x1 weights, no bias)."""
    g = torch.Generator().manual_seed(seed)
    return {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(LIN_CHANNELS)}


@pytest.fixture(scope="session")
def lpips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding both LPIPS weight files with random weights."""
    folder = tmp_path_factory.mktemp("lpips_weights")
    torch.save(random_alexnet_state(), folder / ALEXNET_FILE)
    torch.save(random_lin_state(), folder / LIN_FILE)
    return folder


@pytest.fixture
def no_lpips_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every LPIPS search location at an empty folder."""
    empty = tmp_path / "empty_hub"
    empty.mkdir()
    monkeypatch.delenv("MBVC_LPIPS_DIR", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(empty))
    monkeypatch.setattr("mbvc.metrics.lpips._lpips_package_dirs", lambda: [])
    monkeypatch.setattr("mbvc.metrics.lpips._converted_weights", lambda: (None, ["(no converted weights in tests)"]))
    return empty
