"""Shapes, gradients, equations, errors and determinism of the PredRNN family."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mbvc.errors import ConfigError, ShapeError
from mbvc.models import CurriculumConfig, ModelConfig, build_model, curriculum_mask, patchify, unpatchify
from mbvc.models.cells import SpatioTemporalCell
from tests.models.conftest import NAMES, tiny_config


def _inputs(cfg, b=2):
    frames = torch.rand(b, cfg.total_length, cfg.img_channel, cfg.img_height, cfg.img_width)
    actions = torch.randn(b, cfg.total_length, cfg.num_action_ch) if cfg.is_action else None
    mask = curriculum_mask(cfg, CurriculumConfig(), 1, b)
    return frames, mask, actions


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("layers", [1, 3])
def test_shapes_and_gradients_reach_every_parameter(name, layer_norm, layers):
    cfg = tiny_config(name, layer_norm=layer_norm, num_hidden=(8,) * layers, img_channel=3)
    model = build_model(cfg)
    frames, mask, actions = _inputs(cfg)
    out = model(frames, mask, actions)
    assert out.frames.shape == (2, cfg.total_length - 1, 3, 16, 16)
    assert out.loss.shape == out.mse.shape == out.decouple.shape == ()
    expected = out.mse + cfg.decouple_beta * out.decouple if cfg.is_v2 else out.mse
    assert torch.allclose(out.loss, expected)
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("conv_on_input", [True, False])
def test_action_models_both_input_settings_run(conv_on_input):
    cfg = tiny_config("action_cond_predrnn_v2", conv_on_input=conv_on_input, res_on_conv=conv_on_input)
    model = build_model(cfg)
    frames, mask, actions = _inputs(cfg)
    assert model(frames, mask, actions).frames.shape == (2, 5, 1, 16, 16)
    assert model.predict(frames[:, :3], 7, torch.randn(2, 9, 3)).shape == (2, 7, 1, 16, 16)


def test_conv_on_input_needs_patched_frames_divisible_by_4():
    with pytest.raises(ConfigError, match="img_width/patch_size = 9 must be divisible by 4"):
        tiny_config("action_cond_predrnn_v2", img_width=18)


def test_retired_model_keys_load_at_their_only_value_and_are_refused_otherwise():
    """Model files and run configs written before ``views`` / ``encoder_downsample`` were removed."""
    from mbvc.models import model_config_from_dict

    new = tiny_config("action_cond_predrnn_v2").to_dict()
    assert "views" not in new and "encoder_downsample" not in new
    assert model_config_from_dict({**new, "views": 1, "encoder_downsample": 4}).to_dict() == new
    for key, value in (("views", 2), ("encoder_downsample", 2)):
        with pytest.raises(ConfigError, match=f"model.{key}={value} is no longer supported") as e:
            model_config_from_dict({**new, key: value})
        assert "\n" not in str(e.value)


def test_model_names_come_from_the_registry():
    from mbvc.models import model_families, register_model_family
    from mbvc.models.base import _FAMILIES

    with pytest.raises(ConfigError, match="unknown model name 'predrnn_v3'.*'predrnn_v2'"):
        ModelConfig(name="predrnn_v3")
    assert {"predrnn", "predrnn_v2", "action_cond_predrnn", "action_cond_predrnn_v2", "convlstm",
            "action_cond_convlstm"} <= set(model_families())

    class OtherConfig:
        pass

    register_model_family("other_family", OtherConfig, lambda cfg: None)
    try:
        with pytest.raises(ConfigError, match="'other_family' is registered with OtherConfig, not ModelConfig"):
            ModelConfig(name="other_family")
        register_model_family("predrnn_subclassed", ModelConfig, lambda cfg: None)
        assert ModelConfig(name="predrnn_subclassed").name == "predrnn_subclassed"  # two lines register a name
    finally:
        _FAMILIES.pop("other_family"), _FAMILIES.pop("predrnn_subclassed", None)


def test_actions_change_predictions():
    cfg = tiny_config("action_cond_predrnn")
    model = build_model(cfg).eval()
    ctx = torch.rand(1, 3, 1, 16, 16)
    a = torch.randn(1, 6, 3)
    assert not torch.allclose(model.predict(ctx, 4, a), model.predict(ctx, 4, -a))


def test_cell_equations_match_direct_computation():
    torch.manual_seed(3)
    cin, hid, k = 2, 3, 3
    cell = SpatioTemporalCell(cin, hid, 5, 5, k, layer_norm=False).double()
    x, h, c, m = (torch.randn(2, n, 5, 5, dtype=torch.float64) for n in (cin, hid, hid, hid))
    wxh, wxm = cell.conv_xh.weight, cell.conv_xm.weight

    def conv(inp, w):
        return F.conv2d(inp, w, padding=k // 2)

    # Gate pre-activations written out per input, as in the paper's equations.
    ix, fx, gx, ox = conv(x, wxh[:, :cin]).chunk(4, 1)
    ih, fh, gh, oh = conv(h, wxh[:, cin:]).chunk(4, 1)
    ipx, fpx, gpx = conv(x, wxm[:, :cin]).chunk(3, 1)
    im, fm, gm = conv(m, wxm[:, cin:]).chunk(3, 1)
    s = torch.sigmoid
    c_new = s(fx + fh + 1) * c + s(ix + ih) * torch.tanh(gx + gh)
    m_new = s(fpx + fm + 1) * m + s(ipx + im) * torch.tanh(gpx + gm)
    mem = torch.cat([c_new, m_new], 1)
    o = s(ox + oh + conv(mem, cell.conv_o.weight))
    h_new = o * torch.tanh(F.conv2d(mem, cell.conv_last.weight))
    got = cell(x, h, c, m)
    for a, b in zip(got[:3], (h_new, c_new, m_new)):
        assert torch.allclose(a, b, atol=1e-12)
    assert torch.allclose(got[3], s(ix + ih) * torch.tanh(gx + gh), atol=1e-12)  # delta_c
    # None states are zeros.
    z = torch.zeros_like(h)
    for a, b in zip(cell(x, None, None, None), cell(x, z, z, z)):
        assert torch.allclose(a, b, atol=1e-12)


def test_patch_round_trip_and_reference_channel_order():
    p, c = 2, 3
    frames = torch.rand(2, 4, c, 8, 6)
    patched = patchify(frames, p)
    assert patched.shape == (2, 4, p * p * c, 4, 3)
    assert torch.equal(unpatchify(patched, p), frames)
    # channel (py * p + px) * C + ch of patch (y, x) holds pixel (y*p+py, x*p+px), colour ch
    for py in range(p):
        for px in range(p):
            for ch in range(c):
                got = patched[:, :, (py * p + px) * c + ch]
                assert torch.equal(got, frames[:, :, ch, py::p, px::p])


def test_decoupling_loss_zero_for_orthogonal_and_one_for_identical():
    cfg = tiny_config("predrnn_v2")
    model = build_model(cfg)
    torch.nn.init.eye_(model.adapter.weight.view(8, 8))  # identity adapter
    a = torch.zeros(2, 8, 4, 4)
    b = torch.zeros(2, 8, 4, 4)
    a[:, :, 0, 0] = 1.0
    b[:, :, 1, 1] = 2.0
    assert model._decoupling_loss([(a, b)]).item() == pytest.approx(0.0, abs=1e-7)
    r = torch.randn(2, 8, 4, 4)
    assert model._decoupling_loss([(r, r), (r, 3 * r)]).item() == pytest.approx(1.0, abs=1e-6)


def test_decoupling_loss_equals_the_adapted_cosine_and_its_gradient():
    """The Gram-matrix form gives the reference's mean |cos| of adapter outputs, and its gradient."""
    cfg = tiny_config("predrnn_v2")
    model = build_model(cfg).double()
    gen = torch.Generator().manual_seed(0)
    incs = [(torch.randn(3, 8, 4, 4, generator=gen, dtype=torch.float64, requires_grad=True),
             torch.randn(3, 8, 4, 4, generator=gen, dtype=torch.float64, requires_grad=True)) for _ in range(4)]
    incs.append((torch.zeros(3, 8, 4, 4, dtype=torch.float64, requires_grad=True), incs[0][1]))  # an all-zero increment

    def explicit(pairs):
        terms = []
        for dc, dm in pairs:
            a = F.normalize(model.adapter(dc).flatten(2), dim=2)
            b = F.normalize(model.adapter(dm).flatten(2), dim=2)
            terms.append(F.cosine_similarity(a, b, dim=2).abs().mean())
        return torch.stack(terms).mean()

    got, want = model._decoupling_loss(incs), explicit(incs)
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    g_got = torch.autograd.grad(got, [incs[1][0], model.adapter.weight])
    g_want = torch.autograd.grad(want, [incs[1][0], model.adapter.weight])
    for x, y in zip(g_got, g_want):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-12)
    assert torch.isfinite(torch.autograd.grad(model._decoupling_loss(incs), incs[-1][0])[0]).all()


