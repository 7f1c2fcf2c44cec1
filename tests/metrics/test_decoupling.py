"""Decoupling visualisation: separated memories score high, coupled ones low."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from mbvc.errors import ConfigError, ShapeError
from mbvc.evaluation import decoupling_analysis, plot_decoupling
from mbvc.evaluation.decoupling import silhouette_two_groups


def increments(decoupled: bool, steps: int = 3, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(delta_c, delta_m) pairs (4, 6, 8, 8) per step: disjoint activity, or the same activity."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        c = torch.randn(4, 6, 8, 8, generator=g) * 0.05
        m = c + torch.randn(4, 6, 8, 8, generator=g) * 0.01
        if decoupled:
            c[..., :4] += torch.rand(4, 6, 8, 4, generator=g) + 0.5  # active on the left half
            m[..., 4:] += torch.rand(4, 6, 8, 4, generator=g) + 0.5  # active on the right half
        else:
            bump = torch.rand(4, 6, 8, 4, generator=g) + 0.5
            c[..., :4] += bump
            m[..., :4] += bump
        out.append((c, m))
    return out


@pytest.mark.parametrize("features", ["topk", "flat"])
def test_decoupled_memories_separate(features: str) -> None:
    good = decoupling_analysis(increments(True), features=features)
    bad = decoupling_analysis(increments(False), features=features)
    assert good.silhouette > 0.5 > 0.1 > bad.silhouette
    assert good.mean_abs_cosine < 0.3 and bad.mean_abs_cosine > 0.9
    assert good.embedding.shape == (2 * 3 * 4 * 6, 2)
    assert int(good.labels.sum()) == 3 * 4 * 6


def test_layers_of_different_widths() -> None:
    pairs = increments(True, steps=1) + [(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))]
    result = decoupling_analysis(pairs)
    assert result.embedding.shape[0] == 2 * (24 + 6)


def test_subsampling_is_seeded_and_bounded() -> None:
    a = decoupling_analysis(increments(True), max_points=20, seed=1)
    b = decoupling_analysis(increments(True), max_points=20, seed=1)
    assert a.embedding.shape == (20, 2)
    torch.testing.assert_close(a.embedding, b.embedding)


def test_tsne_embedding() -> None:
    pytest.importorskip("sklearn")
    result = decoupling_analysis(increments(True, steps=1), method="tsne", max_points=40)
    assert result.method == "tsne" and result.embedding.shape == (40, 2)


def test_plot_written(tmp_path: Path) -> None:
    result = decoupling_analysis(increments(True, steps=1))
    path = plot_decoupling(result, tmp_path / "decoupling.png")
    with Image.open(path) as img:
        assert img.format == "PNG"
    assert result.to_dict()["num_points"] == 48


def test_silhouette_of_known_groups() -> None:
    x = torch.tensor([[0.0], [0.0], [10.0], [10.0]])
    assert silhouette_two_groups(x, torch.tensor([0, 0, 1, 1])) == pytest.approx(1.0)
    assert silhouette_two_groups(x, torch.tensor([0, 1, 0, 1])) < 0


def test_mismatched_pair_raises() -> None:
    with pytest.raises(ShapeError, match="increment pair 0"):
        decoupling_analysis([(torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 5))])


def test_empty_raises() -> None:
    with pytest.raises(ShapeError, match="at least one"):
        decoupling_analysis([])


def test_unknown_method_raises() -> None:
    with pytest.raises(ConfigError, match="pca"):
        decoupling_analysis(increments(True, steps=1), method="umap")


def test_unknown_features_raise() -> None:
    with pytest.raises(ConfigError, match="topk"):
        decoupling_analysis(increments(True, steps=1), features="raw")
