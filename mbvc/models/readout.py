"""A readout of privileged simulator state from the recurrent state (``model.state_targets``).

Rollouts from a simulator can record its state beside the frames (``states``: the pusher's
pose, the objects' poses...). A world model trained to predict some of those entries from its
top hidden state at every predicted step learns a representation that keeps track of them,
also while an object is hidden, and a planning cost can read the predicted entries where the
predicted pixels lose an object (the push cost with ``cost.block_entries``). Not in the
reference; with no targets the model has no readout and its parameters are the reference's.

The readout is a spatial soft-argmax (Levine et al. 2016, deep spatial autoencoders): a 1x1
convolution makes K heat maps over the hidden state's grid, each map's softmax gives the
expected (x, y) of a keypoint in [-1, 1], and a small MLP maps the K keypoints to the targets.
Positions in the scene are smooth functions of positions in the image, which this shape
expresses with few parameters, and it works at any grid size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mbvc.errors import DataError

#: Keypoints of the soft-argmax and width of the MLP's hidden layer.
KEYPOINTS = 16
WIDTH = 64


class StateReadout(nn.Module):
    """``(B, hidden, h, w)`` recurrent state -> ``(B, n)`` predicted state entries.

    Args:
        hidden: channels of the hidden state.
        n_out: number of predicted entries (``len(model.state_targets)``).
    """

    def __init__(self, hidden: int, n_out: int) -> None:
        super().__init__()
        self.points = nn.Conv2d(hidden, KEYPOINTS, 1)
        self.mlp = nn.Sequential(nn.Linear(2 * KEYPOINTS, WIDTH), nn.ReLU(), nn.Linear(WIDTH, n_out))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, _, hh, ww = h.shape
        p = torch.softmax(self.points(h).flatten(2), dim=-1).view(b, KEYPOINTS, hh, ww)
        xs = torch.linspace(-1.0, 1.0, ww, device=h.device, dtype=h.dtype)
        ys = torch.linspace(-1.0, 1.0, hh, device=h.device, dtype=h.dtype)
        x = (p.sum(dim=2) * xs).sum(dim=-1)  # (B, K) expected column
        y = (p.sum(dim=3) * ys).sum(dim=-1)  # (B, K) expected row
        return self.mlp(torch.cat((x, y), dim=1))


def state_targets(states: torch.Tensor | None, targets: tuple[int, ...], batch: int, steps: int) -> torch.Tensor:
    """The entries ``targets`` of the data's ``states`` for frames 1..steps: ``(B, steps, n)``.

    Raises:
        DataError: no states, or fewer entries or steps than the model needs.
    """
    if states is None:
        raise DataError(f"model.state_targets={list(targets)} needs the training data's 'states' "
                        "(rollouts that recorded the simulator state); this data has none")
    if states.dim() != 3 or states.shape[0] != batch or states.shape[1] < steps + 1:
        raise DataError(f"states must be (batch={batch}, T >= {steps + 1}, S), got {tuple(states.shape)}")
    if max(targets) >= states.shape[-1]:
        raise DataError(f"model.state_targets={list(targets)} indexes entry {max(targets)} but the data's "
                        f"states have {states.shape[-1]} entries")
    return states[:, 1:steps + 1, list(targets)].float()


def state_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the readout, in the state's own units."""
    return F.mse_loss(predicted, target.to(predicted.dtype))
