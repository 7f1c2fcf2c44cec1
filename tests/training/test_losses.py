"""The extra loss terms (motion-weighted MSE, L1): what they measure, and that the trainer adds them when asked."""
from __future__ import annotations

import pytest
import torch

from mbvc.errors import ConfigError
from mbvc.training import build_trainer, prepare_run_dir
from mbvc.models.losses import colour_centroid_error, l1_error, motion_weighted_mse

from .conftest import tiny_config


def test_motion_weighted_mse_weighs_only_pixels_that_change():
    frames = torch.zeros(1, 2, 3, 4, 4)
    frames[0, 1, 0, 1, 1] = 0.5  # one pixel moves (changes by 0.5 in one channel)
    target = frames[:, 1:]
    static_error = target.clone()
    static_error[0, 0, :, 3, 3] += 0.3  # a wrong static pixel: weight 0
    assert motion_weighted_mse(static_error, frames).item() == 0.0
    moving_error = target.clone()
    moving_error[0, 0, 0, 1, 1] = 0.0  # the moving pixel predicted as it was (the motion missed)
    expected = 0.5 * 0.5 ** 2 / (3 * 4 * 4)  # weight 0.5 x squared error, mean over C, H, W
    assert motion_weighted_mse(moving_error, frames).item() == pytest.approx(expected)
    assert motion_weighted_mse(target, frames).item() == 0.0


def test_trainer_adds_the_motion_term_to_the_loss(tmp_path):
    over = ("train.iterations=1", "train.eval_interval=0", "train.reverse_input=false")
    plain = tiny_config(*over)
    weighted = tiny_config(*over, "train.motion_weight=100")
    losses = [build_trainer(c, prepare_run_dir(tmp_path / str(i), c, resume=False)).fit().losses[0]
              for i, c in enumerate((plain, weighted))]
    assert losses[1] > losses[0]  # same seed, same batch: only the extra term differs


def test_trainer_adds_the_l1_term_to_the_loss(tmp_path):
    frames = torch.zeros(1, 3, 3, 4, 4)
    pred = torch.full((1, 2, 3, 4, 4), 0.25)
    assert l1_error(pred, frames).item() == pytest.approx(0.25)
    over = ("train.iterations=1", "train.eval_interval=0", "train.reverse_input=false")
    losses = [build_trainer(c, prepare_run_dir(tmp_path / str(i), c, resume=False)).fit().losses[0]
              for i, c in enumerate((tiny_config(*over), tiny_config(*over, "train.l1_weight=10")))]
    assert losses[1] > losses[0] + 0.1  # same seed, same batch: 10 x the mean absolute error on top


def test_colour_centroid_error_measures_how_far_a_prediction_lags():
    red, floor = torch.tensor([0.83, 0.17, 0.14]), torch.tensor([0.69, 0.56, 0.42])
    frames = floor[None, None, :, None, None].repeat(1, 3, 1, 32, 32)
    frames[0, 1, :, 10:13, 10:13] = red[:, None, None]
    frames[0, 2, :, 10:13, 14:17] = red[:, None, None]  # the block moved 4 px right
    colour = tuple(red.tolist())
    assert colour_centroid_error(frames[:, 1:], frames, colour).item() == pytest.approx(0.0, abs=1e-9)
    lagging = frames[:, 1:].clone()
    lagging[0, 1] = frames[0, 1]  # the prediction left the block where it was
    assert colour_centroid_error(lagging, frames, colour).item() == pytest.approx((4 / 32) ** 2 / 2, rel=1e-3)
    faded = frames[:, 1:].clone()
    faded[0, 1] = 0.5 * frames[0, 1] + 0.5 * frames[0, 2]  # half at each place: half the lag
    assert colour_centroid_error(faded, frames, colour).item() == pytest.approx((2 / 32) ** 2 / 2, rel=0.05)
    erased = frames[:, 1:].clone()
    erased[0, 1] = floor[:, None, None]  # no block at all: its centroid falls to the corner
    assert colour_centroid_error(erased, frames, colour) > colour_centroid_error(lagging, frames, colour)


def test_centroid_weight_needs_an_rgb_colour_and_the_model_adds_the_term():
    import dataclasses

    from mbvc.models import ModelConfig, build_model
    from mbvc.training.config import TrainConfig

    with pytest.raises(ConfigError, match="centroid_colour"):
        tiny_config("train.centroid_weight=1")
    model = build_model(ModelConfig(name="action_cond_predrnn_v2", num_hidden=(8,), filter_size=3, patch_size=1,
                                    img_channel=3, img_width=16, input_length=2, total_length=5, num_action_ch=2))
    red = [0.83, 0.17, 0.14]
    frames = torch.rand(2, 5, 3, 16, 16) * 0.3
    frames[:, :, :, 4:7, 4:7] = torch.tensor(red)[:, None, None]
    batch = {"frames": frames, "actions": torch.rand(2, 5, 2), "mask": torch.ones(2, 3)}
    plain = TrainConfig()
    losses = []
    for cfg in (plain, dataclasses.replace(plain, centroid_weight=1.0, centroid_colour=tuple(red))):
        model.setup_training(cfg, batch_size=2)
        losses.append(model.training_loss(batch, 0)[0].item())
    assert losses[1] > losses[0]  # same weights, same batch: the untrained model misplaces the block
    grey = build_model(ModelConfig(name="predrnn_v2", num_hidden=(8,), filter_size=3, patch_size=1, img_channel=1,
                                   img_width=8, input_length=2, total_length=4))
    with pytest.raises(ConfigError, match="3 channels"):
        grey.setup_training(dataclasses.replace(plain, centroid_weight=1.0, centroid_colour=tuple(red)), batch_size=2)


@pytest.mark.parametrize("name", ["motion_weight", "l1_weight", "centroid_weight"])
def test_negative_extra_loss_weights_are_refused(name):
    with pytest.raises(ConfigError, match=f"train.{name}"):
        tiny_config(f"train.{name}=-1")
