"""Costs by name: the ``cost`` section of a preset and ``--cost NAME`` of ``mbvc plan``.

A registered name (``push``, ``designated_pixel``, ``goal_image``, ``lpips``, ``designated_object``,
``designated_push``; add one with
:func:`register_cost`) or a user's own cost as ``package.module:name``. Costs that learn
something from the training data (``push``: the background and the finger detector) receive
the training rollouts' folder.

Example:
    >>> from agents.cost_registry import CostConfig, build_cost
    >>> cost = build_cost(CostConfig(name="goal_image"))
    >>> type(cost).__name__
    'GoalImageCost'
"""
from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mbvc.errors import ConfigError, DataError, did_you_mean

from .costs import Cost, DesignatedPixelCost, GoalImageCost, LPIPSCost

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CostConfig:
    """The image cost an MPC agent plans with (the ``cost`` section of a preset).

    Attributes:
        name: a registered cost (:data:`COSTS`; the ``push-demo`` preset's is ``push``, the
            default the generic ``goal_image``) or ``package.module:name``: a cost
            ``cost(frames N x H x C x h x w, goal) -> N`` used as it is, or a class (or, with
            ``kwargs``, any factory) called with ``kwargs`` to make one.
        pusher_weight: ``push``, ``designated_push``: weight of the shaping that brings the
            pusher (agent) behind the block (object).
        keep_out_weight: ``push``, ``designated_push``: weight of the keep-out term (see
            :func:`agents.costs.push_shaping`).
        finger_calibration: ``push``: fit the finger detector on the training rollouts'
            recorded pusher positions (:func:`agents.push.calibrate_finger`); off: the
            rod-as-a-bar heuristic.
        min_mass: ``push``: summed block weight below which a predicted frame has lost the block
            (that step costs the image diagonal); 0: never lost, the tracker's last position counts
            (a block hidden behind the pusher's rod is then occluded, not gone).
        carry_below: ``push``: fraction of the block's full weight (the most the observed frames
            showed) below which the block counts as hidden under the pusher's rod, in observed and
            predicted frames; a hidden block near the finger is carried by it, one away from it
            stays put (0: off; :meth:`agents.push.PushCost.track_block`).
        carry_radius: ``push``: finger-to-block distance (pixels) within which a hidden block is pushed.
        views: ``push``: camera views side by side in a frame (the env's ``camera="bair+side"``,
            the model's ``views``): one detector per view, combined by
            :class:`agents.push.MultiViewPushCost`.
        final_weight: relative weight of the last planned step (:func:`agents.costs.step_weights`).
        mask: ``goal_image``: pixels that count (``.npy`` or an image file, h x w, 0 = ignored,
            e.g. the agent's own body); ``None``: all of them.
        patch_size: ``designated_object``: side (odd, pixels) of the object's appearance patch.
        search_radius: ``designated_object``: std (pixels) of the prior keeping the track near
            its previous position (``None``: search the whole frame each step).
        temperature: ``designated_object``, ``designated_push``: softmax temperature of the
            object's match scores (``None``: the matching method's default; a higher one
            averages over neighbouring pixels, which gives sub-pixel positions).
        source: ``designated_object``: the object's pixel ``[row, col]`` in the first
            observation (model frame size); ``None``: the environment designates it per episode.
        target: ``designated_object``: where the object should go, ``[row, col]``; ``None``: as ``source``.
        agent: ``designated_push``: the agent's effector pixel ``[row, col]`` in the first
            observation; ``None``: the environment designates it (with ``source``/``target``).
        agent_patch_size: ``designated_push``: side (odd, pixels) of the agent's appearance patch.
        kwargs: keyword arguments of a ``module:name`` factory.
    """

    name: str = "goal_image"
    pusher_weight: float = 0.5
    keep_out_weight: float = 2.0
    finger_calibration: bool = True
    min_mass: float = 0.5
    carry_below: float = 0.0
    carry_radius: float = 5.0
    views: int = 1
    final_weight: float = 1.0
    mask: str | None = None
    patch_size: int = 3
    search_radius: float | None = None
    source: list[float] | None = None
    target: list[float] | None = None
    temperature: float | None = None
    agent: list[float] | None = None
    agent_patch_size: int = 7
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if ":" not in self.name and self.name not in COSTS:
            raise ConfigError(f"unknown cost {self.name!r}; expected one of {sorted(COSTS)} or 'module:name'."
                              + did_you_mean(self.name, COSTS))
        for key in ("pusher_weight", "keep_out_weight", "final_weight", "min_mass", "carry_radius"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"cost.{key} must be >= 0, got {getattr(self, key)!r}")
        if not isinstance(self.views, int) or self.views < 1:
            raise ConfigError(f"cost.views must be a positive int, got {self.views!r}")
        if not 0 <= self.carry_below <= 1:
            raise ConfigError(f"cost.carry_below must be in [0, 1], got {self.carry_below!r}")
        if (self.source is None) != (self.target is None):
            raise ConfigError(f"cost.source and cost.target go together, got source={self.source!r}, target={self.target!r}")
        if self.agent is not None and self.source is None:
            raise ConfigError(f"cost.agent goes with cost.source and cost.target, got agent={self.agent!r} alone")
        if self.kwargs and ":" not in self.name:
            raise ConfigError(f"cost.kwargs are only for 'module:name' costs, got {self.name!r} with {sorted(self.kwargs)}")

    def replace(self, **changes: Any) -> CostConfig:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)


CostFactory = Callable[[CostConfig, "Path | None"], Cost]