def test_seeded_determinism_on_cpu():
    def run():
        torch.manual_seed(7)
        cfg = tiny_config("predrnn_v2")
        model = build_model(cfg)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        g = torch.Generator().manual_seed(7)
        for itr in range(1, 4):
            frames = torch.rand(2, 6, 1, 16, 16, generator=g)
            out = model(frames, curriculum_mask(cfg, CurriculumConfig(), itr, 2, generator=g))
            opt.zero_grad()
            out.loss.backward()
            opt.step()
        return [p.detach().clone() for p in model.parameters()]

    for a, b in zip(run(), run()):
        assert torch.equal(a, b)


def test_encode_once_rollout_many_equals_per_candidate_predict():
    cfg = tiny_config("action_cond_predrnn_v2")
    model = build_model(cfg).eval()
    ctx = torch.rand(1, 3, 1, 16, 16)
    past = torch.randn(1, 2, 3)
    cands = torch.randn(5, 4, 3)
    with torch.no_grad():
        state = model.encode(ctx, past)
        batched = model.rollout(state, 4, cands)
        for i in range(5):
            single = model.predict(ctx, 4, torch.cat([past, cands[i : i + 1]], 1))
            assert torch.allclose(batched[i : i + 1], single, atol=1e-5)


def test_channels_last_gives_same_result():
    cfg = tiny_config("predrnn_v2")
    model = build_model(cfg).eval()
    frames = torch.rand(2, 6, 1, 16, 16)
    mask = torch.ones(2, cfg.mask_steps())
    ref = model(frames, mask).frames
    model_cl = model.to(memory_format=torch.channels_last)
    assert torch.allclose(model_cl(frames, mask).frames, ref, atol=1e-5)


