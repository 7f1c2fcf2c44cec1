"""Do PredRNN-V2's two memories learn different things? A 2-D picture and two numbers.

At every step and layer a V2 cell adds an increment ``delta_c`` to its temporal memory and
``delta_m`` to its spatiotemporal memory, both ``(B, H, h, w)``. The decoupling loss pushes
each channel's two increment maps towards orthogonality. Here each (sample, channel) map
becomes one point per memory; the points of both memories are embedded in 2-D (PCA, or
t-SNE through scikit-learn) and coloured by memory.

Point features:

* ``"topk"`` (default; the construction of the PredRNN-V2 paper's figure, on magnitudes):
  take the k positions where ``|delta_c|`` is largest and the k where ``|delta_m|`` is
  largest; each memory's point is its magnitudes at those 2k positions, L2-normalised.
  Memories active at different places give points at opposite ends; coupled memories give
  the same point.
* ``"flat"``: the whole signed map, L2-normalised (needs one map size for all entries).

Numbers:

* ``silhouette`` of the two groups in feature space, in [-1, 1]: near 1 = well separated,
  near 0 = overlapping;
* ``mean_abs_cosine``: mean over (sample, channel) pairs of |cos| between the raw
  ``delta_c`` and ``delta_m`` maps; 0 = orthogonal. The training loss measures the same after
  its learnt 1x1 adapter, so the two figures are related but not equal.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mbvc.errors import ConfigError, DependencyNotInstalled, ShapeError
from mbvc.io import atomic_write

log = logging.getLogger(__name__)

Increments = Sequence[tuple[torch.Tensor, torch.Tensor]]
LABEL_NAMES = ("delta_c", "delta_m")


@dataclass
class DecouplingResult:
    """Embedding and scores of a set of increments.

    Attributes:
        embedding: ``(N, 2)`` 2-D coordinates, the first half delta_c points.
        labels: ``(N,)`` 0 for delta_c, 1 for delta_m.
        method: ``"pca"`` or ``"tsne"``.
        features: ``"topk"`` or ``"flat"``.
        silhouette: two-group silhouette in feature space (higher = more separated).
        mean_abs_cosine: mean |cos| between paired delta_c / delta_m maps (0 = orthogonal).
    """

    embedding: torch.Tensor
    labels: torch.Tensor
    method: str
    features: str
    silhouette: float
    mean_abs_cosine: float

    def to_dict(self) -> dict[str, Any]:
        """The scores and settings, JSON-ready."""
        return {"method": self.method, "features": self.features, "num_points": int(self.labels.numel()),
                "silhouette": self.silhouette, "mean_abs_cosine": self.mean_abs_cosine}


def _flatten_pairs(increments: Increments) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if len(increments) == 0:
        raise ShapeError("decoupling analysis needs at least one (delta_c, delta_m) pair, got none")
    out = []
    for i, (dc, dm) in enumerate(increments):
        if dc.shape != dm.shape or dc.dim() != 4:
            raise ShapeError(f"increment pair {i} must be two (B, H, h, w) tensors of one shape, "
                             f"got {tuple(dc.shape)} and {tuple(dm.shape)}")
        # One row per (sample, channel): the unit the decoupling loss compares.
        out.append((dc.detach().float().flatten(2).flatten(0, 1), dm.detach().float().flatten(2).flatten(0, 1)))
    return out


def increment_features(increments: Increments, features: str = "topk", k: int = 10
                       ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Turn increments into paired feature rows.

    Args:
        increments: list of ``(delta_c, delta_m)``, each ``(B, H, h, w)`` (per step and layer).
        features: ``"topk"`` or ``"flat"`` (see the module docstring).
        k: positions per memory for ``"topk"`` (capped at ``h * w``).

    Returns:
        ``(fc, fm, mean_abs_cosine)`` with ``fc`` and ``fm`` of shape ``(P, D)``, row i of both
        from the same (sample, channel).
    """
    if features not in ("topk", "flat"):
        raise ConfigError(f"features must be 'topk' or 'flat', got {features!r}")
    pairs = _flatten_pairs(increments)
    if features == "flat" and len({c.shape[1] for c, _ in pairs}) > 1:
        raise ShapeError("features='flat' needs one map size for all increments; use 'topk'")
    fcs, fms, cos = [], [], []
    for c, m in pairs:  # c, m: (rows, positions)
        cos.append(F.cosine_similarity(c, m, dim=1, eps=1e-12).abs())
        if features == "flat":
            fcs.append(F.normalize(c, dim=1))
            fms.append(F.normalize(m, dim=1))
            continue
        kk = min(k, c.shape[1])
        ac, am = c.abs(), m.abs()
        idx = torch.cat([ac.topk(kk, dim=1).indices, am.topk(kk, dim=1).indices], dim=1)
        fcs.append(F.normalize(ac.gather(1, idx), dim=1))
        fms.append(F.normalize(am.gather(1, idx), dim=1))
    return torch.cat(fcs), torch.cat(fms), float(torch.cat(cos).mean())


