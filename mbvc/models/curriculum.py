"""Training curricula: scheduled sampling (PredRNN) and reverse scheduled sampling (PredRNN-V2).

:class:`CurriculumTraining` is the training procedure built on them (the PredRNN family's
:class:`~mbvc.models.base.WorldModel` training methods).

Masks are per sample and per step, shape (B, steps), 1 = feed the true frame at that step;
the model broadcasts them over the frame, so no full-frame mask is ever built. The iteration
``itr`` counts from 1, as in the reference.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch

from mbvc.errors import ConfigError, DataError
from mbvc.models.config import ModelConfig
from mbvc.models.readout import state_targets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CurriculumConfig:
    """Parameters of both curricula (reference flag names).

    Attributes:
        scheduled_sampling: use scheduled sampling at all (PredRNN rule); off feeds predictions.
        sampling_start_value: initial eta of scheduled sampling.
        sampling_changing_rate: eta decrease per iteration.
        sampling_stop_iter: iteration from which eta is 0.
        r_sampling_step_1, r_sampling_step_2, r_exp_alpha: reverse scheduled sampling s1, s2, alpha.
    """

    scheduled_sampling: bool = True
    sampling_start_value: float = 1.0
    sampling_changing_rate: float = 2e-5
    sampling_stop_iter: int = 50000
    r_sampling_step_1: int = 25000
    r_sampling_step_2: int = 50000
    r_exp_alpha: float = 2500.0

    def __post_init__(self) -> None:
        if self.r_sampling_step_2 <= self.r_sampling_step_1:
            raise ConfigError(
                f"r_sampling_step_2 must exceed r_sampling_step_1, got {self.r_sampling_step_1=}, {self.r_sampling_step_2=}"
            )
        if self.r_exp_alpha <= 0:
            raise ConfigError(f"r_exp_alpha must be > 0, got {self.r_exp_alpha=}")
        if not 0.0 <= self.sampling_start_value <= 1.0:
            raise ConfigError(f"sampling_start_value must be in [0, 1], got {self.sampling_start_value=}")


def scheduled_sampling_eta(itr: int, curriculum: CurriculumConfig = CurriculumConfig()) -> float:
    """Probability of feeding the true frame at iteration ``itr`` under scheduled sampling.

    eta starts at ``sampling_start_value`` and drops by ``sampling_changing_rate`` every
    iteration (already at itr = 1) until ``sampling_stop_iter``; from there it is 0.
    """
    cur = curriculum
    if not cur.scheduled_sampling or itr >= cur.sampling_stop_iter:
        return 0.0
    return max(0.0, cur.sampling_start_value - cur.sampling_changing_rate * itr)


def reverse_sampling_probs(itr: int, curriculum: CurriculumConfig = CurriculumConfig()) -> tuple[float, float]:
    """Probabilities ``(r_eta, eta)`` of the true frame under reverse scheduled sampling.

    ``r_eta`` applies to the encoder part (the first K-1 steps) and rises from 0.5 to 1 with
    an exponential; ``eta`` applies to the decoder part and falls linearly from 0.5 to 0.
    """
    s1, s2, alpha = curriculum.r_sampling_step_1, curriculum.r_sampling_step_2, curriculum.r_exp_alpha
    if itr < s1:
        return 0.5, 0.5
    if itr < s2:
        return 1.0 - 0.5 * math.exp(-float(itr - s1) / alpha), 0.5 - (0.5 / (s2 - s1)) * (itr - s1)
    return 1.0, 0.0


def curriculum_mask(
    model: ModelConfig,
    curriculum: CurriculumConfig,
    itr: int,
    batch: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    total_length: int | None = None,
) -> torch.Tensor:
    """Draw the training mask for iteration ``itr``.

    Args:
        model: decides the rule (reverse for PredRNN-V2 / action models) and K, T.
        curriculum: schedule parameters.
        itr: iteration, counting from 1.
        batch: batch size B.
        generator: CPU generator for reproducible draws.
        device: where the mask goes.
        total_length: T if it differs from ``model.total_length``.

    Returns:
        (B, steps) float mask of 0/1 (steps = T-2 or T-K-1).
    """
    t = model.total_length if total_length is None else total_length
    k = model.input_length
    if model.reverse_input_rule:
        r_eta, eta = reverse_sampling_probs(itr, curriculum)
        enc = torch.rand(batch, k - 1, generator=generator) < r_eta
        dec = torch.rand(batch, t - k - 1, generator=generator) < eta
        mask = torch.cat((enc, dec), dim=1)
    else:
        eta = scheduled_sampling_eta(itr, curriculum)
        mask = torch.rand(batch, t - k - 1, generator=generator) < eta
    return mask.to(device=device, dtype=torch.get_default_dtype())


def test_mask(model: ModelConfig, batch: int, device: torch.device | str | None = None, total_length: int | None = None) -> torch.Tensor:
    """The evaluation mask: true frames for the K context steps, own predictions after.

    Returns:
        (B, steps) float mask (ones for the first K-1 entries under the reverse rule, zeros
        otherwise).
    """
    t = model.total_length if total_length is None else total_length
    k = model.input_length
    mask = torch.zeros(batch, model.mask_steps(t), device=device)
    if model.reverse_input_rule:
        mask[:, : k - 1] = 1.0
    return mask


test_mask.__test__ = False  # not a pytest test despite its name


class CurriculumTraining:
    """The training procedure of PredRNN-family models, as :class:`~mbvc.models.base.WorldModel` methods.

    Mixed into a module whose ``forward(frames, mask, actions)`` returns a
    :class:`~mbvc.models.predrnn.ModelOutput` and whose ``config`` is a :class:`ModelConfig`-like
    config (``input_length``, ``total_length``, ``reverse_input_rule``, ``is_action``, ``name``).
    Each iteration draws a curriculum mask (scheduled sampling, or reverse scheduled sampling
    for PredRNN-V2 and action models) for the global batch from its own generator, and with
    ``train.reverse_input`` makes a second update on the time-reversed frames with the same mask.
    """

    config: ModelConfig

    def setup_training(self, train_cfg: Any, *, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        cfg = self.config
        self._curriculum: CurriculumConfig = train_cfg.curriculum
        self._batch_share = (batch_size, rank, world_size)
        self._mask_rng = torch.Generator().manual_seed(train_cfg.seed + 1)
        self._reverse_input = bool(train_cfg.reverse_input) and not cfg.is_action
        if train_cfg.reverse_input and cfg.is_action:
            log.info("reverse_input skipped: %s is action-conditioned, and reversing the frames in time "
                     "would pair every action with the wrong transition", cfg.name)

    def training_updates(self, batch: dict[str, torch.Tensor], step: int) -> list[dict[str, torch.Tensor]]:
        cfg = self.config
        total = cfg.total_length
        frames = batch["frames"]
        if frames.dim() != 5 or frames.shape[1] < total:
            raise DataError(f"training sequences must be (T, C, H, W) with T >= model.total_length={total}, "
                            f"got a batch of shape {tuple(frames.shape)}")
        update = {"frames": frames[:, :total]}
        if cfg.is_action:
            actions = batch.get("actions")
            if actions is None:
                raise DataError(f"{cfg.name} is action-conditioned but the training data has no actions")
            update["actions"] = actions[:, :total].float()
        if cfg.state_targets:  # the readout's targets (checked here: one line, not a shape error later)
            states = batch.get("states")
            state_targets(states, cfg.state_targets, frames.shape[0], total - 1)
            update["states"] = states[:, :total]
        # Drawn for the global batch on every rank, then sliced, so that sample j of the global
        # batch gets the same row whatever the number of processes.
        size, rank, world = self._batch_share
        mask = curriculum_mask(cfg, self._curriculum, step, size, generator=self._mask_rng)
        update["mask"] = mask[rank::world].to(frames.device)
        if not self._reverse_input:
            return [update]
        return [update, {"frames": update["frames"].flip(1), "mask": update["mask"]}]

    def training_loss(self, batch: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self(batch["frames"], batch["mask"], batch.get("actions"), states=batch.get("states"))
        parts = {"mse": out.mse, "decouple": out.decouple}
        if out.state is not None:
            parts["state"] = out.state
        return out.loss, parts

    def training_state(self) -> dict[str, Any]:
        return {"mask_rng": self._mask_rng.get_state()}

    def load_training_state(self, state: dict[str, Any]) -> None:
        self._mask_rng.set_state(state["mask_rng"])

    def training_scalars(self, step: int) -> dict[str, float]:
        if self.config.reverse_input_rule:
            r_eta, eta = reverse_sampling_probs(step, self._curriculum)
            return {"r_eta": r_eta, "eta": eta}
        return {"eta": scheduled_sampling_eta(step, self._curriculum)}
