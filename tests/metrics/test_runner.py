"""Evaluation runner: every sequence counted, baselines, LPIPS availability, model mode."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from mbvc.errors import ConfigError, DataError, ShapeError
from mbvc.evaluation import EvalConfig, copy_last_frame, evaluate, mean_frame
from mbvc.metrics import pixel_metrics
from mbvc.metrics.lpips import ALEXNET_FILE, LIN_FILE
from tests.metrics.fakes import FakeModel, SequenceSet


def expected_means(frames: torch.Tensor, pred: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v.mean(dim=0) for k, v in pixel_metrics(pred, frames).items()}


def test_counts_every_sequence_with_ragged_last_batch() -> None:
    data = SequenceSet(10)
    model = FakeModel()
    result = evaluate(model, DataLoader(data, batch_size=4), EvalConfig(context=3, horizon=3, lpips=False))
    assert result.num_sequences == 10
    assert [c["batch"] for c in model.calls] == [4, 4, 2]
    frames = data.frames
    want = expected_means(frames[:, 3:], (frames[:, 2:3] * 0.9).repeat(1, 3, 1, 1, 1))
    for metric, values in want.items():
        torch.testing.assert_close(torch.tensor(result.per_frame["model"][metric], dtype=torch.float64), values)
    assert "lpips" not in result.per_frame["model"]


def test_baselines_scored_on_same_data() -> None:
    data = SequenceSet(7)
    cfg = EvalConfig(context=3, horizon=2, lpips=False)
    result = evaluate(FakeModel(gain=1.0), DataLoader(data, batch_size=3), cfg)
    frames = data.frames[:, :5]
    context, target = frames[:, :3], frames[:, 3:]
    for name, fn in (("copy_last", copy_last_frame), ("mean_frame", mean_frame)):
        want = expected_means(target, fn(context, 2))
        got = torch.tensor(result.per_frame[name]["mse"], dtype=torch.float64)
        torch.testing.assert_close(got, want["mse"])
    # A gain of 1 makes the model the copy-last baseline.
    assert result.per_frame["model"] == result.per_frame["copy_last"]
    assert result.methods == ["model", "copy_last", "mean_frame"]


def test_baseline_functions() -> None:
    context = torch.arange(3.0).view(1, 3, 1, 1, 1).expand(1, 3, 1, 2, 2)
    assert torch.all(copy_last_frame(context, 4) == 2.0) and copy_last_frame(context, 4).shape[1] == 4
    assert torch.all(mean_frame(context, 2) == 1.0)


def test_no_grad_eval_mode_and_mode_restored() -> None:
    model = FakeModel()
    evaluate(model, DataLoader(SequenceSet(2), batch_size=2), EvalConfig(context=2, horizon=2, lpips=False))
    assert model.calls[0]["grad"] is False and model.calls[0]["training"] is False
    assert model.training is True


def test_actions_and_uint8_frames_pass_through() -> None:
    data = SequenceSet(3, length=8, actions=True, uint8=True)
    model = FakeModel()
    result = evaluate(model, DataLoader(data, batch_size=2), EvalConfig(context=2, horizon=4, lpips=False))
    assert model.calls[0]["actions"] == (2, 8, 2)
    assert result.samples["frames"].dtype == torch.float32
    assert result.samples["frames"].max() <= 1.0


def test_lpips_unavailable_is_reported_and_others_run(no_lpips_weights: Path) -> None:
    result = evaluate(FakeModel(), DataLoader(SequenceSet(3), batch_size=2), EvalConfig(context=2, horizon=2))
    assert not result.lpips.available
    assert ALEXNET_FILE in result.lpips.reason and LIN_FILE in result.lpips.reason
    assert set(result.per_frame["model"]) == {"mse", "mae", "psnr", "ssim"}


def test_lpips_computed_with_weights(lpips_dir: Path) -> None:
    cfg = EvalConfig(context=2, horizon=2, lpips_alexnet=str(lpips_dir / ALEXNET_FILE),
                     lpips_lin=str(lpips_dir / LIN_FILE), lpips_convention="reference")
    result = evaluate(FakeModel(), DataLoader(SequenceSet(3, size=32), batch_size=2), cfg)
    assert result.lpips.available and result.lpips.convention == "reference"
    assert all(v > 0 for v in result.per_frame["model"]["lpips"])
    assert len(result.per_frame["mean_frame"]["lpips"]) == 2


def test_lpips_skipped_for_frames_too_small(lpips_dir: Path) -> None:
    cfg = EvalConfig(context=2, horizon=2, lpips_alexnet=str(lpips_dir / ALEXNET_FILE),
                     lpips_lin=str(lpips_dir / LIN_FILE))
    result = evaluate(FakeModel(), DataLoader(SequenceSet(3, size=8), batch_size=2), cfg)
    assert not result.lpips.available and "31x31" in result.lpips.reason
    assert "lpips" not in result.per_frame["model"]


def test_samples_kept_across_batches() -> None:
    result = evaluate(FakeModel(), DataLoader(SequenceSet(5), batch_size=2),
                      EvalConfig(context=2, horizon=3, lpips=False, num_samples=3))
    assert result.samples["frames"].shape == (3, 5, 1, 8, 8)
    assert result.samples["predictions"].shape == (3, 3, 1, 8, 8)


def test_max_batches_limits_the_run() -> None:
    result = evaluate(FakeModel(), DataLoader(SequenceSet(9), batch_size=2),
                      EvalConfig(context=2, horizon=2, lpips=False, max_batches=2))
    assert result.num_sequences == 4


def test_nonfinite_predictions_counted() -> None:
    class NaNModel(FakeModel):
        def predict(self, context, n_future, actions=None):  # type: ignore[no-untyped-def]
            out = super().predict(context, n_future, actions)
            out[:, 0, 0, 0, 0] = float("nan")
            return out

    result = evaluate(NaNModel(), DataLoader(SequenceSet(3), batch_size=2), EvalConfig(2, 2, lpips=False))
    assert result.nonfinite_predictions == 3


def test_short_sequences_raise() -> None:
    with pytest.raises(ShapeError, match="at least 7 frames"):
        evaluate(FakeModel(), DataLoader(SequenceSet(2, length=6), batch_size=2), EvalConfig(4, 3, lpips=False))


def test_wrong_prediction_shape_raises() -> None:
    class Bad(FakeModel):
        def predict(self, context, n_future, actions=None):  # type: ignore[no-untyped-def]
            return super().predict(context, n_future + 1, actions)

    with pytest.raises(ShapeError, match="model.predict returned"):
        evaluate(Bad(), DataLoader(SequenceSet(2), batch_size=2), EvalConfig(2, 2, lpips=False))


def test_empty_loader_raises() -> None:
    with pytest.raises(DataError, match="no sequences"):
        evaluate(FakeModel(), [], EvalConfig(2, 2, lpips=False))


def test_non_dict_batches_raise() -> None:
    with pytest.raises(DataError, match="'frames' key"):
        evaluate(FakeModel(), [torch.zeros(1, 4, 1, 8, 8)], EvalConfig(2, 2, lpips=False))


@pytest.mark.parametrize("kwargs", [{"context": 0, "horizon": 2}, {"context": 2, "horizon": 0},
                                    {"context": 2, "horizon": 2, "baselines": ("copy_first",)},
                                    {"context": 2, "horizon": 2, "lpips_convention": "[0,1]"}])
def test_bad_config_raises(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        EvalConfig(**kwargs)
