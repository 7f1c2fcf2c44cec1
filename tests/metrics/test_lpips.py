"""AlexNet-LPIPS: wiring against a hand-written functional pass, weight lookup and errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mbvc.errors import CheckpointError, ConfigError, DependencyNotInstalled, ShapeError
from mbvc.metrics.lpips import ALEXNET_FILE, LIN_FILE, LPIPS, find_lpips_weights, load_lpips
from tests.metrics.conftest import random_alexnet_state, random_lin_state


def functional_lpips(x0: torch.Tensor, x1: torch.Tensor, signed: bool) -> torch.Tensor:
    """LPIPS v0.1 written out layer by layer from the published description, for (N, 3, H, W)."""
    alex, lin = random_alexnet_state(), random_lin_state()
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def taps(x: torch.Tensor) -> list[torch.Tensor]:
        x = ((2 * x - 1 if signed else x) - shift) / scale
        w = lambda i: (alex[f"features.{i}.weight"], alex[f"features.{i}.bias"])  # noqa: E731
        r1 = F.relu(F.conv2d(x, *w(0), stride=4, padding=2))
        r2 = F.relu(F.conv2d(F.max_pool2d(r1, 3, 2), *w(3), padding=2))
        r3 = F.relu(F.conv2d(F.max_pool2d(r2, 3, 2), *w(6), padding=1))
        r4 = F.relu(F.conv2d(r3, *w(8), padding=1))
        r5 = F.relu(F.conv2d(r4, *w(10), padding=1))
        return [r1, r2, r3, r4, r5]

    total = torch.zeros(x0.shape[0])
    for k, (a, b) in enumerate(zip(taps(x0), taps(x1))):
        a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
        b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
        d = ((a - b) ** 2 * lin[f"lin{k}.model.1.weight"]).sum(dim=1)  # 1x1 conv to one channel
        total += d.mean(dim=(1, 2))
    return total


@pytest.mark.parametrize("convention", ["standard", "reference"])
def test_matches_functional_definition(lpips_dir: Path, convention: str) -> None:
    metric = load_lpips(lpips_dir / ALEXNET_FILE, lpips_dir / LIN_FILE, convention=convention)
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.rand(3, 3, 40, 36, generator=g), torch.rand(3, 3, 40, 36, generator=g)
    expected = functional_lpips(x0, x1, signed=convention == "standard")
    torch.testing.assert_close(metric(x0, x1), expected, rtol=1e-4, atol=1e-6)


def test_zero_for_identical_positive_otherwise(lpips_dir: Path) -> None:
    metric = load_lpips(lpips_dir / ALEXNET_FILE, lpips_dir / LIN_FILE)
    x = torch.rand(2, 3, 1, 32, 32)
    y = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    same, diff = metric.frame_distances(x, x), metric.frame_distances(y, x)
    assert same.shape == diff.shape == (2, 3)
    assert torch.all(same == 0)
    assert torch.all(diff > 0)


def test_grey_frames_repeat_to_three_channels(lpips_dir: Path) -> None:
    metric = load_lpips(lpips_dir / ALEXNET_FILE, lpips_dir / LIN_FILE)
    x, y = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(metric(x, y), metric(x.repeat(1, 3, 1, 1), y.repeat(1, 3, 1, 1)))


def test_conventions_differ_and_are_named(lpips_dir: Path) -> None:
    std = load_lpips(lpips_dir / ALEXNET_FILE, lpips_dir / LIN_FILE, convention="standard")
    ref = load_lpips(lpips_dir / ALEXNET_FILE, lpips_dir / LIN_FILE, convention="reference")
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    assert not torch.allclose(std(x, y), ref(x, y))
    assert std.input_range == "[-1, 1]" and "[0, 1]" in ref.input_range


def test_chunking_does_not_change_values(lpips_dir: Path) -> None:
    metric = load_lpips(lpips_dir / ALEXNET_FILE, lpips_dir / LIN_FILE)
    x, y = torch.rand(2, 3, 1, 32, 32), torch.rand(2, 3, 1, 32, 32)
    torch.testing.assert_close(metric.frame_distances(x, y, chunk=2), metric.frame_distances(x, y))


def test_found_through_env_var(lpips_dir: Path, no_lpips_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBVC_LPIPS_DIR", str(lpips_dir))
    paths = find_lpips_weights()
    assert paths.alexnet == lpips_dir / ALEXNET_FILE and paths.lin == lpips_dir / LIN_FILE


def test_found_in_torch_hub_checkpoints(lpips_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MBVC_LPIPS_DIR", raising=False)
    (tmp_path / "checkpoints").mkdir()
    for name in (ALEXNET_FILE, LIN_FILE):
        (tmp_path / "checkpoints" / name).write_bytes((lpips_dir / name).read_bytes())
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert find_lpips_weights().alexnet == tmp_path / "checkpoints" / ALEXNET_FILE


def test_missing_weights_error_names_files(no_lpips_weights: Path) -> None:
    with pytest.raises(DependencyNotInstalled) as info:
        load_lpips()
    message = str(info.value)
    assert ALEXNET_FILE in message and LIN_FILE in message
    assert str(no_lpips_weights / "checkpoints") in message and "MBVC_LPIPS_DIR" in message


def test_missing_explicit_path_is_reported(lpips_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DependencyNotInstalled, match="nowhere.pth"):
        load_lpips(tmp_path / "nowhere.pth", lpips_dir / LIN_FILE)


def test_wrong_file_raises_checkpoint_error(lpips_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    torch.save({"something": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match="features.0.weight"):
        load_lpips(bad, lpips_dir / LIN_FILE)


def test_wrong_shape_raises_checkpoint_error(lpips_dir: Path, tmp_path: Path) -> None:
    lin = random_lin_state()
    lin["lin2.model.1.weight"] = torch.zeros(1, 3, 1, 1)
    path = tmp_path / "alex.pth"
    torch.save(lin, path)
    with pytest.raises(CheckpointError, match="heads.2.weight"):
        load_lpips(lpips_dir / ALEXNET_FILE, path)


def test_bad_convention_raises() -> None:
    with pytest.raises(ConfigError, match="convention"):
        LPIPS(convention="[-1,1]")


def test_small_frames_raise(lpips_dir: Path) -> None:
    metric = load_lpips(lpips_dir / ALEXNET_FILE, lpips_dir / LIN_FILE)
    with pytest.raises(ShapeError, match="31x31"):
        metric(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
