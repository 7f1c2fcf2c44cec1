"""Open-loop block-motion accuracy of push world models on validation rollouts (docs/recipe.md).

For every 12-frame window (stride 3) of ``DATA/val``: 2 context frames and the true actions ->
10 predicted frames; the block is tracked with the ``push`` cost's tracker in the real and the
predicted frames. Over the windows where the real block moves at least 1 px by step 10, it
reports the block's position error at step 10 (px) and the displacement gain (the predicted
displacement projected on the real one, over its squared length; 1 = right).

    python benchmarks/recipe_block_motion.py --data runs/exp/data runs/exp/lr4 runs/exp/base
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from agents.push import PushCost, background_image
from mbvc.data import to_float
from mbvc.data.rollouts import RolloutDataset
from mbvc.training.artifacts import load_trained


def block_motion(model: torch.nn.Module, frames: torch.Tensor, actions: torch.Tensor, cost: PushCost) -> dict[str, float]:
    """Scores of one model on (N, 12, C, H, W) windows in [0, 1] and their (N, 12, A) actions."""
    real, _ = cost.track_block(frames[:, 1:])
    with torch.no_grad():
        pred = model.predict(frames[:, :2], 10, actions).clamp(0, 1)
    pos, _ = cost.track_block(torch.cat([frames[:, 1:2], pred], 1))
    d_real, d_pred = real[:, -1] - real[:, 0], pos[:, -1] - pos[:, 0]
    moving = d_real.norm(dim=-1) >= 1.0
    err = (pos[:, -1] - real[:, -1]).norm(dim=-1)
    gain = (d_pred * d_real).sum(-1) / d_real.square().sum(-1).clamp_min(1e-6)
    mse = (pred - frames[:, 2:]).square().mean().item()
    return {"windows": len(frames), "moving": int(moving.sum()), "err10_moving_px": round(err[moving].mean().item(), 2),
            "err10_all_px": round(err.mean().item(), 2), "gain_moving": round(gain[moving].mean().item(), 2),
            "val_mse_per_frame": round(mse * frames[0, 0].numel(), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders or model files")
    parser.add_argument("--data", type=Path, required=True, help="rollout root with train/ and val/")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cost = PushCost(background_image(args.data / "train"))
    ds = RolloutDataset(args.data / "val", seq_len=12, stride=3, uint8=True)
    frames = to_float(torch.stack([torch.as_tensor(ds[i]["frames"]) for i in range(len(ds))]))
    actions = torch.stack([torch.as_tensor(ds[i]["actions"]) for i in range(len(ds))]).float()
    for run in args.runs:
        print(json.dumps({"model": str(run), **block_motion(load_trained(run).model.eval(), frames, actions, cost)}))


if __name__ == "__main__":
    main()
