"""The training loop: the loss falls, a killed run resumes to the same weights, NaN stops the run."""
from __future__ import annotations

import logging
import math
import random

import numpy as np
import pytest
import torch

from mbvc.errors import CheckpointError
from mbvc.models import load_model
from mbvc.training import TrainingDivergedError, build_trainer, prepare_run_dir
from mbvc.training.checkpoint import load_checkpoint
from mbvc.training.logger import read_jsonl

from .conftest import tiny_config


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_training_loss_falls_on_tiny_moving_mnist(tmp_path):
    cfg = tiny_config("train.iterations=50", "train.lr_schedule=constant", "train.lr=1e-2")
    trainer = build_trainer(cfg, prepare_run_dir(tmp_path / "run", cfg, resume=False))
    result = trainer.fit()
    first, last = np.mean(result.losses[:5]), np.mean(result.losses[-5:])
    assert last < 0.7 * first, (first, last)
    assert result.model_path is not None and result.model_path.is_file()
    model = load_model(result.model_path)  # the exported file alone rebuilds the model
    assert model.config == cfg.model


def test_killed_run_resumes_to_identical_weights(tmp_path, monkeypatch):
    over = ("train.iterations=6", "data.train_size=8", "train.checkpoint_interval=2",  # 3 epochs
            "train.reverse_input=true", "train.lr_schedule=cosine", "train.warmup_iters=2", "train.grad_clip=0.5",
            "train.eval_interval=3")
    cfg = tiny_config(*over)
    full = build_trainer(cfg, prepare_run_dir(tmp_path / "full", cfg, resume=False))
    reference = full.fit()
    expected = _weights(full.model)

    run = prepare_run_dir(tmp_path / "killed", cfg, resume=False)
    killed = build_trainer(cfg, run)
    original_step = killed.step

    def dying_step():
        if killed.iteration == 5:  # iteration 5 starts after ckpt 4; its work is lost
            raise KeyboardInterrupt
        return original_step()

    monkeypatch.setattr(killed, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    # A fresh process: other global RNG states, a new trainer.
    torch.manual_seed(1234), np.random.seed(99), random.seed(7)
    resumed = build_trainer(cfg, run, resume=True)
    result = resumed.fit(resume=True)
    assert result.iteration == 6
    got = _weights(resumed.model)
    for k in expected:
        assert torch.equal(got[k], expected[k]), k
    assert result.losses == reference.losses[-len(result.losses):]
    assert load_checkpoint(run / "checkpoints" / "ckpt-00000006.pt")["iteration"] == 6


def test_checkpoints_keep_last_k_and_best(tmp_path):
    cfg = tiny_config("train.iterations=6", "train.checkpoint_interval=1", "train.keep_last=2",
                      "train.eval_interval=2")
    run = prepare_run_dir(tmp_path / "run", cfg, resume=False)
    trainer = build_trainer(cfg, run)
    result = trainer.fit()
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["best.pt", "ckpt-00000005.pt", "ckpt-00000006.pt"]
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["best"]["iteration"] in (2, 4, 6) and result.best == best["best"]
    assert (run / "best.safetensors").is_file()
    assert "config" in best and "model:" in best["config"]  # resolved config in every checkpoint
    rows = read_jsonl(run / "metrics.jsonl")
    assert {"train/loss", "train/mse", "train/decouple"} <= set(rows[0])
    assert any("eval/mse" in r and "eval_copy_last/mse" in r for r in rows)


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = tiny_config("train.iterations=8", "train.checkpoint_interval=2")
    run = prepare_run_dir(tmp_path / "run", cfg, resume=False)
    trainer = build_trainer(cfg, run)
    forward = trainer.model.forward

    def poisoned(*args, **kwargs):
        out = forward(*args, **kwargs)
        return out._replace(loss=out.loss * float("nan")) if trainer.iteration >= 5 else out

    trainer.model.forward = poisoned
    with pytest.raises(TrainingDivergedError, match=r"iteration 5: loss nan.*ckpt-00000004\.pt"):
        trainer.fit()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-00000002.pt", "ckpt-00000004.pt"]
    assert not (run / "model.safetensors").exists()
    state = load_checkpoint(run / "checkpoints" / "ckpt-00000004.pt")
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_action_models_never_time_reverse(tmp_path, caplog):
    cfg = tiny_config("train.iterations=2", "train.reverse_input=true", preset="push-predrnn-v2-small")
    assert cfg.model.is_action
    from mbvc.training import Trainer

    class Pushes(torch.utils.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return {"frames": torch.rand(6, 3, 32, 32, generator=g), "actions": torch.rand(6, 2, generator=g)}

    from mbvc.models import build_model

    model = build_model(cfg.model.replace(img_width=32, img_height=32, num_hidden=(4, 4)))
    calls = []
    forward = model.forward

    def spy(frames, mask, actions=None, **kw):
        calls.append(actions is not None)
        return forward(frames, mask, actions, **kw)

    model.forward = spy
    with caplog.at_level(logging.INFO):
        trainer = Trainer(model, cfg.train, Pushes(), tmp_path)
        trainer.fit()
    assert "reverse_input skipped" in caplog.text
    assert calls == [True, True]  # one optimiser step per iteration, always with actions


def test_resume_refuses_another_model(tmp_path):
    cfg = tiny_config("train.iterations=2", "train.checkpoint_interval=1")
    run = prepare_run_dir(tmp_path / "run", cfg, resume=False)
    build_trainer(cfg, run).fit()
    other = tiny_config("train.iterations=4", "model.num_hidden=[8,8]")
    with pytest.raises(CheckpointError, match="another model.*num_hidden"):
        build_trainer(other, run, resume=True).fit(resume=True)


def test_a_checkpoint_of_an_older_mbvc_resumes(tmp_path):
    """Its model config still holds the keys of removed options (``views``, ``encoder_downsample``)."""
    cfg = tiny_config("train.iterations=2", "train.checkpoint_interval=1")
    run = prepare_run_dir(tmp_path / "run", cfg, resume=False)
    trainer = build_trainer(cfg, run)
    trainer.fit()
    state = trainer.state_dict()
    state["model_config"] = {**state["model_config"], "views": 1, "encoder_downsample": 4}
    again = build_trainer(tiny_config("train.iterations=4"), run, resume=True)
    again.load_state_dict(state)
    assert again.iteration == 2


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    # A finite loss followed by an update that leaves NaN weights (no clipping to catch it):
    # the checkpoint due at that iteration must not be written.
    cfg = tiny_config("train.iterations=8", "train.checkpoint_interval=2", "train.grad_clip=0")
    run = prepare_run_dir(tmp_path / "run", cfg, resume=False)
    trainer = build_trainer(cfg, run)

    def poison(optimizer, args, kwargs):
        if trainer.iteration == 4:
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))

    trainer.optimizer.register_step_post_hook(poison)
    with pytest.raises(TrainingDivergedError, match=r"iteration 4: non-finite weights.*ckpt-00000002\.pt"):
        trainer.fit()
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["ckpt-00000002.pt"]


