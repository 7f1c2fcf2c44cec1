"""Open-loop block-motion accuracy of trained demo models on the validation rollouts (the diagnosis metric).

For every 12-frame window (stride 3) of runs/exp/data/val: 2 context frames + the true actions -> 10 predicted
frames; the block is tracked (PushCost.track_block, from the last context frame) in the real and the predicted
frames. Reports, over windows where the block really moves >= 1 px by step 10: the block position error at
step 10 (px) and the displacement gain (predicted displacement projected on the real one / its length^2; 1 = right).
"""
import sys, json
import numpy as np, torch
from pathlib import Path
from mbvc.data.rollouts import RolloutDataset
from mbvc.data import to_float
from mbvc.demo import PushCost, background_image
from mbvc.training.artifacts import load_trained
torch.set_num_threads(1)
root = Path("runs/exp/data")
cost = PushCost(background_image(root / "train"))
ds = RolloutDataset(root / "val", seq_len=12, stride=3, uint8=True)
fr = to_float(torch.stack([torch.as_tensor(ds[i]["frames"]) for i in range(len(ds))]))
ac = torch.stack([torch.as_tensor(ds[i]["actions"]) for i in range(len(ds))]).float()
real_pos, real_mass = cost.track_block(fr[:, 1:])
for name in sys.argv[1:]:
    path = Path(name) if name.endswith(".pt") else Path("runs/exp") / name / "model"
    net = load_trained(path).model.eval()
    with torch.no_grad():
        pred = net.predict(fr[:, :2], 10, ac).clamp(0, 1)
    pos, mass = cost.track_block(torch.cat([fr[:, 1:2], pred], 1))
    d_real = real_pos[:, -1] - real_pos[:, 0]; d_pred = pos[:, -1] - pos[:, 0]
    moving = d_real.norm(dim=-1) >= 1.0
    err = (pos[:, -1] - real_pos[:, -1]).norm(dim=-1)
    gain = ((d_pred * d_real).sum(-1) / d_real.square().sum(-1).clamp_min(1e-6))
    mse = ((pred - fr[:, 2:]) ** 2).mean().item()
    r = {"model": name, "windows": len(ds), "moving": int(moving.sum()), "err10_moving_px": round(err[moving].mean().item(), 2),
         "err10_all_px": round(err.mean().item(), 2), "gain_moving": round(gain[moving].mean().item(), 2),
         "val_mse_per_pixel": round(mse, 5), "val_mse_per_frame": round(mse * 32 * 32 * 3, 2)}
    print(json.dumps(r))
    if not name.endswith(".pt"):
        (Path("runs/exp") / name / "blockerr.json").write_text(json.dumps(r))
