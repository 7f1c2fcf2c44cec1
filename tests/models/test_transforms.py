"""The transformation (flow) output stage of the PredRNN family (issue 28, item 1)."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from mbvc.errors import CheckpointError, ConfigError
from mbvc.models import build_model, export_reference_state_dict, load_model, save_model
from mbvc.models.config import ModelConfig
from mbvc.models.transforms import FLOW_HEAD_BIAS, blend, compose, push_distribution, warp
from tests.models.conftest import tiny_config

# (name, extra config): every way the flow stage is wired (1x1 head or strided deconvolution head).
VARIANTS = [
    ("predrnn", {}),
    ("predrnn_v2", {}),
    ("predrnn_v2", {"layer_norm": True}),
    ("action_cond_predrnn", {"conv_on_input": False}),
    ("action_cond_predrnn_v2", {}),
    ("action_cond_predrnn_v2", {"res_on_conv": False}),
    ("action_cond_predrnn_v2", {"conv_on_input": False}),
    ("convlstm", {}),
    ("action_cond_convlstm", {}),
]
BIG = 100.0  # softmax([BIG, -BIG, -BIG]) is exactly (1, 0, 0) in float32


pytestmark = pytest.mark.usefixtures("one_thread")


def flow_config(name: str = "predrnn_v2", **kw) -> ModelConfig:
    return tiny_config(name, **{"patch_size": 1, "output": "flow", **kw})


def _actions(cfg, b, t):
    return torch.rand(b, t, cfg.num_action_ch) if cfg.is_action else None


def _set_head(model, logits):
    with torch.no_grad():
        model.transform_head.weight.zero_()
        model.transform_head.bias.copy_(torch.tensor([0.0, 0.0, *logits]))


def _centroid(p):
    """(x, y) centroid of maps (..., H, W) with non-negative weights."""
    h, w = p.shape[-2:]
    mass = p.sum(dim=(-2, -1))
    x = (p.sum(-2) * torch.arange(w, dtype=p.dtype)).sum(-1) / mass
    y = (p.sum(-1) * torch.arange(h, dtype=p.dtype)).sum(-1) / mass
    return x, y


# ---------------------------------------------------------------------------------------- pure functions
def test_zero_flow_and_identity_masks_reproduce_the_previous_frame_exactly():
    prev, first, gen = torch.rand(3, 2, 8, 16), torch.rand(3, 2, 8, 16), torch.rand(3, 2, 8, 16)
    flow = torch.zeros(3, 2, 8, 16)
    assert torch.equal(warp(prev, flow), prev)
    logits = torch.tensor([BIG, -BIG, -BIG])[None, :, None, None].expand(3, 3, 8, 16)
    assert torch.equal(compose(prev, first, gen, flow, logits), prev)


def test_zero_flow_on_other_sizes_is_within_float_rounding():
    prev = torch.rand(3, 2, 9, 13)
    assert torch.allclose(warp(prev, torch.zeros(3, 2, 9, 13)), prev, rtol=0, atol=1e-6)


def test_warp_is_border_bilinear_sampling_and_exact_for_integer_flow():
    images, flow = torch.rand(2, 3, 8, 16), 3 * torch.randn(2, 2, 8, 16)
    ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(16.0), indexing="ij")
    # pixel coordinates on the corner-aligned grid: the same bilinear, border-clamped sample
    grid = torch.stack((2 * (xs + flow[:, 0]) / 15 - 1, 2 * (ys + flow[:, 1]) / 7 - 1), dim=-1)
    expected = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)
    assert torch.allclose(warp(images, flow), expected, atol=1e-5)
    # backward offsets: out[y, x] = in[y + dy, x + dx]; content moves by -flow
    shift = torch.zeros(2, 2, 8, 16)
    shift[:, 0], shift[:, 1] = -2.0, 1.0
    assert torch.equal(warp(images, shift)[..., :7, 2:], images[..., 1:, :14])


def test_region_hidden_in_the_previous_frame_is_recovered_from_the_first_frame():
    first = torch.zeros(1, 1, 16, 16)
    first[..., 6:10, 6:10] = 1.0  # the block, visible at the start
    prev = first.clone()
    prev[..., 4:12, 5:11] = 0.3  # an arm hides it now
    hidden = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    hidden[..., 4:12, 5:11] = True
    logits = torch.where(hidden, torch.tensor([-BIG, BIG, -BIG])[:, None, None], torch.tensor([BIG, -BIG, -BIG])[:, None, None])
    out = compose(prev, first, torch.rand_like(prev), torch.zeros(1, 2, 16, 16), logits)
    assert torch.equal(out, first)


@pytest.mark.parametrize("dx, dy", [(-2.0, 1.0), (3.0, -1.0), (-0.5, 0.25), (0.3, -0.7)])
def test_pushed_distribution_keeps_mass_one_and_moves_by_the_flow(dx, dy):
    p = torch.zeros(2, 1, 16, 16)
    p[0, 0, 8, 7] = 1.0
    p[1, 0, 6:9, 7:10] = torch.rand(3, 3)
    p = p / p.sum(dim=(2, 3), keepdim=True)
    flow = torch.tensor([dx, dy])[None, :, None, None].expand(2, 2, 16, 16)
    masks = torch.tensor([1.0, 0.0, 0.0])[None, :, None, None].expand(2, 3, 16, 16)
    q = push_distribution(p, flow, masks, torch.rand(2, 1, 16, 16))
    assert torch.allclose(q.sum(dim=(2, 3)), torch.ones(2, 1), atol=1e-6)
    (x0, y0), (x1, y1) = _centroid(p[:, 0]), _centroid(q[:, 0])
    assert torch.allclose(x1 - x0, torch.full((2,), -dx), atol=1e-5)
    assert torch.allclose(y1 - y0, torch.full((2,), -dy), atol=1e-5)


def test_pushed_distribution_mixes_the_first_frame_and_not_the_generated_image():
    p, p_first = torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)
    p[..., 2, 2], p_first[..., 5, 5] = 1.0, 1.0
    masks = torch.tensor([0.5, 0.25, 0.25])[None, :, None, None].expand(1, 3, 8, 8)
    q = push_distribution(p, torch.zeros(1, 2, 8, 8), masks, p_first)
    expected = (0.5 * p + 0.25 * p_first) / 0.75
    assert torch.allclose(q, expected) and torch.allclose(q.sum(), torch.tensor(1.0))
    generated_only = torch.tensor([0.0, 0.0, 1.0])[None, :, None, None].expand(1, 3, 8, 8)
    assert torch.allclose(push_distribution(p, torch.zeros(1, 2, 8, 8), generated_only, p_first),
                          torch.full((1, 1, 8, 8), 1 / 64))  # no mass left: uniform


# ---------------------------------------------------------------------------------------- the models
@pytest.mark.parametrize("name, kw", VARIANTS)
def test_flow_models_train_and_start_close_to_copy_last(name, kw):
    cfg = flow_config(name, **kw)
    model = build_model(cfg)
    head = model.transform_head
    assert torch.equal(head.bias.detach(), torch.tensor(FLOW_HEAD_BIAS)) and not head.weight.any()
    frames = torch.rand(2, cfg.total_length, 1, 16, 16)
    out = model(frames, torch.ones(2, cfg.mask_steps()), _actions(cfg, 2, cfg.total_length))
    assert out.frames.shape == (2, cfg.total_length - 1, 1, 16, 16)
    out.loss.backward()
    assert head.weight.grad.abs().sum() > 0 and head.bias.grad.abs().sum() > 0
    ctx, acts = frames[:, :2], _actions(cfg, 2, 4)
    pred, tr = model.rollout(model.encode(ctx, None if acts is None else acts[:, :1]), 3,
                             None if acts is None else acts[:, 1:], transforms=True)
    assert pred.shape == (2, 3, 1, 16, 16)
    assert tr["flow"].shape == (2, 3, 2, 16, 16) and not tr["flow"].any()  # flow exactly 0 at the start
    assert tr["masks"].shape == (2, 3, 3, 16, 16)
    assert torch.allclose(tr["masks"].sum(2), torch.ones(2, 3, 16, 16))
    assert (tr["masks"][:, :, 0] > 0.75).all()  # favours prev


@pytest.mark.parametrize("name, kw", VARIANTS)
def test_identity_head_copies_the_previous_frame_and_first_frame_head_the_first(name, kw):
    cfg = flow_config(name, **kw)
    model = build_model(cfg).eval()
    frames = torch.rand(2, cfg.total_length, 1, 16, 16)
    acts = _actions(cfg, 2, cfg.total_length)
    _set_head(model, (BIG, -BIG, -BIG))
    out = model(frames, torch.ones(2, cfg.mask_steps()), acts)
    assert torch.equal(out.frames, frames[:, :-1])  # every step copies the true frame it was given
    pred = model.predict(frames[:, :3], 3, acts)
    assert torch.equal(pred, frames[:, 2:3].expand_as(pred))
    _set_head(model, (-BIG, BIG, -BIG))  # the skip: a region hidden now comes back from frame 0
    pred = model.predict(frames[:, :3], 3, acts)
    assert torch.equal(pred, frames[:, 0:1].expand_as(pred))


def _squares(n, gen, t=6, size=16, side=4):
    """A side x side square, random start, moving 1 px right per frame, on 0 background."""
    frames = torch.zeros(n, t, 1, size, size)
    ys = torch.randint(0, size - side + 1, (n,), generator=gen)
    xs = torch.randint(0, size - side - t + 2, (n,), generator=gen)
    for i in range(n):
        for s in range(t):
            frames[i, s, 0, ys[i]:ys[i] + side, xs[i] + s:xs[i] + s + side] = 1.0
    return frames


def test_a_translating_square_is_learnt_within_half_a_pixel():
    torch.manual_seed(0)
    cfg = flow_config("predrnn_v2", input_length=2, total_length=6)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        out = model(_squares(8, gen), torch.ones(8, cfg.mask_steps()))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    test = _squares(16, torch.Generator().manual_seed(1))
    with torch.no_grad():
        pred, tr = model.rollout(model.encode(test[:, :2]), 4, transforms=True)
    px, py = _centroid(pred.clamp(0, 1)[:, :, 0])
    tx, ty = _centroid(test[:, 2:, 0])
    assert (px - tx).abs().max() < 0.5 and (py - ty).abs().max() < 0.5
    on_square = test[:, 2:, 0] > 0  # where the square lands it was sampled from 1 px left: flow dx = -1
    assert (tr["flow"][:, :, 0][on_square].mean() + 1).abs() < 0.5


@pytest.mark.parametrize("name, kw", [("action_cond_predrnn_v2", {}), ("predrnn_v2", {}),
                                      ("action_cond_convlstm", {"conv_on_input": False})])
def test_encode_once_rollout_equals_per_candidate_predict_and_save_load(tmp_path, name, kw):
    cfg = flow_config(name, **kw)
    model = build_model(cfg).eval()
    with torch.no_grad():  # a head that moves things, so the check is not about copies
        model.transform_head.weight.normal_(0, 0.3)
    ctx = torch.rand(1, 3, 1, 16, 16)
    if cfg.is_action:
        past, cands = torch.rand(1, 2, cfg.num_action_ch), torch.rand(4, 5, cfg.num_action_ch)
        with torch.no_grad():
            batched, tr = model.rollout(model.encode(ctx, past), 5, cands, transforms=True)
        singles = [model.predict(ctx, 5, torch.cat((past, cands[i:i + 1]), dim=1)) for i in range(4)]
    else:
        with torch.no_grad():
            batched, tr = model.rollout(model.encode(ctx.expand(4, -1, -1, -1, -1)), 5, transforms=True)
        singles = [model.predict(ctx, 5)] * 4
    assert tr["flow"].abs().max() > 0.01
    for i, single in enumerate(singles):
        assert torch.allclose(batched[i:i + 1], single, atol=1e-5)
    with torch.no_grad():
        plain = model.rollout(model.encode(ctx, past if cfg.is_action else None), 5, cands if cfg.is_action else None)
    assert torch.allclose(plain, batched[: plain.shape[0]], atol=1e-6)
    loaded = load_model(save_model(model, tmp_path / "m.safetensors")).eval()
    assert loaded.config == cfg and loaded.config.output == "flow"
    acts = torch.cat((past, cands[:1]), dim=1) if cfg.is_action else None
    assert torch.equal(loaded.predict(ctx, 5, acts), model.predict(ctx, 5, acts))


def test_model_files_without_output_load_as_pixels(tmp_path):
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    model = build_model(tiny_config("predrnn_v2"))
    path = save_model(model, tmp_path / "m.safetensors")
    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
    config = json.loads(meta["config"])
    del config["output"]
    meta["config"] = json.dumps(config)
    save_file(load_file(str(path)), str(path), metadata=meta)
    loaded = load_model(path)
    assert loaded.config.output == "pixels" and loaded.config == model.config
    assert not any(k.startswith("transform_head") for k in loaded.state_dict())


def test_config_errors_are_one_line():
    cases = [
        (dict(output="flwo"), "model.output must be one of pixels, flow.*Did you mean 'flow'"),
        (dict(output="flow"), "patch_size=1"),  # tiny_config's patch_size is 2
        (dict(output="flow", patch_size=1, residual_output=True), "residual_output"),
    ]
    for kw, match in cases:
        with pytest.raises(ConfigError, match=match) as info:
            tiny_config("predrnn_v2", **kw)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="model.output"):
        ModelConfig.from_dict({**tiny_config("predrnn_v2").to_dict(), "output": 3})
    with pytest.raises(CheckpointError, match="output='flow'") as info:
        export_reference_state_dict(build_model(flow_config("action_cond_predrnn_v2")))
    assert "\n" not in str(info.value)
    pixels = build_model(tiny_config("predrnn_v2"))
    with pytest.raises(ConfigError, match="transforms=True") as info:
        pixels.rollout(pixels.encode(torch.rand(1, 2, 1, 16, 16)), 2, transforms=True)
    assert "\n" not in str(info.value)
