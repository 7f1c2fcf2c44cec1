"""The WorldModel interface and the model-family registry: a family that is not PredRNN trains,
validates, exports and reloads through the same code paths, and unknown names fail clearly."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from mbvc.errors import ConfigError
from mbvc.models import (
    ModelConfig,
    WorldModel,
    build_model,
    load_model,
    model_config_from_dict,
    model_families,
    register_model_family,
)
from mbvc.models.base import _FAMILIES


@dataclass(frozen=True)
class LinearConfig:
    """A toy family: the next frame is a per-pixel affine map of the last one."""

    name: str = "linear_toy"
    img_channel: int = 1
    img_width: int = 8
    img_height: int = 8
    input_length: int = 2
    total_length: int = 4
    is_action: bool = False
    num_action_ch: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LinearConfig:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown key {sorted(unknown)[0]!r}")
        return cls(**d)


class LinearWorldModel(WorldModel, nn.Module):
    def __init__(self, config: LinearConfig) -> None:
        super().__init__()
        self.config = config
        self.map = nn.Conv2d(config.img_channel, config.img_channel, 1)
        self.seen_steps: list[int] = []

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        return self.map(frames.flatten(0, 1)).view(b, t, *frames.shape[2:])

    def training_loss(self, batch, step):
        self.seen_steps.append(step)
        frames = batch["frames"][:, : self.config.total_length]
        mse = nn.functional.mse_loss(self(frames[:, :-1]), frames[:, 1:])
        return mse, {"mse": mse}

    def encode(self, context, actions=None):
        return context[:, -1]

    def rollout(self, state, n_future, actions=None):
        frames = []
        for _ in range(n_future):
            state = self(state[:, None])[:, 0]
            frames.append(state)
        return torch.stack(frames, dim=1)

    @torch.no_grad()
    def predict(self, context, n_future, actions=None):
        return self.rollout(self.encode(context), n_future)


@pytest.fixture
def toy_family():
    register_model_family("linear_toy", LinearConfig, LinearWorldModel)
    yield
    _FAMILIES.pop("linear_toy")


class Sequences(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"frames": torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(i))}


def test_predrnn_names_are_registered_families():
    assert {"predrnn", "predrnn_v2", "action_cond_predrnn", "action_cond_predrnn_v2"} <= set(model_families())
    cfg = model_config_from_dict({"name": "predrnn", "num_hidden": [4], "img_width": 8, "patch_size": 2})
    assert isinstance(cfg, ModelConfig) and isinstance(build_model(cfg), WorldModel)


def test_unknown_family_is_one_line_with_did_you_mean():
    with pytest.raises(ConfigError, match=r"unknown model name 'predrnn_v3'.*Did you mean 'predrnn_v2'\?"):
        model_config_from_dict({"name": "predrnn_v3"})


def test_interface_requires_the_inference_methods():
    class Half(WorldModel, nn.Module):
        def training_loss(self, batch, step):
            return torch.zeros(()), {}

    with pytest.raises(TypeError, match="abstract"):
        Half()


def test_trainer_trains_validates_and_exports_another_family(tmp_path, toy_family):
    from mbvc.evaluation import EvalConfig
    from mbvc.training import TrainConfig, Trainer

    cfg = TrainConfig(iterations=6, batch_size=4, lr=1e-2, progress=False, tensorboard=False,
                      eval_interval=3, checkpoint_interval=3, log_interval=1)
    model = build_model(LinearConfig())
    before = model.map.weight.detach().clone()
    trainer = Trainer(model, cfg, Sequences(), tmp_path, val_set=Sequences(),
                      eval_settings=EvalConfig(context=2, horizon=3, batch_size=4, lpips=False, val_batches=1))
    result = trainer.fit()
    assert model.seen_steps == [1, 2, 3, 4, 5, 6]  # one update per iteration: the default
    assert result.iteration == 6 and len(result.losses) == 6
    assert not torch.equal(model.map.weight, before)
    assert {"eval/mse", "eval_copy_last/mse"} <= set(result.last_eval)
    loaded = load_model(result.model_path)  # the file names its family; the registry rebuilds it
    assert isinstance(loaded, LinearWorldModel)
    torch.testing.assert_close(loaded.map.weight, model.map.weight)