class _LongActionClips(torch.utils.data.Dataset):
    """30-frame clips with actions, like BAIR's test sequences."""

    def __init__(self, n: int, length: int = 30) -> None:
        self.n, self.length = n, length

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {"frames": torch.rand(self.length, 3, 32, 32, generator=g),
                "actions": torch.rand(self.length, 4, generator=g)}


@pytest.mark.parametrize("preset", ["bair-predrnn-small", "bair-predrnn-v2-small"])
def test_bair_validates_2_to_28_whatever_the_training_length(tmp_path, preset):
    cfg = tiny_config("model.input_length=2", "model.total_length=4", "eval.horizon=28",
                      "train.iterations=2", "train.eval_interval=2", preset=preset)
    assert (cfg.eval.context, cfg.eval.horizon, cfg.model.total_length) == (2, 28, 4)
    from mbvc.models import build_model
    from mbvc.training import Trainer

    model = build_model(cfg.model.replace(img_width=32, img_height=32))
    trainer = Trainer(model, cfg.train, _LongActionClips(8), tmp_path, val_set=_LongActionClips(4),
                      eval_settings=cfg.eval)
    result = trainer.fit()
    assert math.isfinite(result.last_eval["eval/mse"]) and "eval_copy_last/mse" in result.last_eval
    from mbvc.evaluation import evaluate

    scored = evaluate(trainer.model, trainer.val_loader, cfg.eval)
    assert scored.num_sequences == 4 and len(scored.per_frame["model"]["mse"]) == 28


def _tb_events(folder):
    """(scalar tags, image tags) of the TensorBoard event files under ``folder`` (TFRecord framing read directly)."""
    import struct

    from tensorboard.compat.proto import event_pb2

    scalars, images = set(), set()
    for path in folder.rglob("events.out.tfevents*"):
        data, pos = path.read_bytes(), 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos: pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12: pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                (images if value.HasField("image") else scalars).add(value.tag)
    return scalars, images


def test_tensorboard_gets_scalars_and_sample_strips(tmp_path):
    cfg = tiny_config("train.iterations=2", "train.eval_interval=2", "train.tensorboard=true")
    run = prepare_run_dir(tmp_path / "run", cfg, resume=False)
    trainer = build_trainer(cfg, run)
    trainer.fit()
    trainer.logger.close()
    scalars, images = _tb_events(run / "tb")
    assert {"train/loss", "train/mse", "train/decouple", "train/lr", "time/it_per_s", "eval/mse", "eval/ssim",
            "eval_copy_last/mse", "eval_mean_frame/mse"} <= scalars
    assert images == {"eval/samples"}


def test_progress_bar_shows_loss_parts_speed_and_eta(tmp_path, capsys):
    cfg = tiny_config("train.iterations=3", "train.progress=true")
    build_trainer(cfg, prepare_run_dir(tmp_path / "run", cfg, resume=False)).fit()
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    # e.g. "train: 100%|####| 3/3 [00:00<00:00, 9.1it/s, loss=0.07, mse=0.07, dec=0.002]"
    assert "3/3" in bar and "<" in bar and ("it/s" in bar or "s/it" in bar), bar
    assert all(f"{part}=" in bar for part in ("loss", "mse", "dec")), bar


def test_channels_last_trains_to_the_same_losses(tmp_path):
    over = ("train.iterations=3", "train.reverse_input=false")
    plain = build_trainer(cfg := tiny_config(*over), prepare_run_dir(tmp_path / "a", cfg, resume=False)).fit()
    cfg_cl = tiny_config(*over, "train.channels_last=true")
    trainer = build_trainer(cfg_cl, prepare_run_dir(tmp_path / "b", cfg_cl, resume=False))
    assert trainer.model.cell_list[0].conv_o.weight.is_contiguous(memory_format=torch.channels_last)
    fast = trainer.fit()
    np.testing.assert_allclose(fast.losses, plain.losses, rtol=1e-4)
