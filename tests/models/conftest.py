from __future__ import annotations

import pytest
import torch

from mbvc.models import ModelConfig

NAMES = ["predrnn", "predrnn_v2", "action_cond_predrnn", "action_cond_predrnn_v2"]


def tiny_config(name: str = "predrnn_v2", **kw) -> ModelConfig:
    """A model small enough for a test: 2 layers x 8 channels on 16x16 frames."""
    base = dict(
        name=name, num_hidden=(8, 8), filter_size=3, patch_size=2, img_channel=1, img_width=16,
        input_length=3, total_length=6, reverse_scheduled_sampling=("v2" in name or "action" in name),
        num_action_ch=3,
    )
    base.update(kw)
    return ModelConfig(**base)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
