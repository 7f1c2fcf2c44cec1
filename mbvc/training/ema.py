"""Exponential moving average (EMA) of a model's weights, for validation and the exported model.

Averaging the weights of the last few hundred optimiser steps removes most of the step-to-step
noise of a short, high-learning-rate run at the cost of one fused lerp per iteration; the
averaged copy is what the trainer validates and exports (``train.ema_decay``), while the
optimiser keeps stepping the raw weights.
"""
from __future__ import annotations

import copy

import torch

from mbvc.models.checkpoint import load_state_dict_checked


class WeightEMA:
    """A frozen copy of ``model`` whose parameters follow the model's by an exponential average.

    The decay at update ``n`` (counted from 1) is ``min(decay, (1 + n) / (10 + n))``: the first
    updates average over the few steps there are, so that the copy is not pinned to the
    initial weights in a short run (TensorFlow's ``ExponentialMovingAverage(num_updates=...)``).
    Buffers are copied, not averaged.

    Args:
        model: the trained module; the copy is made now, on the same device.
        decay: the long-run decay, in (0, 1).
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)
        self._params = list(self.module.parameters())  # the lerp's destinations, fixed for the copy's life
        self.updates = 0

    def current_decay(self) -> float:
        """The decay the next :meth:`update` applies."""
        n = self.updates + 1
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Move the averaged weights towards ``model``'s (call after each optimiser step)."""
        weight = 1.0 - self.current_decay()
        # one fused lerp over all tensors (what torch.optim.swa_utils' EMA helper does)
        torch._foreach_lerp_(self._params, [p.detach() for p in model.parameters()], weight)
        for mine, theirs in zip(self.module.buffers(), model.buffers()):
            mine.copy_(theirs)
        self.updates += 1

    def state_dict(self) -> dict[str, object]:
        """The averaged weights (on the CPU) and the update count."""
        return {"updates": self.updates,
                "weights": {k: v.detach().cpu() for k, v in self.module.state_dict().items()}}

    def load_state_dict(self, state: dict[str, object], source: str = "checkpoint") -> None:
        """Restore :meth:`state_dict`'s output; a mismatch names ``source`` and the keys."""
        load_state_dict_checked(self.module, state["weights"], f"{source} (weight average)")  # type: ignore[arg-type]
        self.updates = int(state["updates"])  # type: ignore[arg-type]
