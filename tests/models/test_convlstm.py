"""ConvLSTM family: shapes, gradients, the cell's equations, encode-once rollouts, files, training."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mbvc.config import load_run_config
from mbvc.errors import ShapeError
from mbvc.models import ConvLSTM, CurriculumConfig, build_model, curriculum_mask, load_model, save_model
from mbvc.models.convlstm import ConvLSTMCell
from tests.models.conftest import tiny_config

NAMES = ["convlstm", "action_cond_convlstm"]


def _inputs(cfg, b=2):
    frames = torch.rand(b, cfg.total_length, cfg.img_channel, cfg.img_height, cfg.img_width)
    actions = torch.randn(b, cfg.total_length, cfg.num_action_ch) if cfg.is_action else None
    return frames, curriculum_mask(cfg, CurriculumConfig(), 1, b), actions


@pytest.mark.parametrize("name,reverse", [("convlstm", False), ("convlstm", True), ("action_cond_convlstm", True)])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_shapes_and_gradients_reach_every_parameter(name, layer_norm, reverse):
    cfg = tiny_config(name, layer_norm=layer_norm, img_channel=3, reverse_scheduled_sampling=reverse)
    model = build_model(cfg)
    assert isinstance(model, ConvLSTM)
    frames, mask, actions = _inputs(cfg)
    assert mask.shape == (2, cfg.mask_steps())
    out = model(frames, mask, actions)
    assert out.frames.shape == (2, cfg.total_length - 1, 3, 16, 16)
    assert float(out.decouple) == 0 and torch.equal(out.loss, out.mse)
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_cell_equations_match_direct_computation():
    cell = ConvLSTMCell(3, 4, 8, 8, 3, layer_norm=False)
    x, h, c = torch.randn(2, 3, 8, 8), torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    i, f, g, o = F.conv2d(torch.cat((x, h), 1), cell.conv_xh.weight, padding=1).chunk(4, 1)
    c_new = torch.sigmoid(f + 1.0) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.sigmoid(o) * torch.tanh(c_new)
    hh, cc, m, _, _ = cell(x, h, c, None)
    torch.testing.assert_close((hh, cc), (h_new, c_new))
    assert m is None
    # A None state means zeros.
    torch.testing.assert_close(cell(x, None, None, None)[:2], cell(x, torch.zeros_like(h), torch.zeros_like(c), None)[:2])


@pytest.mark.parametrize("name", NAMES)
def test_encode_once_rollout_equals_step_by_step_prediction(name):
    cfg = tiny_config(name)
    model = build_model(cfg).eval()
    frames, _, actions = _inputs(cfg, b=3)
    k, n = cfg.input_length, 4
    context = frames[:, :k]
    with torch.no_grad():
        acts = None if actions is None else actions[:, : k - 1 + n]
        full = model.predict(context, n, acts)
        state = model.encode(context, None if acts is None else acts[:, : k - 1])
        assert state.m is None
        rolled = model.rollout(state, n, None if acts is None else acts[:, k - 1:])
        # Step by step: predict one frame at a time, feeding each prediction back as context.
        seq, steps = context, []
        for t in range(n):
            step_acts = None if acts is None else acts[:, : seq.shape[1]]
            nxt = model.predict(seq, 1, step_acts)
            steps.append(nxt)
            seq = torch.cat([seq, nxt], dim=1)
    torch.testing.assert_close(rolled, full)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-6)


def test_one_state_broadcasts_to_many_action_sequences():
    cfg = tiny_config("action_cond_convlstm")
    model = build_model(cfg).eval()
    frames, _, _ = _inputs(cfg, b=1)
    candidates = torch.randn(5, 3, cfg.num_action_ch)
    with torch.no_grad():
        state = model.encode(frames[:, : cfg.input_length], torch.zeros(1, cfg.input_length - 1, 3))
        many = model.rollout(state, 3, candidates)
        one = model.rollout(state, 3, candidates[2:3])
    assert many.shape == (5, 3, 1, 16, 16)
    torch.testing.assert_close(many[2:3], one)
    assert not torch.allclose(many[0], many[1])  # the actions matter


def test_missing_actions_is_a_shape_error():
    model = build_model(tiny_config("action_cond_convlstm"))
    with pytest.raises(ShapeError, match="action-conditioned"):
        model.predict(torch.rand(1, 3, 1, 16, 16), 2)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, tmp_path):
    cfg = tiny_config(name)
    model = build_model(cfg).eval()
    path = save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(path).eval()
    assert isinstance(loaded, ConvLSTM) and loaded.config == cfg
    frames, _, actions = _inputs(cfg)
    acts = None if actions is None else actions[:, : cfg.input_length - 1 + 2]
    torch.testing.assert_close(loaded.predict(frames[:, :3], 2, acts), model.predict(frames[:, :3], 2, acts))


def test_presets_build_convlstm():
    for preset, name in (("mnist-convlstm-small", "convlstm"), ("mnist-convlstm", "convlstm"),
                         ("push-convlstm-small", "action_cond_convlstm")):
        assert load_run_config(preset).model.name == name


def test_a_few_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    cfg = tiny_config("convlstm", reverse_scheduled_sampling=False)
    model = build_model(cfg)
    # A learnable sequence: a bright square moving one patch per step.
    frames = torch.zeros(4, cfg.total_length, 1, 16, 16)
    for t in range(cfg.total_length):
        frames[:, t, :, 4:8, 2 * t: 2 * t + 4] = 1.0
    mask = curriculum_mask(cfg, CurriculumConfig(), 1, 4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = model(frames, mask).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_mbvc_train_and_test_run_a_convlstm_preset(tmp_path, capsys):
    """The command line trains (scheduled sampling curriculum) and scores a ConvLSTM preset."""
    import json

    from mbvc.cli import main
    from tests.training.conftest import tiny_cli_args

    torch.set_num_threads(1)
    run = tmp_path / "run"
    args = tiny_cli_args("train.iterations=2", "train.checkpoint_interval=2")
    assert main(["train", "mnist-convlstm-small", "--run-dir", str(run), *args]) == 0
    assert isinstance(load_model(run / "model.safetensors"), ConvLSTM)
    assert main(["test", str(run), "--no-lpips", "-o", str(tmp_path / "report")]) == 0
    figures = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert figures["config"]["model"]["name"] == "convlstm"
    assert set(figures["methods"]) == {"model", "copy_last", "mean_frame"}
