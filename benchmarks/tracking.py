"""How well the designated costs' trackers follow an object and the agent, in real and predicted frames.

For a Push-family environment's recorded validation rollouts (or ``mbvc/Reacher-v0``'s, where
the object is the fingertip and there is no agent row): every window of ``context +
horizon`` frames (``--stride`` apart) gives the world model its ``context`` real frames and the
recorded actions of the next ``horizon`` steps; each tracker setting then follows the block
(and the pusher's finger) through the ``horizon`` real frames and through the model's
predictions of them, starting where the object is at the last context frame, with its
appearance patch cut from the episode's first frame (as in an MPC episode). Errors are mean pixel distances to the
true positions projected through the observation camera (``env.unwrapped.pixel_of`` of the
recorded states: the block's centre and the finger's centre). The ``push`` cost's colour
detector is scored on the block too when ``--train-data`` gives its background. No goal seeds
are involved: this is how the ``designated_push`` settings were chosen (docs/control.md).

Usage:
    python benchmarks/tracking.py --model runs/demo/model --data runs/demo/data/val --train-data runs/demo/data/train
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info, save_results, start_control_process  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class Tracker:
    """One tracker setting: what it follows and how (see :class:`agents.costs.designated.DesignatedObjectCost`)."""

    role: str  # "object" or "agent"
    patch_size: int
    method: str  # "ssd" or "ncc"
    search_radius: float | None
    temperature: float | None = None


#: The settings compared in docs/control.md.
TRACKERS = (
    Tracker("object", 3, "ssd", 4.0),
    Tracker("object", 3, "ssd", 2.0),
    Tracker("object", 5, "ssd", 2.0),
    Tracker("object", 5, "ssd", 2.0, 0.003),
    Tracker("object", 3, "ncc", 2.0),
    Tracker("agent", 5, "ssd", 2.0),
    Tracker("agent", 7, "ssd", 2.0),
    Tracker("agent", 5, "ncc", 2.0),
    Tracker("agent", 7, "ncc", 2.0),
)
#: The settings compared for Reacher's fingertip (docs/control.md).
REACHER_TRACKERS = (
    Tracker("object", 1, "ssd", 4.0),
    Tracker("object", 1, "ssd", 4.0, 0.003),
    Tracker("object", 3, "ssd", 3.0, 0.01),
)


def track_error(frames: torch.Tensor, first: torch.Tensor, designated: np.ndarray, start: np.ndarray,
                truth: np.ndarray, tracker: Tracker) -> float:
    """Mean distance (pixels) of ``tracker``'s positions in ``frames`` (``H x C x h x w``) to ``truth`` (``H x 2``).

    The patch is cut from ``first`` around ``designated``; the track starts at ``start``; the
    positions are those of the designated pixel (the cost's own sub-pixel tracking).
    """
    from agents.costs.designated import DesignatedGoal, DesignatedObjectCost, DesignatedPushCost

    kwargs = {"temperature": tracker.temperature} if tracker.temperature is not None else {}
    if tracker.role == "object":
        cost = DesignatedObjectCost(patch_size=tracker.patch_size, method=tracker.method,
                                    search_radius=tracker.search_radius, **kwargs)
        goal = DesignatedGoal(tuple(designated), (0.0, 0.0), image=first, position=tuple(start))
        pos = cost._track(frames[None], goal)[0]
    else:
        cost = DesignatedPushCost(agent_patch_size=tracker.patch_size, agent_method=tracker.method,
                                  agent_search_radius=tracker.search_radius,
                                  agent_temperature=tracker.temperature)
        goal = DesignatedGoal((0.0, 0.0), (0.0, 0.0), image=first, agent=tuple(designated),
                              agent_position=tuple(start))
        pos = cost._track_agent(frames[None], goal)[0]
    return float(np.linalg.norm(pos.numpy() - truth, axis=-1).mean())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a trained world model (run folder or model file)")
    p.add_argument("--data", required=True, type=Path, help="validation rollouts recorded with states")
    p.add_argument("--train-data", type=Path, help="training rollouts: also score the push cost's colour detector")
    p.add_argument("--env", default="mbvc/Push-v0", help="the env the rollouts come from: Push family or mbvc/Reacher-v0")
    p.add_argument("--horizon", type=int, default=10)
    p.add_argument("--stride", type=int, default=6, help="frames between window starts")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS / "tracking_cpu.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start_control_process(args.threads)
    import gymnasium as gym

    from agents.models import PredRNNModel
    from envs.scene import FINGER_HEIGHT
    from agents.plan_records import data_env_kwargs
    from mbvc.data.rollouts import RolloutDataset
    from mbvc.training.artifacts import load_trained

    model = PredRNNModel(load_trained(args.model).model)
    k, h = model.context_length, args.horizon
    size = tuple(model.image_size)
    manifest = json.loads((args.data / "manifest.json").read_text())
    env = gym.make(args.env, image_size=size[0], **data_env_kwargs(args.data, args.env))  # the data's dynamics and look
    env.reset(seed=0)
    base = env.unwrapped
    reacher = hasattr(base, "designate_state")
    trackers = REACHER_TRACKERS if reacher else TRACKERS

    def pixels(states: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        s = states.numpy()
        if reacher:  # the fingertip; no agent to follow
            tip = np.array([base.designate_state(state, size)[0] for state in s])
            return tip, tip
        layout = base.layout
        block = np.array([base.pixel_of(p, size) for p in s[:, layout.object(0)][:, :3]])
        pusher = s[:, layout.pusher]
        finger = np.array([base.pixel_of(np.array([p[0], p[1], p[2] + FINGER_HEIGHT]), size) for p in pusher])
        return block, finger

    length = manifest["num_steps"] // manifest["num_episodes"]  # a collection's episodes are equally long
    episodes = RolloutDataset(args.data, seq_len=length, stride=None, uint8=True)
    # Windows inside each episode; the patch comes from the episode's first frame, as in an MPC episode.
    starts = range(0, length - k - h + 1, args.stride)
    windows = len(episodes) * len(starts)
    if not windows:
        raise SystemExit(f"{args.data}: episodes of {length} frames hold no window of {k + h}")
    detector = None
    if args.train_data is not None:
        from agents.costs.push import PushCost
        from agents.costs.push_calibration import background_image
        detector = PushCost(background_image(args.train_data))
    errors: dict[str, dict[str, list[float]]] = {}
    still: dict[str, list[float]] = {role: [] for role in ("object", "agent") if any(t.role == role for t in trackers)}
    for e, s0 in ((e, s0) for e in range(len(episodes)) for s0 in starts):
        if s0 == 0:  # a new episode: read it and project its states once
            episode = episodes[e]
            all_frames = episode["frames"].float() / 255.0
            all_block, all_finger = pixels(episode["states"])
        first = all_frames[0]
        frames = all_frames[s0: s0 + k + h]
        acts = episode["actions"][s0: s0 + k + h]
        with torch.no_grad():
            pred = model.bind(frames[:k], acts[: k - 1][None])(acts[k - 1: k - 1 + h][None])[0]
        real = frames[k:]
        block, finger = all_block[s0: s0 + k + h], all_finger[s0: s0 + k + h]
        for role, truth in (("object", block), ("agent", finger)):
            if role in still:  # only the roles some tracker follows
                still[role].append(float(np.linalg.norm(truth[k:] - truth[k - 1], axis=-1).mean()))
        for tracker in trackers:
            truth = block if tracker.role == "object" else finger
            row = errors.setdefault(json.dumps(asdict(tracker)), {"real": [], "predicted": []})
            designated = all_block[0] if tracker.role == "object" else all_finger[0]
            for name, seen in (("real", real), ("predicted", pred)):
                row[name].append(track_error(seen, first, designated, truth[k - 1], truth[k:], tracker))
        if detector is not None:
            row = errors.setdefault(json.dumps({"role": "object", "push cost colour detector": True}),
                                    {"real": [], "predicted": []})
            for name, seen in (("real", real), ("predicted", pred)):
                pos, _ = detector.track_block(seen[None])
                row[name].append(float(np.linalg.norm(pos[0].numpy() - block[k:], axis=-1).mean()))
    env.close()
    rows = [{**json.loads(key), "real_px": float(np.mean(v["real"])), "predicted_px": float(np.mean(v["predicted"]))}
            for key, v in errors.items()]
    report: dict[str, Any] = {
        "benchmark": "tracking", "model": str(args.model), "data": str(args.data), "env": args.env,
        "windows": windows, "context": k, "horizon": h, "rows": rows,
        "standing_still_px": {role: float(np.mean(v)) for role, v in still.items()},
        "command": "python benchmarks/tracking.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info()}
    lines = [f"# Tracking the designated object and agent ({args.env})", "",
             f"`{report['command']}`; {windows} windows of {k} real frames + {h} steps; mean error in pixels "
             f"({size[0]}x{size[1]} frames) against the projected true positions.", "",
             "| tracks | patch | method | prior (px) | temperature | real frames | predicted frames |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if r.get("push cost colour detector"):
            lines.append(f"| object | - | `push` cost's colour detector | - | - | {r['real_px']:.2f} | {r['predicted_px']:.2f} |")
            continue
        lines.append(f"| {r['role']} | {r['patch_size']} | {r['method']} | {r['search_radius']} | "
                     f"{r['temperature'] or 'default'} | {r['real_px']:.2f} | {r['predicted_px']:.2f} |")
    lines.append("| (standing still) | | | | | " + ", ".join(f"{role} {px:.2f}" for role, px in
                                                      report["standing_still_px"].items()) + " | |")
    save_results(args.out, report, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
