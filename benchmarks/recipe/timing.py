"""Time per training iteration of push-demo variants, interleaved in one process (1 thread): ratios vs the first."""
import sys, time, json
import numpy as np, torch
from mbvc.config import load_run_config
from mbvc.models import build_model, curriculum_mask
from mbvc.training.setup import build_datasets
from mbvc.data import to_float
from mbvc.training.losses import motion_weighted_mse
torch.set_num_threads(1)
variants = {"base b8": [], **{v: v.split() for v in sys.argv[1:]}}
base = ["data.root='runs/exp/data'", "train.tensorboard=false"]
ds = build_datasets(load_run_config("push-demo", base))[0]
setups = {}
for name, over in variants.items():
    cfg = load_run_config("push-demo", base + over)
    torch.manual_seed(0)
    m = build_model(cfg.model).train(); opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    b = cfg.train.batch_size; T = cfg.model.total_length
    s = [ds[i] for i in range(b)]
    fr = to_float(torch.stack([torch.as_tensor(x["frames"]) for x in s])[:, :T])
    ac = torch.stack([torch.as_tensor(x["actions"]) for x in s])[:, :T].float()
    mask = torch.ones(b, cfg.model.mask_steps(T))
    setups[name] = (m, opt, fr, ac, mask, cfg.train.motion_weight)
times = {n: [] for n in setups}
for rep in range(int(12)):
    for n, (m, opt, fr, ac, mask, mw) in setups.items():
        t = time.perf_counter()
        for _ in range(3):
            out = m(fr, mask, ac); loss = out.loss
            if mw: loss = loss + mw * motion_weighted_mse(out.frames, fr)
            opt.zero_grad(); loss.backward(); opt.step()
        if rep: times[n].append((time.perf_counter() - t) / 3)
b0 = np.median(times["base b8"])
for n, t in times.items():
    print(f"{n:50s} {1000*np.median(t):7.1f} ms/it  ratio {np.median(t)/b0:.2f}")
