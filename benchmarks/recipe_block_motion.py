"""Open-loop block-motion accuracy of push world models on validation rollouts (docs/recipe.md).

For every window (stride 3) of ``DATA/val``: the model's context frames (its ``input_length``)
and the true actions -> 10 predicted frames; the block is tracked with the ``push`` cost's
tracker in the real and the predicted frames. Over the windows where the real block moves at
least 1 px by step 10, it reports the block's position error at step 10 (px) and the
displacement gain (the predicted displacement projected on the real one, over its squared
length; 1 = right). Windows are as long as the longest context among the models plus 10, so
models of different context lengths predict the same frames.

Where the rollouts record states (``envs.collect`` does), the moving windows are also split by
the direction the block moved on the table: ``away`` (45-135 degrees, away from the BAIR-view
camera, where the pusher's rod stands between the camera and the block) and ``other``.

    python benchmarks/recipe_block_motion.py --data runs/exp/data runs/exp/lr4 runs/exp/base
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from agents.costs.push import PushCost
from agents.costs.push_calibration import background_image
from envs.scene import StateLayout
from mbvc.data import to_float
from mbvc.data.rollouts import RolloutDataset
from mbvc.training.artifacts import load_trained

HORIZON = 10
AWAY = (45.0, 135.0)  # degrees of the block's table displacement counted as "away from the camera"


def push_direction(states: torch.Tensor, context: int) -> torch.Tensor:
    """Degrees of the block's table displacement over the predicted steps of ``(N, T, S)`` Push-v0 states."""
    xy = states[..., StateLayout(1).object(0)][..., :2]
    d = xy[:, -1] - xy[:, context - 1]
    return torch.rad2deg(torch.atan2(d[:, 1], d[:, 0]))


def block_motion(model: torch.nn.Module, frames: torch.Tensor, actions: torch.Tensor, cost: PushCost,
                 direction: torch.Tensor | None = None) -> dict[str, float]:
    """Scores of one model on ``(N, K0 + 10, C, H, W)`` windows in [0, 1] and their actions.

    The model sees the last ``input_length`` of the ``K0`` context frames (and the actions from
    the first of them); ``direction`` (degrees per window, :func:`push_direction`) adds the split.
    """
    k0 = frames.shape[1] - HORIZON
    k = int(model.config.input_length)
    if k > k0:
        raise ValueError(f"the model needs {k} context frames, the windows hold {k0}")
    frames, actions = frames[:, k0 - k:], actions[:, k0 - k:]
    real, _ = cost.track_block(frames[:, k - 1:])
    with torch.no_grad():
        pred = model.predict(frames[:, :k], HORIZON, actions).clamp(0, 1)
    pos, _ = cost.track_block(torch.cat([frames[:, k - 1:k], pred], 1))
    d_real, d_pred = real[:, -1] - real[:, 0], pos[:, -1] - pos[:, 0]
    moving = d_real.norm(dim=-1) >= 1.0
    err = (pos[:, -1] - real[:, -1]).norm(dim=-1)
    gain = (d_pred * d_real).sum(-1) / d_real.square().sum(-1).clamp_min(1e-6)
    mse = (pred - frames[:, k:]).square().mean().item()
    out = {"context": k, "windows": len(frames), "moving": int(moving.sum()),
           "err10_moving_px": round(err[moving].mean().item(), 2), "err10_all_px": round(err.mean().item(), 2),
           "gain_moving": round(gain[moving].mean().item(), 2), "val_mse_per_frame": round(mse * frames[0, 0].numel(), 2)}
    if direction is not None:
        away = (direction >= AWAY[0]) & (direction <= AWAY[1])
        for name, sel in (("away", moving & away), ("other", moving & ~away)):
            out[f"moving_{name}"] = int(sel.sum())
            out[f"err10_{name}_px"] = round(err[sel].mean().item(), 2) if sel.any() else math.nan
            out[f"gain_{name}"] = round(gain[sel].mean().item(), 2) if sel.any() else math.nan
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders or model files")
    parser.add_argument("--data", type=Path, required=True, help="rollout root with train/ and val/")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cost = PushCost(background_image(args.data / "train"))
    models = [(run, load_trained(run).model.eval()) for run in args.runs]
    k0 = max(int(m.config.input_length) for _, m in models)
    ds = RolloutDataset(args.data / "val", seq_len=k0 + HORIZON, stride=3, uint8=True)
    items = [ds[i] for i in range(len(ds))]
    frames = to_float(torch.stack([torch.as_tensor(x["frames"]) for x in items]))
    actions = torch.stack([torch.as_tensor(x["actions"]) for x in items]).float()
    direction = None
    if all("states" in x for x in items):
        direction = push_direction(torch.stack([torch.as_tensor(x["states"]) for x in items]).float(), k0)
    for run, model in models:
        print(json.dumps({"model": str(run), **block_motion(model, frames, actions, cost, direction)}))


if __name__ == "__main__":
    main()
