"""Fake data and a fake model for the evaluation tests."""
from __future__ import annotations

import torch
from torch.utils.data import Dataset


class SequenceSet(Dataset):
    """``n`` random sequences of ``length`` frames, optionally with actions or as uint8."""

    def __init__(self, n: int, length: int = 6, size: int = 8, channels: int = 1,
                 actions: bool = False, uint8: bool = False) -> None:
        g = torch.Generator().manual_seed(n)
        self.frames = torch.rand(n, length, channels, size, size, generator=g)
        if uint8:
            self.frames = (self.frames * 255).to(torch.uint8)
        self.actions = torch.randn(n, length, 2, generator=g) if actions else None

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"frames": self.frames[i]}
        if self.actions is not None:
            item["actions"] = self.actions[i]
        return item


class FakeModel:
    """Predicts the last context frame dimmed by ``gain``; records how it was called."""

    def __init__(self, gain: float = 0.9) -> None:
        self.gain, self.training, self.calls = gain, True, []

    def eval(self) -> FakeModel:
        self.training = False
        return self

    def train(self, mode: bool = True) -> FakeModel:
        self.training = mode
        return self

    def predict(self, context: torch.Tensor, n_future: int, actions: torch.Tensor | None = None) -> torch.Tensor:
        self.calls.append({"grad": torch.is_grad_enabled(), "training": self.training, "batch": context.shape[0],
                           "actions": None if actions is None else tuple(actions.shape)})
        return (context[:, -1:] * self.gain).repeat(1, n_future, 1, 1, 1)
