"""Curriculum values at chosen iterations and mask statistics."""
from __future__ import annotations

import math

import pytest
import torch

from mbvc.models import CurriculumConfig, curriculum_mask, reverse_sampling_probs, scheduled_sampling_eta, test_mask
from tests.models.conftest import tiny_config

CUR = CurriculumConfig()  # s1 25k, s2 50k, alpha 2500; rate 2e-5, stop 50k


@pytest.mark.parametrize(
    ("itr", "r_eta", "eta"),
    [
        (1, 0.5, 0.5),
        (24999, 0.5, 0.5),
        (25000, 0.5, 0.5),  # s1: exp(0) -> 1 - 0.5
        (37500, 1 - 0.5 * math.exp(-12500 / 2500), 0.25),  # midpoint
        (50000, 1.0, 0.0),  # s2
        (80000, 1.0, 0.0),  # end
    ],
)
def test_reverse_schedule_values(itr, r_eta, eta):
    got = reverse_sampling_probs(itr, CUR)
    assert got == pytest.approx((r_eta, eta), abs=1e-12)


@pytest.mark.parametrize(("itr", "eta"), [(1, 1 - 2e-5), (25000, 0.5), (49999, 2e-5), (50000, 0.0), (80000, 0.0)])
def test_scheduled_sampling_values(itr, eta):
    assert scheduled_sampling_eta(itr, CUR) == pytest.approx(eta, abs=1e-12)


def test_mask_shapes_and_statistics():
    g = torch.Generator().manual_seed(0)
    v2 = tiny_config("predrnn_v2", input_length=10, total_length=20)
    m = curriculum_mask(v2, CUR, 37500, 4000, generator=g)
    assert m.shape == (4000, 18) and set(m.unique().tolist()) <= {0.0, 1.0}
    r_eta, eta = reverse_sampling_probs(37500, CUR)
    assert m[:, :9].mean().item() == pytest.approx(r_eta, abs=0.01)
    assert m[:, 9:].mean().item() == pytest.approx(eta, abs=0.01)
    v1 = tiny_config("predrnn", input_length=10, total_length=20)
    m1 = curriculum_mask(v1, CUR, 25000, 4000, generator=g)
    assert m1.shape == (4000, 9)
    assert m1.mean().item() == pytest.approx(0.5, abs=0.01)
    # per-sample, per-step: rows differ
    assert not torch.all(m1 == m1[0])


def test_test_masks():
    v2 = tiny_config("predrnn_v2", input_length=10, total_length=20)
    m = test_mask(v2, 2)
    assert m.shape == (2, 18) and m[:, :9].eq(1).all() and m[:, 9:].eq(0).all()
    v1 = tiny_config("predrnn", input_length=10, total_length=20)
    assert test_mask(v1, 2).shape == (2, 9) and test_mask(v1, 2).eq(0).all()


def test_same_generator_seed_same_mask():
    cfg = tiny_config("predrnn_v2")
    a = curriculum_mask(cfg, CUR, 30000, 8, generator=torch.Generator().manual_seed(5))
    b = curriculum_mask(cfg, CUR, 30000, 8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
