"""mbvc's models reproduce a reference-style implementation given the same weights (float64).

The oracle, benchmarks/reference_style.py, is written from docs/reference-spec.md in the
reference's own layout (separate convolutions, (B, T, H, W, C) patched inputs, full-frame
masks) and loads the reference parameter names unchanged.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.reference_style import RefRNN, np_full_mask, np_reshape_patch
from mbvc.models import (
    CurriculumConfig, build_model, curriculum_mask, export_reference_state_dict, test_mask,
)
from tests.models.conftest import tiny_config

CASES = [
    ("predrnn", {}),
    ("predrnn", {"layer_norm": True}),
    ("predrnn_v2", {}),
    ("predrnn_v2", {"layer_norm": True}),
    ("predrnn", {"reverse_scheduled_sampling": True}),
    ("action_cond_predrnn", {"img_width": 16, "patch_size": 1}),
    ("action_cond_predrnn_v2", {"img_width": 16, "patch_size": 1}),
    ("action_cond_predrnn_v2", {"img_width": 32, "patch_size": 2, "layer_norm": True}),
    ("action_cond_predrnn_v2", {"img_width": 16, "patch_size": 1, "res_on_conv": False}),
]


def _reference_net(cfg):
    return RefRNN(
        cfg.name, cfg.num_hidden, cfg.patch_size, cfg.img_channel, cfg.img_width, cfg.filter_size,
        cfg.layer_norm, cfg.input_length, cfg.total_length, cfg.reverse_scheduled_sampling,
        cfg.decouple_beta, cfg.conv_on_input, cfg.res_on_conv, cfg.num_action_ch,
    ).double()


def _reference_inputs(cfg, frames, actions, mask):
    ims = np_reshape_patch(frames.permute(0, 1, 3, 4, 2).numpy(), cfg.patch_size)
    if actions is not None:
        b, t, h, w, _ = ims.shape
        planes = np.broadcast_to(actions.numpy()[:, :, None, None, :], (b, t, h, w, actions.shape[-1]))
        ims = np.concatenate([ims, planes], axis=-1)
    full = np_full_mask(mask.numpy(), ims.shape[2], cfg.patch_channels).astype(np.float64)
    return torch.from_numpy(np.ascontiguousarray(ims)), torch.from_numpy(full)


def _to_frames(cfg, ref_out):
    from benchmarks.reference_style import np_reshape_patch_back

    out = np_reshape_patch_back(ref_out.detach().numpy(), cfg.patch_size)
    return torch.from_numpy(out).permute(0, 1, 4, 2, 3)


@pytest.mark.parametrize(("name", "kw"), CASES)
@pytest.mark.parametrize("phase", ["train", "test"])
def test_same_outputs_as_reference(name, kw, phase):
    cfg = tiny_config(name, **kw)
    model = build_model(cfg).double()
    for p in model.parameters():  # non-trivial LayerNorm affine parameters too
        torch.nn.init.normal_(p, std=0.3)
    ref = _reference_net(cfg)
    ref.load_state_dict(export_reference_state_dict(model), strict=True)

    b = 3
    frames = torch.rand(b, cfg.total_length, 1, cfg.img_width, cfg.img_width, dtype=torch.float64)
    actions = torch.randn(b, cfg.total_length, 3, dtype=torch.float64) if cfg.is_action else None
    if phase == "train":
        mask = curriculum_mask(cfg, CurriculumConfig(r_sampling_step_1=10, r_sampling_step_2=20), 15, b,
                               generator=torch.Generator().manual_seed(1))
    else:
        mask = test_mask(cfg, b)
        model.eval()
    out = model(frames, mask.double(), actions)
    ref_frames, ref_loss = ref(*_reference_inputs(cfg, frames, actions, mask))
    assert torch.allclose(out.frames, _to_frames(cfg, ref_frames), atol=1e-5, rtol=0)
    assert torch.allclose(out.loss, ref_loss, atol=1e-5, rtol=0)

    if phase == "test":  # predict() is the same computation as the test-mask forward
        k = cfg.input_length
        pred = model.predict(frames[:, :k], cfg.total_length - k, actions)
        assert torch.allclose(pred, out.frames[:, k - 1 :], atol=1e-10)


def test_mask_changes_the_output():
    """The parity test above could pass vacuously if masks were ignored: they are not."""
    cfg = tiny_config("predrnn_v2")
    model = build_model(cfg)
    frames = torch.rand(2, cfg.total_length, 1, 16, 16)
    ones = torch.ones(2, cfg.mask_steps())
    zeros = torch.zeros(2, cfg.mask_steps())
    assert not torch.allclose(model(frames, ones).frames, model(frames, zeros).frames)
