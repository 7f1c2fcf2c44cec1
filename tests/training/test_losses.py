"""The extra loss terms (motion-weighted MSE, L1): what they measure, and that the trainer adds them when asked."""
from __future__ import annotations

import pytest
import torch

from mbvc.errors import ConfigError
from mbvc.training import build_trainer, prepare_run_dir
from mbvc.models.losses import l1_error, motion_weighted_mse

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


@pytest.mark.parametrize("name", ["motion_weight", "l1_weight"])
def test_negative_extra_loss_weights_are_refused(name):
    with pytest.raises(ConfigError, match=f"train.{name}"):
        tiny_config(f"train.{name}=-1")