def _push(cfg: CostConfig, data_root: Path | None) -> Cost:
    from .push import MultiViewPushCost, PushCost, background_image, calibrate_finger, calibrate_view, split_views

    if data_root is None:
        raise ConfigError("the push cost learns the empty scene from training rollouts: give their folder "
                          "(mbvc plan --data DIR)")
    full = background_image(data_root)
    if full.shape[-1] % cfg.views:
        raise ConfigError(f"cost.views={cfg.views}: the rollouts in {data_root} have frames {full.shape[-1]} pixels "
                          "wide, which do not hold that many views side by side")
    kwargs = dict(pusher_weight=cfg.pusher_weight, keep_out_weight=cfg.keep_out_weight, final_weight=cfg.final_weight,
                  min_mass=cfg.min_mass, carry_below=cfg.carry_below, carry_radius=cfg.carry_radius)
    if cfg.views > 1:  # the views meet on the table: each one's pixels mapped to table positions
        costs = [PushCost(background, **kwargs) for background in split_views(full, cfg.views)]
        fits = [calibrate_view(cost, data_root, view, cfg.views) for view, cost in enumerate(costs)]
        for view, fit in enumerate(fits):
            log.info("push cost: view %d calibrated to the table, block %.2f cm, pusher %.2f cm error", view,
                     100 * fit["block_error_m"], 100 * fit["pusher_error_m"])
        return MultiViewPushCost(costs, fits, fits[0]["px_per_m"])
    finger_map = None
    if cfg.finger_calibration:
        try:
            fit = calibrate_finger(PushCost(full), data_root)
        except DataError as exc:  # e.g. the tiny configuration's few frames
            log.warning("push cost: finger calibration impossible (%s); using the rod-as-a-bar heuristic", exc)
        else:
            log.info("push cost: finger detector calibrated on %d frames, %.2f px error (rod-as-a-bar: %.2f px)",
                     fit["frames"], fit["error_px"], fit["bar_error_px"])
            finger_map = fit["finger_map"]
    return PushCost(full, finger_map=finger_map, **kwargs)


def _designated_pixel(cfg: CostConfig, data_root: Path | None) -> Cost:
    from .push import BLOCK_COLOUR

    return DesignatedPixelCost(BLOCK_COLOUR, final_weight=cfg.final_weight)


def _goal_image(cfg: CostConfig, data_root: Path | None) -> Cost:
    if cfg.mask is None:
        return GoalImageCost(final_weight=cfg.final_weight)
    from .generic_costs import MaskedGoalImageCost

    return MaskedGoalImageCost(final_weight=cfg.final_weight, mask=cfg.mask)


def _designated_object(cfg: CostConfig, data_root: Path | None) -> Cost:
    from .generic_costs import DesignatedGoal, DesignatedObjectCost

    designation = None if cfg.source is None else DesignatedGoal(cfg.source, cfg.target)  # type: ignore[arg-type]
    return DesignatedObjectCost(patch_size=cfg.patch_size, search_radius=cfg.search_radius, temperature=cfg.temperature,
                                final_weight=cfg.final_weight, designation=designation)


def _designated_push(cfg: CostConfig, data_root: Path | None) -> Cost:
    from .generic_costs import DesignatedGoal, DesignatedPushCost

    designation = None
    if cfg.source is not None:
        if cfg.agent is None:
            raise ConfigError("the designated_push cost with fixed pixels needs cost.agent [row, col] too "
                              "(the agent's effector in the first observation)")
        designation = DesignatedGoal(cfg.source, cfg.target, agent=cfg.agent)  # type: ignore[arg-type]
    return DesignatedPushCost(patch_size=cfg.patch_size, search_radius=cfg.search_radius, temperature=cfg.temperature,
                              final_weight=cfg.final_weight, designation=designation,
                              agent_patch_size=cfg.agent_patch_size, approach_weight=cfg.pusher_weight,
                              keep_out_weight=cfg.keep_out_weight)


#: Registered costs: ``factory(cost config, training rollouts folder or None) -> cost``.
COSTS: dict[str, CostFactory] = {
    "push": _push,
    "designated_pixel": _designated_pixel,
    "goal_image": _goal_image,
    "designated_object": _designated_object,
    "designated_push": _designated_push,
    "lpips": lambda cfg, data_root: LPIPSCost(final_weight=cfg.final_weight),
}


def register_cost(name: str, factory: CostFactory) -> None:
    """Make ``factory(cfg, data_root) -> cost`` available as ``CostConfig(name=name)`` / ``--cost name``."""
    if ":" in name:
        raise ConfigError(f"a cost name cannot contain ':' (that is the module:name form), got {name!r}")
    COSTS[name] = factory


def _user_cost(cfg: CostConfig) -> Cost:
    module_name, _, attr = cfg.name.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cost {cfg.name!r}: cannot import {attr!r} from {module_name!r} ({exc})") from None
    if isinstance(obj, type) or cfg.kwargs:
        try:
            obj = obj(**cfg.kwargs)
        except TypeError as exc:
            raise ConfigError(f"cost {cfg.name!r}: cannot be made with kwargs {cfg.kwargs} ({exc})") from None
    if not callable(obj):
        raise ConfigError(f"cost {cfg.name!r} is not callable as cost(frames, goal)")
    return obj


def build_cost(cfg: CostConfig | str, data_root: str | os.PathLike | None = None) -> Cost:
    """The cost ``cfg`` describes.

    Args:
        cfg: a :class:`CostConfig` or just a name.
        data_root: folder of training rollouts, for costs that learn from them (``push``).

    Raises:
        ConfigError: an unknown name, a ``module:name`` that cannot be imported or called, or
            no ``data_root`` for a cost that needs one.
    """
    if isinstance(cfg, str):
        cfg = CostConfig(name=cfg)
    if ":" in cfg.name:
        return _user_cost(cfg)
    return COSTS[cfg.name](cfg, None if data_root is None else Path(data_root))


__all__ = ["COSTS", "CostConfig", "build_cost", "register_cost"]