class TestErrors:
    def test_frames_not_5d(self):
        model = build_model(tiny_config())
        with pytest.raises(ShapeError, match="5-D"):
            model(torch.rand(6, 1, 16, 16), torch.ones(1, 4))

    def test_size_not_divisible_by_patch(self):
        with pytest.raises(ConfigError, match="divisible by patch_size"):
            tiny_config(img_width=15)
        model = build_model(tiny_config())
        with pytest.raises(ShapeError, match="divisible"):
            model(torch.rand(1, 6, 1, 15, 15), torch.ones(1, 4))

    def test_missing_actions(self):
        model = build_model(tiny_config("action_cond_predrnn"))
        with pytest.raises(ShapeError, match="action-conditioned"):
            model(torch.rand(1, 6, 1, 16, 16), torch.ones(1, 4))

    def test_wrong_mask_shape_names_the_rule(self):
        model = build_model(tiny_config("predrnn"))  # scheduled sampling: T-K-1 = 2
        with pytest.raises(ShapeError, match="T-K-1"):
            model(torch.rand(1, 6, 1, 16, 16), torch.ones(1, 4))

    def test_uint8_frames(self):
        model = build_model(tiny_config())
        with pytest.raises(ShapeError, match="float"):
            model(torch.zeros(1, 6, 1, 16, 16, dtype=torch.uint8), torch.ones(1, 4))

    def test_wrong_channels(self):
        model = build_model(tiny_config())
        with pytest.raises(ShapeError, match="img_channel"):
            model(torch.rand(1, 6, 3, 16, 16), torch.ones(1, 4))

    def test_bad_configs(self):
        with pytest.raises(ConfigError, match="Did you mean 'predrnn_v2'"):
            ModelConfig(name="predrnn-v2")
        with pytest.raises(ConfigError, match="equal"):
            ModelConfig(num_hidden=(64, 32))
        with pytest.raises(ConfigError, match="odd"):
            ModelConfig(filter_size=4)
        with pytest.raises(ConfigError, match="reverse_scheduled_sampling"):
            ModelConfig(name="action_cond_predrnn", reverse_scheduled_sampling=False, patch_size=1)


def test_model_config_is_frozen_and_round_trips():
    cfg = tiny_config("action_cond_predrnn_v2")
    with pytest.raises(Exception):
        cfg.num_hidden = (4,)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert ModelConfig.from_dict({"num_hidden": "64,64"}).num_hidden == (64, 64)
    with pytest.raises(ConfigError, match="Did you mean 'num_hidden'"):
        ModelConfig.from_dict({"num_hiden": [4]})
    assert math.isclose(cfg.decouple_beta, 0.1)


@pytest.mark.parametrize("name,conv_on_input", [("action_cond_predrnn_v2", True), ("action_cond_predrnn_v2", False),
                                                ("predrnn_v2", False)])
def test_residual_output_copies_the_frame_when_the_decoder_says_no_change(name, conv_on_input):
    cfg = tiny_config(name, residual_output=True, conv_on_input=conv_on_input, res_on_conv=conv_on_input)
    model = build_model(cfg).eval()
    last = "deconv_output2" if cfg.is_action and conv_on_input else "conv_last"
    with torch.no_grad():
        getattr(model, last).weight.zero_()
        ctx = torch.rand(2, 3, 1, 16, 16)
        actions = torch.randn(2, 6, 3) if cfg.is_action else None
        pred = model.predict(ctx, 3, actions)
    assert torch.allclose(pred, ctx[:, -1:].expand_as(pred), atol=1e-6)
    # without the flag the same zeroed decoder predicts black frames: the flag is what copies
    plain = build_model(tiny_config(name, conv_on_input=conv_on_input, res_on_conv=conv_on_input)).eval()
    with torch.no_grad():
        getattr(plain, last).weight.zero_()
        assert plain.predict(ctx, 3, actions).abs().max() == 0


def test_residual_output_has_no_reference_export():
    from mbvc.errors import CheckpointError
    from mbvc.models.reference import export_reference_state_dict

    model = build_model(tiny_config("action_cond_predrnn_v2", residual_output=True))
    with pytest.raises(CheckpointError, match="residual_output"):
        export_reference_state_dict(model)
