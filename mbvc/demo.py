"""The end-to-end demo: collect pushing rollouts, train a world model on them, plan with it.

:func:`run_demo` runs four stages into one output folder; each stage writes a record
(``<stage>.json``) when it finishes and is skipped on the next run when that record exists with
the same settings, so an interrupted demo resumes where it stopped (collection and training
also resume inside the stage):

1. **collect** (``OUT/data/{train,val}``): episodes of ``mbvc/Push-v0`` in the rollout format
   (:func:`envs.collect.collect`), a per-episode mix of the noisy scripted pusher (deliberate,
   varied contacts) and uniform random actions (coverage of the action space the planner samples).
2. **train** (``OUT/model``, an mbvc run folder): an action-conditioned PredRNN-V2 from the
   ``push-demo`` preset, its iterations scaled to a time budget unless given.
3. **evaluate** (``OUT/eval.json``, ``OUT/episode.gif``): CEM model-predictive control with the
   trained model on held-out seeded goals, next to a random agent and the oracle (the same CEM
   planning in a copy of the simulator on the true state), all on the same goals.
4. **report** (``OUT/report.json``): configuration, timings per stage and results.

Example:
    >>> from mbvc.demo import demo_config, run_demo
    >>> report = run_demo(demo_config(tiny=True), "runs/demo-tiny")  # doctest: +SKIP
    >>> sorted(report["results"])  # doctest: +SKIP
    ['mpc', 'oracle', 'random']
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mbvc.errors import ConfigError, did_you_mean
from mbvc.io import write_json

log = logging.getLogger(__name__)

ENV_ID = "mbvc/Push-v0"
STAGES = ("collect", "train", "evaluate", "report")
MARKER = "demo.json"
#: Colours of the target block and of the pusher's rod as the default camera renders them
#: (lit faces average to these; measured on 32x32 frames).
BLOCK_COLOUR = (0.83, 0.17, 0.14)
PUSHER_COLOUR = (0.85, 0.85, 0.88)
#: Fraction of collected episodes driven by uniform random actions (the rest: noisy scripted).
RANDOM_EPISODES = 0.25
COSTS = ("push", "designated_pixel", "goal_image")
#: Shaping weight of the oracle's true-state cost (pusher-to-block distance); measured best of 0.3 / 0.5.
ORACLE_PUSHER_WEIGHT = 0.5
#: Seeds of evaluation episodes start here; collection seeds are hashed 32-bit numbers
#: (``envs.collect.episode_seed``), so the evaluation goals are held out.
EVAL_SEED_BASE = 1_000_000


@dataclass(frozen=True)
class DemoConfig:
    """Everything the demo does, grouped by stage. :func:`demo_config` gives the defaults.

    Attributes:
        seed: seeds collection, training, the planners and the evaluation goals.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N`` for training and planning.
        image_size: frame side (the model's ``img_width``); a multiple of 4.
        progress: tqdm bars.
        episodes: training episodes collected.
        val_episodes: validation episodes collected.
        episode_length: steps per collected episode.
        num_envs: collection worker processes.
        preset: the model / training preset.
        iterations: training iterations; ``None``: fit ``train_minutes``.
        train_minutes: training time budget used when ``iterations`` is ``None``.
        train_overrides: extra ``section.key=value`` preset overrides.
        eval_episodes: evaluation episodes per agent (the same seeded goals for every agent).
        goal_distance: ``(min, max)`` metres from the block's start to its goal in evaluation.
        eval_episode_length: steps per evaluation episode (it ends early on success).
        cost: ``push`` (block position to goal position in the image plus shaping that brings
            the pusher behind the block), ``designated_pixel`` (block position only) or
            ``goal_image`` (pixel MSE to the goal image).
        pusher_weight: weight of the pusher shaping of the ``push`` cost.
        keep_out_weight: weight of the ``push`` cost's keep-out term (see :class:`PushCost`).
        finger_calibration: fit the ``push`` cost's finger detector on the training rollouts'
            recorded pusher positions (:func:`calibrate_finger`); off: the rod-as-a-bar heuristic.
        planner: ``cem``, ``icem`` or ``mppi``.
        population: candidates per planner iteration.
        planner_iterations: planner iterations per plan.
        horizon: planning horizon H (at most the model's training length minus its context).
        replan_every: actions executed per plan.
        oracle_planner: the oracle's planner (iCEM's smooth coloured-noise candidates suit the
            true-state cost best: measured 100% vs 83% for CEM on 12 goals).
        oracle_population: candidates of the oracle's planner (it simulates each one).
        gif_scale: upscaling of the GIF panels.
        threads: torch CPU threads (``None``: torch's default).
        tiny: the tiny configuration (tests); recorded for the report.
    """

    seed: int = 0
    device: str = "auto"
    image_size: int = 32
    progress: bool = True
    # collect
    episodes: int = 500
    val_episodes: int = 25
    episode_length: int = 30
    num_envs: int = 2
    # train
    preset: str = "push-demo"
    iterations: int | None = None
    train_minutes: float = 8.0
    train_overrides: tuple[str, ...] = ()
    # evaluate
    eval_episodes: int = 10
    goal_distance: tuple[float, float] = (0.05, 0.1)
    eval_episode_length: int = 40
    cost: str = "push"
    pusher_weight: float = 0.5
    keep_out_weight: float = 2.0
    finger_calibration: bool = True
    planner: str = "cem"
    population: int = 200
    planner_iterations: int = 3
    horizon: int = 10
    replan_every: int = 2
    oracle_planner: str = "icem"
    oracle_population: int = 50
    gif_scale: int = 4
    threads: int | None = None
    tiny: bool = False

    def __post_init__(self) -> None:
        positive = ("image_size", "episodes", "val_episodes", "episode_length", "num_envs", "eval_episodes",
                    "eval_episode_length", "population", "planner_iterations", "horizon", "replan_every",
                    "oracle_population", "gif_scale")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"demo setting {name} must be a positive integer, got {value!r}")
        if self.image_size % 4:
            raise ConfigError(f"demo setting image_size must be a multiple of 4 (the model's input encoder "
                              f"halves it twice), got {self.image_size}")
        if self.iterations is not None and (not isinstance(self.iterations, int) or self.iterations < 1):
            raise ConfigError(f"demo setting iterations must be a positive integer or None, got {self.iterations!r}")
        if not self.train_minutes > 0:
            raise ConfigError(f"demo setting train_minutes must be > 0, got {self.train_minutes!r}")
        if self.cost not in COSTS:
            raise ConfigError(f"demo setting cost must be one of {COSTS}, got {self.cost!r}." + did_you_mean(self.cost, COSTS))
        lo, hi = self.goal_distance
        if not 0 < lo <= hi:
            raise ConfigError(f"demo setting goal_distance must be (min, max) with 0 < min <= max, got {self.goal_distance}")
        if self.replan_every > self.horizon:
            raise ConfigError(f"demo setting replan_every ({self.replan_every}) must not exceed horizon ({self.horizon})")
        for name in ("planner", "oracle_planner"):
            if getattr(self, name) not in ("cem", "icem", "mppi"):
                raise ConfigError(f"demo setting {name} must be cem, icem or mppi, got {getattr(self, name)!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"demo setting threads must be >= 1, got {self.threads}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


#: The ``--tiny`` settings (tests): a handful of 16x16 episodes, a few iterations, few candidates.
TINY: dict[str, Any] = {
    "image_size": 16, "episodes": 6, "val_episodes": 2, "episode_length": 8, "num_envs": 1, "iterations": 4,
    "train_overrides": ("model.num_hidden=[8]", "model.total_length=6", "train.batch_size=4",
                        "train.warmup_iters=1", "train.eval_interval=0", "train.checkpoint_interval=2",
                        "train.log_interval=2", "eval.horizon=4", "eval.batch_size=2", "eval.val_batches=1"),
    "eval_episodes": 2, "eval_episode_length": 5, "population": 12, "planner_iterations": 2, "horizon": 4,
    "replan_every": 2, "oracle_population": 6, "gif_scale": 2,
    "threads": 1,  # a tiny model gains nothing from threads, and on a busy CPU they only wait on each other
}


def demo_config(tiny: bool = False, **changes: Any) -> DemoConfig:
    """The demo's configuration: the defaults, or the tiny one for tests, with ``changes``.

    Args:
        tiny: a handful of 16x16 episodes, a few iterations of a tiny model, few candidates.
        **changes: :class:`DemoConfig` fields to set (``None`` values are ignored, so that
            unset command-line options keep the defaults).

    Raises:
        ConfigError: an unknown field or an invalid value.
    """
    known = {f.name for f in dataclasses.fields(DemoConfig)}
    for key in changes:
        if key not in known:
            raise ConfigError(f"unknown demo setting {key!r}." + did_you_mean(key, known))
    values: dict[str, Any] = dict(TINY, tiny=True) if tiny else {}
    values.update({k: v for k, v in changes.items() if v is not None})
    if changes.get("train_overrides") and tiny:  # user overrides come after the tiny ones
        values["train_overrides"] = tuple(TINY["train_overrides"]) + tuple(changes["train_overrides"])
    if changes.get("train_minutes") is not None and changes.get("iterations") is None:
        values["iterations"] = None  # a time budget given explicitly wins over the tiny iteration count
    return DemoConfig(**values)


# -- data policy ---------------------------------------------------------------------------------


class EpisodeMixPolicy:
    """Per episode, one of several policies, drawn from the episode's seed.

    Mixing whole episodes (rather than steps) keeps both kinds of trajectory in the data: the
    noisy scripted pusher's deliberate pushes from every side, and random actions like the
    planner's candidates, including long stretches without contact.

    Args:
        policies: ``(weight, policy)`` pairs; each policy has ``reset(seed)`` and ``__call__(obs)``.
        seed: seed of the draw when :meth:`reset` gets no seed.
    """

    def __init__(self, policies: Sequence[tuple[float, Any]], seed: int | None = None) -> None:
        weights = np.asarray([w for w, _ in policies], dtype=np.float64)
        if len(policies) == 0 or np.any(weights < 0) or weights.sum() <= 0:
            raise ConfigError(f"EpisodeMixPolicy needs (weight >= 0, policy) pairs with a positive sum, got {weights}")
        self.weights = weights / weights.sum()
        self.policies = [p for _, p in policies]
        self.rng = np.random.default_rng(seed)
        self.current = self.policies[0]

    def reset(self, seed: int | None = None) -> None:
        """Draw this episode's policy (from ``seed`` when given) and reset it."""
        rng = np.random.default_rng([seed, 17]) if seed is not None else self.rng
        self.current = self.policies[int(rng.choice(len(self.policies), p=self.weights))]
        self.current.reset(seed)

    def __call__(self, obs: Any) -> np.ndarray:
        return self.current(obs)


def data_policy(env: Any) -> EpisodeMixPolicy:
    """The demo's collection policy (``policy="mbvc.demo:data_policy"`` in :mod:`envs.collect`)."""
    from envs.policies import make_policy

    return EpisodeMixPolicy([(1.0 - RANDOM_EPISODES, make_policy("mixed", env)),
                             (RANDOM_EPISODES, make_policy("random", env))])


# -- costs ---------------------------------------------------------------------------------------


class PushCost:
    """Designated-pixel cost of a push on predicted frames, with shaping for the approach.

    Objects are found by background subtraction: the camera is fixed, so a frame minus the
    empty scene (:func:`background_image`, the per-pixel median of the collected frames) is
    zero except where the block and the pusher are. A pixel's change is projected on the
    colour direction from the background to the object (the block: redder, less green and
    blue; the pusher's rod: brighter and bluer), which keeps blurry, faded predictions
    detectable where a fixed colour match loses them. The block's position is the centroid of
    its weight; the pusher's rod rises from the finger to the top edge of the image, so its
    centroid column is the finger's and twice its centroid row is the finger's row.

    The cost per step is the block's distance to its position in the goal image plus
    ``pusher_weight`` times the finger's distance to a point ``behind`` pixels beyond the
    block on the goal-to-block line, where a push towards the goal starts, plus a keep-out
    term: ``keep_out_weight`` times how far the finger is inside ``keep_out`` pixels of the
    block, scaled from 0 behind the block to 1 on its goal side. The block term alone is flat
    until the pusher touches the block; the shaping gives the planner a slope everywhere, and
    the keep-out term makes it go round the block instead of through it (a small learnt model
    predicts contacts poorly, and a wrong-side touch pushes the block away from the goal).
    Distances are in pixels.

    Args:
        background: the empty scene ``C x h x w`` in [0, 1] at the model's frame size.
        block_colour: the block's rendered colour.
        pusher_colour: the rod's rendered colour.
        block_threshold: projected change below which a pixel is not block (noise, shadows).
        pusher_threshold: the same for the rod.
        pusher_weight: weight of the shaping term (0: the plain designated-pixel cost).
        behind: pixels behind the block's centre where the finger should be.
        keep_out: pixels around the block's centre that the finger should enter only from behind.
        keep_out_weight: weight of the keep-out term (0 disables it).
        track_sigma: pixels of the window that follows the block from step to step (see :meth:`track_block`).
        final_weight: relative weight of the last step (:func:`agents.costs.step_weights`).
        min_mass: summed weight below which an object counts as lost (costs the diagonal).
    """

    def __init__(self, background: torch.Tensor, block_colour: Sequence[float] = BLOCK_COLOUR,
                 pusher_colour: Sequence[float] = PUSHER_COLOUR, block_threshold: float = 0.1,
                 pusher_threshold: float = 0.1, pusher_weight: float = 0.5, behind: float = 3.0,
                 keep_out: float = 6.0, keep_out_weight: float = 2.0, track_sigma: float = 3.0,
                 final_weight: float = 1.0, min_mass: float = 0.5, finger_map: torch.Tensor | None = None) -> None:
        from mbvc.errors import ShapeError

        background = torch.as_tensor(background, dtype=torch.float32)
        if background.dim() != 3 or background.shape[0] != len(block_colour):
            raise ShapeError(f"PushCost background must be (C, h, w) with C = {len(block_colour)}, "
                             f"got {tuple(background.shape)}")
        if pusher_weight < 0 or min_mass < 0:
            raise ConfigError(f"PushCost needs pusher_weight >= 0 and min_mass >= 0, got {pusher_weight=}, {min_mass=}")
        self.background = background
        mean_bg = background.mean(dim=(-2, -1))
        # Unit colour directions from the (average) background to each object. The block's
        # keeps only the change of hue (its grey component removed): shadows and the pusher's
        # dark finger also lower green and blue, but they lower red as much.
        block_change = torch.as_tensor(block_colour, dtype=torch.float32) - mean_bg
        self.block_dir = _unit(block_change - block_change.mean())
        self.pusher_dir = _unit(torch.as_tensor(pusher_colour, dtype=torch.float32) - mean_bg)
        self.block_threshold, self.pusher_threshold = block_threshold, pusher_threshold
        self.pusher_weight, self.behind = pusher_weight, behind
        self.keep_out, self.keep_out_weight = keep_out, keep_out_weight
        self.track_sigma = track_sigma
        self.final_weight, self.min_mass = final_weight, min_mass
        if finger_map is not None:
            finger_map = torch.as_tensor(finger_map, dtype=torch.float32)
            if finger_map.shape != (2, FINGER_FEATURES):
                raise ShapeError(f"PushCost finger_map must be (2, {FINGER_FEATURES}) "
                                 f"(see calibrate_finger), got {tuple(finger_map.shape)}")
        self.finger_map = finger_map

    def _weights(self, frames: torch.Tensor, direction: torch.Tensor, threshold: float) -> torch.Tensor:
        from mbvc.errors import ShapeError

        bg = self.background.to(frames.device, frames.dtype)
        if frames.shape[-3:] != bg.shape:
            raise ShapeError(f"PushCost: frames of shape {tuple(frames.shape[-3:])} do not match the background "
                             f"{tuple(bg.shape)}")
        change = ((frames - bg) * direction.to(frames.device, frames.dtype)[:, None, None]).sum(dim=-3)
        return (change - threshold).clamp_min(0.0)

    def block_position(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Block centroid ``... x 2`` (row, col) and weight ``...`` of frames ``... x C x h x w``."""
        return _centroid(self._weights(frames, self.block_dir, self.block_threshold))

    def track_block(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Block positions ``N x H x 2`` and weights ``N x H`` along predicted frames ``N x H x C x h x w``.

        From the second step on, only pixels near the previous step's position count (a
        Gaussian window of ``track_sigma`` pixels): the block moves at most a pixel or two per
        step, while a blurry model leaves faint reddish smears elsewhere (along the rod, where
        the block faded) whose weight would otherwise drag the centroid, and which a planner
        would learn to exploit.
        """
        weight = self._weights(frames, self.block_dir, self.block_threshold)  # N x H x h x w
        h, w = weight.shape[-2:]
        rows = torch.arange(h, device=weight.device, dtype=weight.dtype)[:, None]
        cols = torch.arange(w, device=weight.device, dtype=weight.dtype)[None, :]
        positions, masses = [], []
        pos, mass = _centroid(weight[:, 0])
        positions.append(pos)
        masses.append(mass)
        for t in range(1, weight.shape[1]):
            d2 = (rows - pos[:, 0, None, None]) ** 2 + (cols - pos[:, 1, None, None]) ** 2
            window = torch.exp(-d2 / (2 * self.track_sigma**2))
            new_pos, mass = _centroid(weight[:, t] * window)
            pos = torch.where((mass > 1e-6)[:, None], new_pos, pos)  # an empty window keeps the last position
            positions.append(pos)
            masses.append(mass)
        return torch.stack(positions, dim=1), torch.stack(masses, dim=1)

    def rod_centroid(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Centroid ``... x 2`` (row, col) and weight ``...`` of the pusher's rod."""
        return _centroid(self._weights(frames, self.pusher_dir, self.pusher_threshold))

    def pusher_position(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Finger position ``... x 2`` (row, col), in the block's pixel frame, and rod weight ``...``.

        With a ``finger_map`` (:func:`calibrate_finger`) it is a quadratic function of the rod's
        centroid fitted on recorded frames; without, the rod is taken as a vertical bar from the
        top edge to the finger (twice its centroid row), which is off by 1-2 pixels where the
        perspective tilts the rod. Both use the centroid only, so a blurry prediction of the rod
        gives the same finger position as a sharp one.
        """
        pos, mass = self.rod_centroid(frames)
        if self.finger_map is not None:
            fm = self.finger_map.to(frames.device, frames.dtype)
            return _finger_features(pos) @ fm.T, mass
        return _bar_finger(pos), mass

    def goal_position(self, goal: Any, frames: torch.Tensor) -> torch.Tensor:
        """Block position in the goal image (``C x h x w``) or a given pixel (``2``)."""
        from mbvc.errors import ShapeError

        g = torch.as_tensor(goal, device=frames.device, dtype=frames.dtype)
        if g.dim() == 1:
            return g
        pos, mass = self.block_position(g)
        if float(mass) < self.min_mass:
            raise ShapeError("PushCost: the goal image does not show the block (it matches the background there)")
        return pos

    def __call__(self, frames: torch.Tensor, goal: Any) -> torch.Tensor:
        from agents.costs import check_frames, weighted_sum

        check_frames(frames)
        block, block_mass = self.track_block(frames)  # N x H x 2
        to_goal = block - self.goal_position(goal, frames)
        dist = to_goal.norm(dim=-1)
        diagonal = float(np.hypot(*frames.shape[-2:]))
        cost = torch.where(block_mass < self.min_mass, torch.full_like(dist, diagonal), dist)
        if self.pusher_weight or self.keep_out_weight:
            pusher, pusher_mass = self.pusher_position(frames)
            lost = pusher_mass < self.min_mass
            away = to_goal / dist.clamp_min(1e-3)[..., None]  # unit vector from the goal through the block
            approach = (pusher - (block + self.behind * away)).norm(dim=-1)
            approach = torch.where(lost, torch.full_like(approach, diagonal), approach)
            offset = pusher - block
            gap = offset.norm(dim=-1)
            wrong_side = 0.5 * (1.0 - (offset * away).sum(-1) / gap.clamp_min(1e-3))  # 0 behind .. 1 in front
            intrusion = (self.keep_out - gap).clamp_min(0.0) * wrong_side
            intrusion = torch.where(lost, torch.zeros_like(intrusion), intrusion)
            cost = cost + self.pusher_weight * approach + self.keep_out_weight * intrusion
        return weighted_sum(cost, None, self.final_weight)


FINGER_FEATURES = 6  # columns of the finger map: see _finger_features


def _bar_finger(rod: torch.Tensor) -> torch.Tensor:
    """Finger ``... x 2`` from rod centroids: the rod spans rows 0 .. finger, so its centroid is half way."""
    return torch.stack([2.0 * rod[..., 0] + 0.5, rod[..., 1]], dim=-1)


def _finger_features(rod: torch.Tensor) -> torch.Tensor:
    """Quadratic features ``... x 6`` of rod centroids ``... x 2`` for the finger map."""
    r, c = rod[..., 0], rod[..., 1]
    return torch.stack([r, c, r * r, r * c, c * c, torch.ones_like(r)], dim=-1)


def calibrate_finger(cost: PushCost, data_root: str | os.PathLike, max_frames: int = 3000,
                     min_gap: float = 0.05) -> dict[str, Any]:
    """Fit :class:`PushCost`'s finger map on recorded rollouts; returns the map and its error.

    The rollouts record the pusher's and the block's table positions with every frame (as BAIR
    records the end effector's). Camera calibration from them: an affine map from table
    position to the block's detected pixel position (fitted on frames where the pusher is at
    least ``min_gap`` metres from the block, so that it hides none of it); the finger's target
    pixel is that map applied to the pusher's position, i.e. where the block would be seen if
    it stood at the finger, which is the frame the cost compares them in. A least-squares
    quadratic in the rod's centroid then predicts it (about 1 pixel of error where the bar
    heuristic has 2). Half the frames fit, the other half measure the error.

    Returns:
        ``{"finger_map": (2, 6) tensor, "error_px": mean error on held-out frames,
        "bar_error_px": the heuristic's error on them, "frames": frames used}``.
    """
    from envs.scene import StateLayout
    from mbvc.data.rollouts import RolloutDataset
    from mbvc.errors import DataError

    pairs = RolloutDataset(data_root, seq_len=1, stride=1, uint8=True)
    step = max(1, len(pairs) // max_frames)
    frames, states = [], []
    for i in range(0, len(pairs), step):
        item = pairs[i]
        if "states" not in item:
            raise DataError(f"{data_root}: the rollouts record no states; calibrate_finger needs the pusher's position")
        frames.append(item["frames"][0])
        states.append(torch.as_tensor(item["states"][0], dtype=torch.float32))
    frames_f, states_t = torch.stack(frames).float() / 255.0, torch.stack(states)
    (blocks, block_mass), (rods, rod_mass) = cost.block_position(frames_f), cost.rod_centroid(frames_f)
    seen = (block_mass >= cost.min_mass) & (rod_mass >= cost.min_mass)
    if int(seen.sum()) < 50:
        raise DataError(f"{data_root}: only {int(seen.sum())} frames show both the block and the pusher; "
                        "calibrate_finger needs at least 50")
    blocks, rods, states_t = blocks[seen], rods[seen], states_t[seen]
    block_xy, pusher_xy = states_t[:, StateLayout(1).object(0)][:, :2], states_t[:, :2]
    ones = torch.ones(len(blocks), 1)
    clear = (block_xy - pusher_xy).norm(dim=-1) > min_gap
    camera = torch.linalg.lstsq(torch.cat([block_xy, ones], 1)[clear].double(), blocks[clear].double()).solution
    target = (torch.cat([pusher_xy, ones], 1).double() @ camera).float()
    feats = _finger_features(rods)
    fit = torch.arange(len(feats)) % 2 == 0
    finger_map = torch.linalg.lstsq(feats[fit].double(), target[fit].double()).solution.T.float()
    err = (feats[~fit] @ finger_map.T - target[~fit]).norm(dim=-1).mean()
    bar_err = (_bar_finger(rods[~fit]) - target[~fit]).norm(dim=-1).mean()
    return {"finger_map": finger_map, "error_px": float(err), "bar_error_px": float(bar_err), "frames": len(feats)}


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(1e-6)


def _centroid(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroid ``... x 2`` (row, col) and total of weights ``... x h x w`` (the centre when empty)."""
    h, w = weight.shape[-2:]
    rows = torch.arange(h, device=weight.device, dtype=weight.dtype)
    cols = torch.arange(w, device=weight.device, dtype=weight.dtype)
    mass = weight.sum(dim=(-2, -1))
    safe = mass.clamp_min(1e-6)
    row = torch.where(mass > 1e-6, (weight.sum(-1) * rows).sum(-1) / safe, torch.full_like(mass, (h - 1) / 2))
    col = torch.where(mass > 1e-6, (weight.sum(-2) * cols).sum(-1) / safe, torch.full_like(mass, (w - 1) / 2))
    return torch.stack([row, col], dim=-1), mass


def background_image(data_root: str | os.PathLike, max_frames: int = 1500) -> torch.Tensor:
    """The empty scene: per-pixel median of frames spread over a rollout folder, ``C x h x w``.

    The camera never moves and the pusher and the block cover any one pixel in few frames, so
    the median is the tray without them.
    """
    from mbvc.data.rollouts import RolloutDataset
    from mbvc.errors import DataError

    episodes = RolloutDataset(data_root, seq_len=1, stride=None, uint8=True)
    if len(episodes) == 0:
        raise DataError(f"{data_root}: no episodes to estimate the background from")
    full = RolloutDataset(data_root, seq_len=2, stride=1, uint8=True)
    step = max(1, len(full) // max_frames)
    frames = torch.stack([torch.as_tensor(full[i]["frames"][0]) for i in range(0, len(full), step)])
    return frames.float().median(dim=0).values / 255.0


def cost_from_data(cfg: DemoConfig, data_root: str | os.PathLike) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    """:func:`build_cost` with what the ``push`` cost learns from the training rollouts in ``data_root``:
    the background and, with ``cfg.finger_calibration``, the finger map."""
    if cfg.cost != "push":
        return build_cost(cfg)
    background = background_image(data_root)
    finger_map = None
    if cfg.finger_calibration:
        from mbvc.errors import DataError

        try:
            fit = calibrate_finger(PushCost(background), data_root)
        except DataError as exc:  # e.g. the tiny configuration's few frames
            log.warning("push cost: finger calibration impossible (%s); using the rod-as-a-bar heuristic", exc)
            return build_cost(cfg, background)
        log.info("push cost: finger detector calibrated on %d frames, %.2f px error (rod-as-a-bar: %.2f px)",
                 fit["frames"], fit["error_px"], fit["bar_error_px"])
        finger_map = fit["finger_map"]
    return build_cost(cfg, background, finger_map)


def build_cost(cfg: DemoConfig, background: torch.Tensor | None = None,
               finger_map: torch.Tensor | None = None) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    """The image cost the demo's MPC agent plans with (``cfg.cost``); ``push`` needs the background."""
    from agents.costs import DesignatedPixelCost, GoalImageCost

    if cfg.cost == "push":
        if background is None:
            raise ConfigError("the push cost needs the background image (background_image(data_root))")
        return PushCost(background, pusher_weight=cfg.pusher_weight, keep_out_weight=cfg.keep_out_weight,
                        finger_map=finger_map)
    if cfg.cost == "designated_pixel":
        return DesignatedPixelCost(BLOCK_COLOUR)
    return GoalImageCost()


# -- environment helpers ---------------------------------------------------------------------------


def make_eval_env(cfg: DemoConfig, image_size: int | None = None) -> Any:
    """The evaluation environment: ``mbvc/Push-v0`` with the demo's goal distances, ending on success."""
    import gymnasium as gym

    import envs  # noqa: F401  registers the ids

    return gym.make(ENV_ID, image_size=image_size or cfg.image_size, goal_distance=tuple(cfg.goal_distance),
                    episode_length=cfg.eval_episode_length, terminate_on_success=True)


def eval_seeds(cfg: DemoConfig, count: int | None = None) -> list[int]:
    """Seeds of the held-out evaluation goals (the same for every agent)."""
    n = cfg.eval_episodes if count is None else count
    return [EVAL_SEED_BASE + 1000 * cfg.seed + i for i in range(n)]


def clear_goal_image(env: Any) -> np.ndarray:
    """The goal image with the pusher moved where it hides the least of the block.

    ``goal_image()`` leaves the pusher at its current place, where its rod may cover the block
    at the goal; a goal image is a picture of the desired block position, so the pusher is put
    at whichever of a few spots away from the goal shows most of the block.
    """
    base = env.unwrapped
    goal = base.goal
    best, best_mass = None, -1.0
    for dx, dy in ((0.0, 0.13), (0.0, -0.13), (0.13, 0.0), (-0.13, 0.0)):
        spot = np.clip(goal + (dx, dy), -0.18, 0.18)
        image = base.goal_image(pusher_xy=(float(spot[0]), float(spot[1])))
        frame = torch.as_tensor(image).float().div(255).permute(2, 0, 1)
        from agents.costs import colour_mass

        mass = float(colour_mass(frame, BLOCK_COLOUR, 0.3).sum())
        if mass > best_mass:
            best, best_mass = image, mass
    return best  # type: ignore[return-value]


# -- stages --------------------------------------------------------------------------------------


class StageRecord:
    """Reads and writes ``OUT/<stage>.json``: the settings a stage ran with and what it produced."""

    def __init__(self, out: Path, stage: str) -> None:
        self.path = out / f"{stage}.json"
        self.stage = stage

    def load(self) -> dict[str, Any] | None:
        """The record, or ``None`` when the stage has not finished."""
        if not self.path.is_file():
            return None
        try:
            return json.loads(self.path.read_text())
        except ValueError:
            log.warning("%s is not valid JSON: the %s stage runs again", self.path, self.stage)
            return None

    def write(self, settings: dict[str, Any], **content: Any) -> dict[str, Any]:
        """Write the record atomically and return it."""
        record = {"stage": self.stage, "settings": settings, **content}
        write_json(self.path, record)
        return record


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [f"{k}: was {old.get(k)!r}, now {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def collect_settings(cfg: DemoConfig) -> dict[str, Any]:
    """The settings that determine the collected data."""
    return {"env_id": ENV_ID, "policy": "mbvc.demo:data_policy", "random_episodes": RANDOM_EPISODES,
            "seed": cfg.seed, "image_size": cfg.image_size, "episodes": cfg.episodes,
            "val_episodes": cfg.val_episodes, "episode_length": cfg.episode_length}


def collect_stage(cfg: DemoConfig, out: Path) -> dict[str, Any]:
    """Stage 1: collect training and validation episodes into ``out/data/{train,val}``.

    Returns:
        Per split: episodes, frames, seconds and the success rate of the episodes' policy.
    """
    from envs.collect import CollectConfig, collect

    stats: dict[str, Any] = {}
    for split, count, seed in (("train", cfg.episodes, cfg.seed), ("val", cfg.val_episodes, cfg.seed + 1)):
        ccfg = CollectConfig(env_id=ENV_ID, num_episodes=count, policy="mbvc.demo:data_policy", seed=seed,
                             image_size=cfg.image_size, episode_length=cfg.episode_length,
                             num_envs=min(cfg.num_envs, count), shard_size=64, progress=cfg.progress)
        log.info("collect: %d %s episodes of %d steps (%dx%d frames, %d worker(s))", count, split,
                 cfg.episode_length, cfg.image_size, cfg.image_size, ccfg.num_envs)
        result = collect(out / "data" / split, ccfg)
        stats[split] = {"episodes": result.episodes_total, "new_episodes": result.episodes_new,
                        "frames": result.frames, "seconds": result.seconds, "policy_success_rate": result.success_rate}
    stats["env_steps"] = (cfg.episodes + cfg.val_episodes) * cfg.episode_length
    return stats


def _train_overrides(cfg: DemoConfig, data_root: Path) -> list[str]:
    return [f"data.root={data_root.as_posix()!r}", f"model.img_width={cfg.image_size}", "model.img_height=null",
            f"train.seed={cfg.seed}", f"train.device={cfg.device}", f"train.progress={str(cfg.progress).lower()}",
            *cfg.train_overrides]


def _scaled_schedule(iterations: int) -> list[str]:
    """Iterations plus a curriculum and warm-up compressed to them (the preset's proportions)."""
    s1, s2 = max(1, iterations // 10), max(2, iterations // 2)
    return [f"train.iterations={iterations}", f"train.curriculum.r_sampling_step_1={s1}",
            f"train.curriculum.r_sampling_step_2={s2}", f"train.curriculum.r_exp_alpha={max(1, iterations // 10)}",
            f"train.warmup_iters={min(50, max(1, iterations // 20))}",
            f"train.checkpoint_interval={max(1, min(250, iterations // 4))}",
            f"train.eval_interval={max(1, iterations // 4)}"]


def seconds_per_iteration(run_cfg: Any, train_set: Any, device: torch.device, steps: int = 4) -> float:
    """Measure a training iteration of ``run_cfg``'s model on ``train_set`` (after one warm-up step)."""
    from mbvc.data import to_float
    from mbvc.models import build_model

    model = build_model(run_cfg.model).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=run_cfg.train.lr)
    b = min(run_cfg.train.batch_size, len(train_set))
    samples = [train_set[i % len(train_set)] for i in range(b)]
    total = run_cfg.model.total_length
    frames = to_float(torch.stack([torch.as_tensor(s["frames"]) for s in samples])[:, :total]).to(device)
    actions = torch.stack([torch.as_tensor(s["actions"]) for s in samples])[:, :total].float().to(device)
    mask = torch.ones(b, run_cfg.model.mask_steps(total), device=device)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        out = model(frames, mask, actions)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - start)
    # A full batch costs batch_size / b of the measured one when the data is smaller than a batch.
    return float(np.median(times)) * run_cfg.train.batch_size / b


def train_settings(cfg: DemoConfig) -> dict[str, Any]:
    """The settings that determine the trained model (the data's are in :func:`collect_settings`)."""
    return {"preset": cfg.preset, "iterations": cfg.iterations,
            "train_minutes": None if cfg.iterations is not None else cfg.train_minutes,
            "overrides": list(cfg.train_overrides), "image_size": cfg.image_size, "seed": cfg.seed}


def train_stage(cfg: DemoConfig, out: Path) -> dict[str, Any]:
    """Stage 2: train the world model into the run folder ``out/model`` (resuming a broken run).

    Returns:
        Iterations, seconds, the model file and the last validation scores.
    """
    return train_world_model(cfg, out / "data", out / "model")


def train_world_model(cfg: DemoConfig, data_root: Path, run_dir: Path, extra: Sequence[str] = ()) -> dict[str, Any]:
    """Train ``cfg.preset`` (plus ``extra`` overrides) on the rollouts in ``data_root`` into ``run_dir``.

    A run folder holding a configuration but no final model is resumed from its last checkpoint.
    With ``cfg.iterations`` unset, one training step is timed first and the iterations (and
    the curriculum) are fitted to ``cfg.train_minutes``.

    Returns:
        Iterations, seconds, the model file, the last validation scores and the model config.
    """
    from mbvc.config import load_run_config
    from mbvc.training.distributed import DistInfo
    from mbvc.training.setup import (
        build_datasets,
        build_trainer,
        load_resume_config,
        prepare_run_dir,
    )
    from mbvc.training.trainer import resolve_device

    resume = (run_dir / "config.yaml").is_file()
    overrides = _train_overrides(cfg, data_root) + list(extra)
    if resume:
        run_cfg = load_resume_config(run_dir)
        log.info("train: resuming the run in %s (%d iterations)", run_dir, run_cfg.train.iterations)
        datasets = build_datasets(run_cfg)
    else:
        run_cfg = load_run_config(cfg.preset, overrides)
        datasets = build_datasets(run_cfg)
        iterations = cfg.iterations
        if iterations is None:
            device = resolve_device(run_cfg.train.device, DistInfo())
            per_it = seconds_per_iteration(run_cfg, datasets[0], device)
            # About 10% of the budget goes to validation and checkpoints.
            iterations = max(20, int(0.9 * cfg.train_minutes * 60 / per_it))
            log.info("train: %.0f ms per iteration here: %d iterations fit %.1f min", 1000 * per_it, iterations,
                     cfg.train_minutes)
            # The time limit only guards against a machine that slows down mid-run.
            overrides += [f"train.time_limit_min={1.5 * cfg.train_minutes}"]
        run_cfg = load_run_config(cfg.preset, overrides + _scaled_schedule(iterations) + list(cfg.train_overrides)
                                  + list(extra))
        prepare_run_dir(run_dir, run_cfg, resume=False)
    m = run_cfg.model
    log.info("train: %s, hidden %s, %dx%d frames, %d -> %d, %d iterations of batch %d", m.name, list(m.num_hidden),
             m.img_width, m.img_height, m.input_length, m.total_length, run_cfg.train.iterations,
             run_cfg.train.batch_size)
    trainer = build_trainer(run_cfg, run_dir, resume=resume, datasets=datasets)
    try:
        result = trainer.fit(resume=resume)
    finally:
        trainer.logger.close()
    return {"iterations": result.iteration, "planned_iterations": run_cfg.train.iterations,
            "train_seconds": result.elapsed_s, "model": str(result.model_path), "validation": result.last_eval,
            "parameters": sum(p.numel() for p in trainer.model.parameters()),
            "model_config": run_cfg.model.to_dict()}


class RecordingAgent:
    """Wraps an MPC agent to keep, for one episode, each observation, the plan's imagined frames and the action."""

    def __init__(self, agent: Any, record: bool) -> None:
        self.agent, self.record = agent, record
        self.steps: list[dict[str, Any]] = []

    @property
    def step_times(self) -> list[float]:
        return self.agent.step_times

    def reset(self, obs: dict[str, Any] | None = None, goal: Any = None, seed: int | None = None) -> None:
        self.agent.reset(obs, goal=goal, seed=seed)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        plans = len(self.agent.plan_times)
        action = self.agent.act(obs)
        if self.record:
            fresh = len(self.agent.plan_times) > plans
            pred = self.agent.last_prediction
            self.steps.append({"image": np.asarray(obs["image"]).copy(), "action": action,
                               "prediction": None if pred is None else pred.detach().cpu().clone(),
                               "replanned": fresh})
        return action


def _evaluate(name: str, agent: Any, env: Any, seeds: Sequence[int], goal_fn: Callable[[Any], Any],
              progress: bool) -> dict[str, Any]:
    """Score ``agent`` on ``seeds`` one episode at a time (a progress bar per agent)."""
    from tqdm.auto import tqdm

    from agents.evaluation import EvalResult, evaluate_agent

    result = EvalResult()
    start = time.perf_counter()
    with tqdm(seeds, desc=f"eval {name}", unit="ep", disable=not progress) as bar:
        for seed in bar:
            result.episodes.extend(evaluate_agent(agent, env, [seed], goal_fn=goal_fn).episodes)
            bar.set_postfix(success=f"{result.success_rate:.0%}", refresh=False)
    summary = result.to_dict()
    summary["seconds"] = time.perf_counter() - start
    log.info("eval %s: success %.0f%% over %d episodes, final distance %.1f cm", name, 100 * result.success_rate,
             len(result.episodes), 100 * result.final_distance)
    return summary


def evaluate_settings(cfg: DemoConfig) -> dict[str, Any]:
    """The settings that determine the evaluation (besides the model)."""
    keys = ("eval_episodes", "goal_distance", "eval_episode_length", "cost", "pusher_weight", "keep_out_weight",
            "finger_calibration", "planner",
            "population", "planner_iterations", "horizon", "replan_every", "oracle_planner", "oracle_population",
            "seed", "gif_scale")
    d = cfg.to_dict()
    return {k: d[k] for k in keys}


def evaluate_stage(cfg: DemoConfig, out: Path, device: torch.device) -> dict[str, Any]:
    """Stage 3: MPC with the trained model, random and oracle agents on the same held-out goals.

    Writes ``out/episode.gif`` (the first MPC episode: observation, goal and imagined future).

    Returns:
        ``{"results": {agent: summary}, "gif": path}``.
    """
    from agents import (
        MPCAgent,
        OracleModel,
        OracleStateCost,
        PlannerConfig,
        PredRNNModel,
        RandomAgent,
    )
    from mbvc.training.artifacts import load_trained

    trained = load_trained(out / "model")
    net = trained.model.to(device)
    max_h = net.config.total_length - net.config.input_length
    if cfg.horizon > max_h:
        log.warning("planning horizon %d exceeds the %d steps the model was trained to predict", cfg.horizon, max_h)
    env = make_eval_env(cfg)
    seeds = eval_seeds(cfg)
    results: dict[str, Any] = {}
    try:
        planner = PlannerConfig(cfg.planner, num_iterations=cfg.planner_iterations, population_size=cfg.population,
                                seed=cfg.seed)
        mpc = MPCAgent(PredRNNModel(net), cost_from_data(cfg, out / "data" / "train"), planner, horizon=cfg.horizon,
                       action_space=env.action_space, replan_every=cfg.replan_every, record_predictions=True)
        recorder = RecordingAgent(mpc, record=True)
        goals: list[np.ndarray] = []

        def goal_fn(e: Any) -> np.ndarray:
            goals.append(clear_goal_image(e))
            return goals[-1]

        # The first episode alone, recorded for the GIF; then the rest.
        first = _evaluate("mpc", recorder, env, seeds[:1], goal_fn, cfg.progress)
        recorder.record = False
        rest = _evaluate("mpc", recorder, env, seeds[1:], goal_fn, cfg.progress) if len(seeds) > 1 else None
        results["mpc"] = _merge(first, rest)
        results["mpc"]["model"] = net.config.name
        results["mpc"]["planner"] = {"name": cfg.planner, "population": cfg.population,
                                     "iterations": cfg.planner_iterations, "horizon": cfg.horizon,
                                     "replan_every": cfg.replan_every, "cost": cfg.cost}
        gif = write_episode_gif(out / "episode.gif", recorder.steps, goals[0], cfg)

        rand = RandomAgent(env.action_space, seed=cfg.seed)
        no_goal = lambda e: None
        results["random"] = _evaluate("random", rand, env, seeds, no_goal, cfg.progress)

        oracle = OracleModel(env, render=False)
        try:
            oracle_agent = MPCAgent(oracle, OracleStateCost(oracle, pusher_weight=ORACLE_PUSHER_WEIGHT),
                                    planner.replace(name=cfg.oracle_planner, population_size=cfg.oracle_population),
                                    horizon=cfg.horizon,
                                    action_space=env.action_space, replan_every=cfg.replan_every)
            results["oracle"] = _evaluate("oracle", oracle_agent, env, seeds, no_goal, cfg.progress)
            results["oracle"]["planner"] = {**results["mpc"]["planner"], "name": cfg.oracle_planner,
                                            "population": cfg.oracle_population, "cost": "true state"}
        finally:
            oracle.close()
    finally:
        env.close()
    return {"results": results, "gif": str(gif), "seeds": seeds}


def _merge(first: dict[str, Any], rest: dict[str, Any] | None) -> dict[str, Any]:
    if rest is None:
        return first
    episodes = first["per_episode"] + rest["per_episode"]
    plan = [e["plan_ms"] for e in episodes if e["plan_ms"] is not None]
    return {"episodes": len(episodes), "success_rate": float(np.mean([e["success"] for e in episodes])),
            "final_distance": float(np.mean([e["final_distance"] for e in episodes])),
            "plan_ms": float(np.mean(plan)) if plan else None, "per_episode": episodes,
            "seconds": first["seconds"] + rest["seconds"]}


def _label(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` with a caption bar above it."""
    from PIL import Image, ImageDraw

    bar = Image.new("RGB", (image.shape[1], 12), (255, 255, 255))
    ImageDraw.Draw(bar).text((2, 0), text, fill=(0, 0, 0))
    return np.concatenate([np.asarray(bar), image], axis=0)


def episode_gif_frames(steps: Sequence[dict[str, Any]], goal: np.ndarray, scale: int = 4,
                       shown: int = 4) -> list[np.ndarray]:
    """GIF frames: the observation, the goal, and the imagined future of the plan being executed.

    Args:
        steps: records of :class:`RecordingAgent` (``image`` uint8 ``H x W x 3``, ``prediction``
            ``H' x C x h x w`` of the current plan, ``replanned``).
        goal: goal image ``H x W x 3`` uint8.
        scale: integer upscaling of every panel.
        shown: imagined frames shown (evenly spaced over the horizon).
    """
    from agents.core import image_to_tensor
    from mbvc.evaluation.strips import to_rgb_uint8

    def up(img: np.ndarray) -> np.ndarray:
        return np.kron(img, np.ones((scale, scale, 1), dtype=np.uint8))

    frames = []
    size = steps[0]["prediction"].shape[-2:] if steps and steps[0]["prediction"] is not None else None
    prediction, offset = None, 0
    for t, step in enumerate(steps):
        if step["prediction"] is not None and step["replanned"]:
            prediction, offset = step["prediction"], 0  # imagined frames t+1 .. t+H of the new plan
        obs = step["image"]
        if size is not None and tuple(obs.shape[:2]) != tuple(size):
            obs = to_rgb_uint8(image_to_tensor(obs, size))
            goal_img = to_rgb_uint8(image_to_tensor(goal, size))
        else:
            goal_img = goal
        wide = obs.shape[1] * scale >= 80  # room for the long captions
        panels = [_label(up(obs), f"t={t}"), _label(up(goal_img), "goal")]
        if prediction is not None and offset < prediction.shape[0]:
            # Between replans the plan is partly executed: its future starts ``offset`` frames in.
            future = prediction[offset:]
            picks = sorted({round(float(x)) for x in np.linspace(0, len(future) - 1, min(shown, len(future)))})
            for k in picks:
                caption = f"imagined +{k + 1}" if wide else f"+{k + 1}"
                panels.append(_label(up(to_rgb_uint8(future[k].clamp(0, 1))), caption))
        frames.append(np.concatenate(panels, axis=1))
        offset += 1
    width = max(f.shape[1] for f in frames)
    return [np.pad(f, ((0, 0), (0, width - f.shape[1]), (0, 0)), constant_values=255) for f in frames]


def write_episode_gif(path: Path, steps: Sequence[dict[str, Any]], goal: np.ndarray, cfg: DemoConfig) -> Path:
    """Write :func:`episode_gif_frames` as a looping GIF."""
    from mbvc.evaluation.strips import write_gif

    if not steps:
        raise ConfigError("no recorded MPC steps to draw (eval_episode_length must be >= 1)")
    return write_gif(path, episode_gif_frames(steps, goal, cfg.gif_scale), fps=4.0)


# -- the pipeline --------------------------------------------------------------------------------


def machine_info(device: torch.device | None = None) -> dict[str, Any]:
    """Where the demo ran: CPU count, torch threads, Python/torch versions and the device."""
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "device": str(device) if device is not None else None}
    if device is not None and device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def prepare_out_dir(out: str | os.PathLike, cfg: DemoConfig, force: bool) -> Path:
    """Check and create the output folder; with ``force``, remove the outputs of earlier stages.

    Only what the demo writes is removed (``data/``, ``model/``, the stage records, the GIF and
    the report), and only in a folder the demo made (it holds ``demo.json``).

    Raises:
        ConfigError: ``out`` is a file, cannot be created, or is a non-empty folder the demo did not make.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; the demo needs a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ConfigError(f"--out {out} is a non-empty folder that the demo did not make (no {MARKER}); "
                          "choose an empty or new folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    if force:
        for name in ("data", "model"):
            if (out / name).is_dir():
                shutil.rmtree(out / name)
        for name in [f"{s}.json" for s in STAGES] + ["eval.json", "episode.gif", "report.json"]:
            if (out / name).is_file():
                (out / name).unlink()
    write_json(out / MARKER, {"config": cfg.to_dict(), "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    return out


class DemoRun:
    """The demo's stages over one output folder, each skipped when finished with the same settings.

    :func:`run_demo` runs them all; the control benchmark uses :meth:`collect` and
    :meth:`train` to reuse (or make) the demo's data and model.

    Args:
        cfg: the configuration.
        out: output folder (checked and created; see :func:`prepare_out_dir`).
        force: redo every stage, removing the outputs of an earlier run in ``out``.
    """

    def __init__(self, cfg: DemoConfig, out: str | os.PathLike = "runs/demo", force: bool = False) -> None:
        from mbvc.training.distributed import DistInfo
        from mbvc.training.trainer import resolve_device

        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        self.cfg = cfg
        self.device = resolve_device(cfg.device, DistInfo())
        self.out = prepare_out_dir(out, cfg, force)
        self.records = {s: StageRecord(self.out, s) for s in STAGES}
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []
        self._results: dict[str, dict[str, Any]] = {}  # stages already run or found by this object

    def _stage(self, name: str, settings: dict[str, Any], fn: Callable[[], dict[str, Any]], strict: bool) -> dict[str, Any]:
        if name not in self._results:
            self._results[name] = self._run_stage(name, settings, fn, strict)
        return self._results[name]

    def _run_stage(self, name: str, settings: dict[str, Any], fn: Callable[[], dict[str, Any]], strict: bool) -> dict[str, Any]:
        from mbvc.seeding import seed_everything

        done = self.records[name].load()
        if done is not None:
            if done.get("settings") == settings:
                log.info("[%s] already done (%s): skipped; --force redoes it", name, self.records[name].path)
                self.skipped.append(name)
                self.timings[name] = float(done.get("stage_seconds", 0.0))
                return done
            diff = _differences(done.get("settings", {}), settings)
            if strict:
                raise ConfigError(f"{self.out} holds a finished {name} stage made with other settings "
                                  f"({'; '.join(diff[:4])}); pass --force to redo it or choose another --out")
            log.info("[%s] settings changed (%s): running it again", name, "; ".join(diff[:4]))
        log.info("[%s] starting", name)
        seed_everything(self.cfg.seed)
        start = time.perf_counter()
        content = fn()
        seconds = time.perf_counter() - start
        self.timings[name] = seconds
        log.info("[%s] done in %.1f s", name, seconds)
        return self.records[name].write(settings, stage_seconds=seconds, **content)

    def collect(self) -> dict[str, Any]:
        """Stage 1 (:func:`collect_stage`), or its record."""
        return self._stage("collect", collect_settings(self.cfg), lambda: collect_stage(self.cfg, self.out), strict=True)

    def train(self) -> dict[str, Any]:
        """Stage 2 (:func:`train_stage`) after stage 1, or its record."""
        self.collect()
        return self._stage("train", {**train_settings(self.cfg), "data": collect_settings(self.cfg)},
                           lambda: train_stage(self.cfg, self.out), strict=True)

    def evaluate(self) -> dict[str, Any]:
        """Stage 3 (:func:`evaluate_stage`) after stages 1-2, or its record (rerun when its settings changed)."""
        training = self.train()
        settings = {**evaluate_settings(self.cfg), "model": training.get("model"), "iterations": training.get("iterations")}
        return self._stage("evaluate", settings, lambda: evaluate_stage(self.cfg, self.out, self.device), strict=False)

    def report(self) -> dict[str, Any]:
        """Run what is missing and write ``out/report.json``; returns the report."""
        data, training, evaluation = self.collect(), self.train(), self.evaluate()
        start = time.perf_counter()
        strip = ("stage", "settings", "stage_seconds")
        report = {
            "config": self.cfg.to_dict(),
            "timings_s": {k: round(self.timings[k], 2) for k in ("collect", "train", "evaluate")},
            "skipped": list(self.skipped),
            "data": {k: v for k, v in data.items() if k not in strip},
            "training": {k: v for k, v in training.items() if k not in strip},
            "results": evaluation["results"],
            "eval_seeds": evaluation.get("seeds"),
            "gif": evaluation["gif"],
            "machine": machine_info(self.device),
        }
        report["timings_s"]["report"] = round(time.perf_counter() - start, 3)
        report["timings_s"]["total"] = round(sum(report["timings_s"].values()), 2)
        write_json(self.out / "report.json", report)
        log.info("report written to %s", self.out / "report.json")
        return report


def run_demo(cfg: DemoConfig, out: str | os.PathLike = "runs/demo", force: bool = False) -> dict[str, Any]:
    """Run (or resume) the four stages and return the report (also written to ``out/report.json``).

    Args:
        cfg: the configuration (:func:`demo_config`).
        out: output folder.
        force: redo every stage, removing the outputs of an earlier run in ``out``.

    Returns:
        The report: ``config``, ``timings_s`` per stage, ``skipped`` stages, ``data``, ``training``,
        ``results`` (``mpc``, ``random``, ``oracle``: success rate, final distance...), ``gif``, ``machine``.

    Raises:
        ConfigError: a bad output folder, or finished stages made with other settings (use
            ``force`` or another folder).
    """
    return DemoRun(cfg, out, force).report()


def results_table(report: dict[str, Any]) -> str:
    """The results of a report as a Markdown table (agent, success, final distance, planning time)."""
    names = {"mpc": "MPC, PredRNN-V2 world model", "random": "random actions", "oracle": "MPC, oracle simulator (true state)"}
    lines = ["| agent | success | final distance (cm) | planning (ms/step) | episodes |", "|---|---|---|---|---|"]
    for key, res in report["results"].items():
        plan = "-" if res.get("plan_ms") is None else f"{res['plan_ms']:.0f}"
        lines.append(f"| {names.get(key, key)} | {100 * res['success_rate']:.0f}% | {100 * res['final_distance']:.1f} "
                     f"| {plan} | {res['episodes']} |")
    return "\n".join(lines)


__all__ = [
    "DemoConfig", "DemoRun", "EpisodeMixPolicy", "PushCost", "RecordingAgent", "build_cost", "calibrate_finger",
    "clear_goal_image", "collect_stage", "cost_from_data", "data_policy", "demo_config", "episode_gif_frames",
    "eval_seeds", "evaluate_stage", "make_eval_env", "prepare_out_dir", "results_table", "run_demo", "train_stage",
    "train_world_model",
]
