"""Collect the recipe experiments' data once: the demo's default collection into runs/exp/data."""
import logging, sys, torch
from pathlib import Path
from mbvc.demo import demo_config, collect_stage
if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(1)
    cfg = demo_config(threads=1, progress=False)
    out = Path("runs/exp")
    print(collect_stage(cfg, out))