def silhouette_two_groups(x: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean silhouette coefficient (Euclidean) of points in two labelled groups.

    Args:
        x: ``(N, D)`` points.
        labels: ``(N,)`` 0/1, each group with at least two points.

    Returns:
        A value in [-1, 1]; 1 = tight, well separated groups.
    """
    x = x.to(torch.float64)
    dist = torch.cdist(x, x)
    own = labels[:, None] == labels[None, :]
    n_own = own.sum(dim=1).to(x.dtype)
    a = (dist * own).sum(dim=1) / (n_own - 1).clamp(min=1)  # self-distance is 0
    b = (dist * ~own).sum(dim=1) / (len(labels) - n_own).clamp(min=1)
    s = (b - a) / torch.maximum(a, b).clamp(min=1e-12)
    return float(s.mean())


def embed_2d(x: torch.Tensor, method: str = "pca", seed: int = 0) -> torch.Tensor:
    """Embed ``(N, D)`` points in 2-D with PCA (torch) or t-SNE (scikit-learn).

    Returns:
        ``(N, 2)`` float32 coordinates; PCA axes have a fixed sign for reproducibility.
    """
    if method == "pca":
        centred = x.to(torch.float64) - x.to(torch.float64).mean(dim=0)
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        axes = vh[:2].T
        if axes.shape[1] < 2:  # one feature: pad a zero axis
            axes = F.pad(axes, (0, 2 - axes.shape[1]))
        axes = axes * torch.sign(axes.sum(dim=0) + 1e-30)  # SVD signs are arbitrary
        return (centred @ axes).float()
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError as exc:
            raise DependencyNotInstalled("method='tsne' needs scikit-learn: pip install scikit-learn") from exc
        perplexity = float(min(30.0, max(2.0, (x.shape[0] - 1) / 3)))
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
        return torch.from_numpy(tsne.fit_transform(x.double().numpy())).float()
    raise ConfigError(f"embedding method must be 'pca' or 'tsne', got {method!r}")


def decoupling_analysis(increments: Increments, method: str = "pca", features: str = "topk", k: int = 10,
                        max_points: int = 2000, seed: int = 0) -> DecouplingResult:
    """Embed delta_c / delta_m increments in 2-D and score their separation.

    Args:
        increments: list of ``(delta_c, delta_m)`` tensors, each ``(B, H, h, w)``.
        method: ``"pca"`` (default, torch only) or ``"tsne"`` (scikit-learn).
        features: ``"topk"`` or ``"flat"``.
        k: positions per memory for ``"topk"``.
        max_points: at most this many points in all (pairs subsampled at random, seeded).
        seed: subsampling and t-SNE seed.

    Returns:
        A :class:`DecouplingResult`.

    Example:
        >>> import torch
        >>> c = torch.zeros(2, 4, 8, 8); c[..., :4] = 1
        >>> m = torch.zeros(2, 4, 8, 8); m[..., 4:] = 1
        >>> decoupling_analysis([(c, m)]).mean_abs_cosine
        0.0
    """
    fc, fm, mean_cos = increment_features(increments, features, k)
    pairs = fc.shape[0]
    keep = max(2, min(pairs, max_points // 2))
    if keep < pairs:
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(pairs, generator=gen)[:keep]
        fc, fm = fc[idx], fm[idx]
    x = torch.cat([fc, fm]).cpu()
    labels = torch.cat([torch.zeros(fc.shape[0]), torch.ones(fm.shape[0])]).long()
    score = silhouette_two_groups(x, labels) if fc.shape[0] >= 2 else float("nan")
    result = DecouplingResult(embed_2d(x, method, seed), labels, method, features, score, mean_cos)
    log.info("decoupling: silhouette %.3f, mean |cos| %.3f over %d points", score, mean_cos, x.shape[0])
    return result


def plot_decoupling(result: DecouplingResult, path: str | os.PathLike, title: str | None = None) -> Path:
    """Scatter the 2-D embedding coloured by memory and write it as PNG, atomically."""
    import io

    from matplotlib.figure import Figure  # no pyplot: no global backend state

    fig = Figure(figsize=(5.0, 4.6), layout="constrained")
    ax = fig.subplots()
    emb = result.embedding.numpy()
    for label, (name, colour) in enumerate(zip(LABEL_NAMES, ("#1f77b4", "#d62728"))):
        sel = (result.labels == label).numpy()
        ax.scatter(emb[sel, 0], emb[sel, 1], s=8, alpha=0.6, c=colour, label=name, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="best")
    head = title or f"Memory increments ({result.method.upper()}, {result.features} features)"
    ax.set_title(f"{head}\nsilhouette {result.silhouette:.3f}, mean |cos| {result.mean_abs_cosine:.3f}",
                 fontsize="medium")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())
    return Path(path)
