"""The state readout (``model.state_targets``): privileged simulator state as an auxiliary target."""
from __future__ import annotations

import pytest
import torch

from mbvc.errors import ConfigError, DataError
from mbvc.models import build_model, load_model, save_model
from mbvc.models.config import ModelConfig
from mbvc.models.curriculum import CurriculumConfig
from tests.models.conftest import tiny_config


pytestmark = pytest.mark.usefixtures("one_thread")


def _squares(b: int, gen: torch.Generator, t: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 2x2 square moved by the actions on 16x16 frames; states = (x, y, x + y) of its corner."""
    frames = torch.zeros(b, t, 1, 16, 16)
    actions = torch.randint(-1, 2, (b, t, 2), generator=gen).float()
    pos = torch.randint(4, 10, (b, 2), generator=gen)
    states = torch.zeros(b, t, 3)
    for i in range(b):
        x, y = pos[i].tolist()
        for k in range(t):
            frames[i, k, 0, y:y + 2, x:x + 2] = 1.0
            states[i, k] = torch.tensor([x, y, x + y], dtype=torch.float32) / 16
            x, y = x + int(actions[i, k, 0]), y + int(actions[i, k, 1])
    return frames, actions, states


def _config(**kw) -> ModelConfig:
    return tiny_config("action_cond_predrnn_v2", **{"num_action_ch": 2, "input_length": 2, "total_length": 6,
                                                    "patch_size": 1, "state_targets": (0, 1), "state_weight": 10.0,
                                                    **kw})


def test_the_readout_learns_the_state_and_joins_the_loss():
    torch.manual_seed(0)
    cfg = _config()
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    mask = torch.ones(16, cfg.mask_steps())
    first = None
    for _ in range(80):
        frames, actions, states = _squares(16, gen)
        out = model(frames, mask, actions, states=states)
        assert torch.allclose(out.loss, out.mse + cfg.decouple_beta * out.decouple + cfg.state_weight * out.state)
        first = out.state.item() if first is None else first
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    frames, actions, states = _squares(32, torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, extras = model.rollout(model.encode(frames[:, :2], actions[:, :1]), 4, actions[:, 1:5], states=True)
    err = (extras["states"] - states[:, 2:6, :2]).abs().mean().item()
    spread = (states[:, 2:6, :2] - states[:, 2:6, :2].mean(dim=(0, 1))).abs().mean().item()
    assert extras["states"].shape == (32, 4, 2)
    assert err < 0.5 * spread, (err, spread)  # well below the error of predicting the mean
    assert out.state.item() < 0.2 * first


def test_without_states_or_targets_the_loss_is_the_frames_alone():
    torch.manual_seed(0)
    with_readout = build_model(_config())
    torch.manual_seed(0)
    plain = build_model(_config(state_targets=()))
    assert not any(k.startswith("state_readout") for k in plain.state_dict())
    with_readout.load_state_dict({**plain.state_dict(), **{k: v for k, v in with_readout.state_dict().items()
                                                           if k.startswith("state_readout")}})
    frames, actions, _ = _squares(4, torch.Generator().manual_seed(0))
    mask = torch.ones(4, _config().mask_steps())
    a, b = with_readout(frames, mask, actions), plain(frames, mask, actions)
    assert a.state is None and torch.equal(a.loss, b.loss)


def test_training_refuses_data_without_the_states_in_one_line():
    model = build_model(_config(state_targets=(0, 5)))
    model.setup_training(type("T", (), {"curriculum": CurriculumConfig(), "seed": 0, "reverse_input": False})(),
                         batch_size=2)
    frames, actions, states = _squares(2, torch.Generator().manual_seed(0))
    with pytest.raises(DataError, match="needs the training data's 'states'") as info:
        model.training_updates({"frames": frames, "actions": actions}, 0)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="indexes entry 5 but the data's states have 3 entries"):
        model.training_updates({"frames": frames, "actions": actions, "states": states}, 0)
    ok = build_model(_config())
    ok.setup_training(type("T", (), {"curriculum": CurriculumConfig(), "seed": 0, "reverse_input": False})(),
                      batch_size=2)
    update, = ok.training_updates({"frames": frames, "actions": actions, "states": states}, 0)
    loss, parts = ok.training_loss(update, 0)
    assert set(parts) == {"mse", "decouple", "state"} and torch.isfinite(loss)


def test_model_file_round_trip_and_rollout_without_a_readout_is_refused(tmp_path):
    model = build_model(_config()).eval()
    loaded = load_model(save_model(model, tmp_path / "m.safetensors")).eval()
    assert loaded.config.state_targets == (0, 1)
    frames, actions, _ = _squares(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = model.rollout(model.encode(frames[:, :2], actions[:, :1]), 3, actions[:, 1:4], states=True)[1]["states"]
        b = loaded.rollout(loaded.encode(frames[:, :2], actions[:, :1]), 3, actions[:, 1:4], states=True)[1]["states"]
    assert torch.equal(a, b)
    plain = build_model(_config(state_targets=()))
    with pytest.raises(ConfigError, match="no model.state_targets"):
        plain.rollout(plain.encode(frames[:, :2], actions[:, :1]), 3, actions[:, 1:4], states=True)


@pytest.mark.parametrize("kw, match", [
    (dict(state_targets=(-1,)), "state_targets must list indices >= 0"),
    (dict(state_targets=(1, 1)), "lists an index twice"),
    (dict(state_targets="01"), "state_targets must list indices"),
    (dict(state_targets=(True,)), "state_targets must list indices"),
    (dict(state_weight=-1.0), "state_weight must be a finite number >= 0"),
    (dict(state_weight=float("nan")), "state_weight must be a finite number >= 0"),
])
def test_config_errors_are_one_line(kw, match):
    with pytest.raises(ConfigError, match=match) as info:
        tiny_config("action_cond_predrnn_v2", **kw)
    assert "\n" not in str(info.value)


def test_config_round_trips_through_a_dict():
    cfg = _config()
    again = ModelConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.state_targets == (0, 1)
    assert ModelConfig.from_dict({**cfg.to_dict(), "state_targets": [4, 5]}).state_targets == (4, 5)
