"""Costs by name: the ``cost`` section of a preset and ``--cost NAME`` of ``mbvc plan``.

Each registered cost has its own config dataclass (a :class:`CostConfig` with the cost's fields
and a ``build(data_root)`` that makes it); :func:`cost_config` reads a ``cost`` section into
the class its ``name`` selects, refusing keys of another cost. A user's own cost is
``package.module:name`` (:class:`UserCostConfig`); :func:`register_cost` adds a name.

Example:
    >>> from agents.costs.registry import build_cost, cost_config
    >>> type(build_cost(cost_config({"name": "goal_image", "final_weight": 2.0}))).__name__
    'GoalImageCost'
"""
from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mbvc.errors import ConfigError, did_you_mean

from .base import Cost, as_cost


@dataclass(frozen=True)
class CostConfig:
    """The fields every cost section has; a registered cost's config adds its own.

    Attributes:
        name: the registered cost (:data:`COSTS`) or ``package.module:name``.
        final_weight: relative weight of the last planned step (:func:`agents.costs.step_weights`).
    """

    name: str = "goal_image"
    final_weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.final_weight >= 0:
            raise ConfigError(f"cost.final_weight must be >= 0, got {self.final_weight!r}")

    def build(self, data_root: Path | None = None) -> Cost:
        """The cost this section describes (``data_root``: training rollouts, for costs that learn from them)."""
        raise NotImplementedError(f"{type(self).__name__} must define build(data_root)")

    def replace(self, **changes: Any) -> CostConfig:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)


def _non_negative(cfg: Any, *names: str) -> None:
    for key in names:
        if not getattr(cfg, key) >= 0:
            raise ConfigError(f"cost.{key} must be >= 0, got {getattr(cfg, key)!r}")


@dataclass(frozen=True)
class GoalImageCostConfig(CostConfig):
    """``goal_image``: pixel MSE to the goal image (:class:`agents.costs.image.MaskedGoalImageCost`).

    Attributes:
        mask: pixels that count (``.npy`` or an image file, h x w, 0 = ignored, e.g. the agent's
            own body); ``None``: all of them.
    """

    name: str = "goal_image"
    mask: str | None = None

    def build(self, data_root: Path | None = None) -> Cost:
        from .image import GoalImageCost, MaskedGoalImageCost

        if self.mask is None:
            return GoalImageCost(final_weight=self.final_weight)
        return MaskedGoalImageCost(final_weight=self.final_weight, mask=self.mask)


@dataclass(frozen=True)
class LPIPSCostConfig(CostConfig):
    """``lpips``: LPIPS (AlexNet) distance to the goal image (:class:`agents.costs.image.LPIPSCost`)."""

    name: str = "lpips"

    def build(self, data_root: Path | None = None) -> Cost:
        from .image import LPIPSCost

        return LPIPSCost(final_weight=self.final_weight)


@dataclass(frozen=True)
class DesignatedPixelCostConfig(CostConfig):
    """``designated_pixel``: distance of an object of one colour to the goal image's (:class:`DesignatedPixelCost`).

    Attributes:
        colour: the object's RGB in [0, 1] as the camera renders it (the push block:
            ``[0.83, 0.17, 0.14]``, :data:`agents.costs.push.BLOCK_COLOUR`).
        tolerance: colour distance within which a pixel belongs to the object.
    """

    name: str = "designated_pixel"
    colour: list[float] | None = None
    tolerance: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.colour is None or len(self.colour) != 3 or not all(0 <= c <= 1 for c in self.colour):
            raise ConfigError(f"cost.colour must be the object's RGB, three values in [0, 1] (the push block: "
                              f"[0.83, 0.17, 0.14]), got {self.colour!r}")
        if not self.tolerance > 0:
            raise ConfigError(f"cost.tolerance must be > 0, got {self.tolerance!r}")

    def build(self, data_root: Path | None = None) -> Cost:
        from .image import DesignatedPixelCost

        return DesignatedPixelCost(tuple(self.colour or ()), tolerance=self.tolerance, final_weight=self.final_weight)


@dataclass(frozen=True)
class PushCostConfig(CostConfig):
    """``push``: the block's distance to its goal, found by background subtraction (:class:`PushCost`).

    Attributes:
        pusher_weight: weight of the shaping that brings the pusher behind the block.
        keep_out_weight: weight of the keep-out term (:func:`agents.costs.push_shaping`).
        finger_calibration: locate the finger with the detector fitted on the training
            rollouts' recorded pusher positions (:func:`agents.costs.push_calibration.calibrate_finger`); off:
            the rod-as-a-bar heuristic.
        min_mass: summed block weight below which a predicted frame has lost the block (that
            step costs the image diagonal).
        calibration: a saved :class:`agents.costs.push_calibration.PushCalibration` file to plan with;
            ``None``: the one next to the training rollouts, computed there on first use.
        block_entries: the two entries of the world model's state readout holding the block's
            table x, y (indices into its ``model.state_targets``; ``[2, 3]`` for ``[0, 1, 4, 5]``):
            where the rod hides the block in a predicted frame, the cost reads the block there
            (:class:`agents.costs.push.PushCost`). Empty: the frames only.
    """

    name: str = "push"
    pusher_weight: float = 0.5
    keep_out_weight: float = 2.0
    finger_calibration: bool = True
    min_mass: float = 0.5
    calibration: str | None = None
    block_entries: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative(self, "pusher_weight", "keep_out_weight", "min_mass")
        entries = self.block_entries
        if isinstance(entries, (str, bytes)) or not isinstance(entries, (list, tuple)) or len(entries) not in (0, 2) \
                or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in entries):
            raise ConfigError(f"cost.block_entries must be [] or two indices >= 0 into the model's predicted state "
                              f"(the block's x, y), got {list(entries) if isinstance(entries, tuple) else entries!r}")
        object.__setattr__(self, "block_entries", tuple(entries))

    def build(self, data_root: Path | None = None) -> Cost:
        from .push import PushCost
        from .push_calibration import PushCalibration, load_calibration

        if self.calibration is not None:
            calibration = PushCalibration.load(self.calibration)
        elif data_root is None:
            raise ConfigError("the push cost learns the empty scene from training rollouts: give their folder "
                              "(mbvc plan --data DIR) or a saved calibration (cost.calibration)")
        else:
            calibration = load_calibration(data_root, self.finger_calibration)
        if self.block_entries and calibration.camera is None:
            raise ConfigError("cost.block_entries needs the calibration's table-to-pixel map, which could not be fitted "
                              f"on {self.calibration or data_root} (rollouts without states, or too few frames showing "
                              "the block); plan with cost.block_entries=[] to read the frames only")
        return PushCost(calibration.background, finger_map=calibration.finger_map if self.finger_calibration else None,
                        pusher_weight=self.pusher_weight, keep_out_weight=self.keep_out_weight,
                        final_weight=self.final_weight, min_mass=self.min_mass, block_entries=self.block_entries,
                        camera=calibration.camera, block_mass=calibration.block_mass)


@dataclass(frozen=True)
class DesignatedObjectCostConfig(CostConfig):
    """``designated_object``: a designated object, tracked by its looks, to a target pixel (:class:`DesignatedObjectCost`).

    Attributes:
        patch_size: side (odd, pixels) of the object's appearance patch.
        search_radius: std (pixels) of the prior keeping the track near its previous position
            (``None``: search the whole frame each step).
        temperature: softmax temperature of the match scores (``None``: the matching method's default).
        source: the object's pixel ``[row, col]`` in the first observation (model frame size);
            ``None``: the environment designates it per episode.
        target: where the object should go, ``[row, col]``; ``None``: as ``source``.
    """

    name: str = "designated_object"
    patch_size: int = 3
    search_radius: float | None = None
    temperature: float | None = None
    source: list[float] | None = None
    target: list[float] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.source is None) != (self.target is None):
            raise ConfigError(f"cost.source and cost.target go together, got source={self.source!r}, "
                              f"target={self.target!r}")

    def _designation(self, **extra: Any) -> Any:
        from .designated import DesignatedGoal

        return None if self.source is None else DesignatedGoal(self.source, self.target, **extra)  # type: ignore[arg-type]

    def build(self, data_root: Path | None = None) -> Cost:
        from .designated import DesignatedObjectCost

        return DesignatedObjectCost(patch_size=self.patch_size, search_radius=self.search_radius,
                                    temperature=self.temperature, final_weight=self.final_weight,
                                    designation=self._designation())


@dataclass(frozen=True)
class DesignatedPushCostConfig(DesignatedObjectCostConfig):
    """``designated_push``: the designated object pushed by the designated agent (:class:`DesignatedPushCost`).

    Attributes:
        agent: the agent's effector pixel ``[row, col]`` in the first observation; ``None``: the
            environment designates it (with ``source`` / ``target``).
        search_radius: as ``designated_object``'s, but 2 px by default (a pushed object meets
            the agent, whose looks a whole-frame search can take for the object's).
        agent_patch_size: side (odd, pixels) of the agent's appearance patch.
        pusher_weight: weight of the shaping that brings the agent behind the object.
        keep_out_weight: weight of the keep-out term.
    """

    name: str = "designated_push"
    search_radius: float | None = 2.0
    agent: list[float] | None = None
    agent_patch_size: int = 7
    pusher_weight: float = 0.5
    keep_out_weight: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative(self, "pusher_weight", "keep_out_weight")
        if (self.agent is None) != (self.source is None):
            raise ConfigError("cost.agent goes with cost.source and cost.target (the agent's effector pixel in the "
                              f"first observation), got agent={self.agent!r}, source={self.source!r}")

    def build(self, data_root: Path | None = None) -> Cost:
        from .designated import DesignatedPushCost

        return DesignatedPushCost(patch_size=self.patch_size, search_radius=self.search_radius,
                                  temperature=self.temperature, final_weight=self.final_weight,
                                  designation=self._designation(agent=self.agent),
                                  agent_patch_size=self.agent_patch_size, approach_weight=self.pusher_weight,
                                  keep_out_weight=self.keep_out_weight)


@dataclass(frozen=True)
class UserCostConfig(CostConfig):
    """``package.module:name``: a user's cost, used as it is, or a class or factory called with ``kwargs``.

    Attributes:
        kwargs: keyword arguments of the class or factory.
    """

    name: str = "module:name"
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self, data_root: Path | None = None) -> Cost:
        module_name, _, attr = self.name.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cost {self.name!r}: cannot import {attr!r} from {module_name!r} ({exc})") from None
        if isinstance(obj, type) or self.kwargs:
            try:
                obj = obj(**self.kwargs)
            except TypeError as exc:
                raise ConfigError(f"cost {self.name!r}: cannot be made with kwargs {self.kwargs} ({exc})") from None
        if not callable(obj):
            raise ConfigError(f"cost {self.name!r} is not callable as cost(frames, goal)")
        return as_cost(obj)


#: Registered costs: name -> config class (its ``build(data_root)`` makes the cost).
COSTS: dict[str, type[CostConfig]] = {
    "goal_image": GoalImageCostConfig,
    "lpips": LPIPSCostConfig,
    "designated_pixel": DesignatedPixelCostConfig,
    "push": PushCostConfig,
    "designated_object": DesignatedObjectCostConfig,
    "designated_push": DesignatedPushCostConfig,
}


def register_cost(name: str, config_cls: type[CostConfig]) -> None:
    """Make ``config_cls`` (a :class:`CostConfig` dataclass with ``build``) the config of ``cost.name: name``."""
    if ":" in name:
        raise ConfigError(f"a cost name cannot contain ':' (that is the module:name form), got {name!r}")
    if not (isinstance(config_cls, type) and issubclass(config_cls, CostConfig) and dataclasses.is_dataclass(config_cls)):
        raise ConfigError(f"register_cost({name!r}, ...) takes a CostConfig dataclass, got {config_cls!r}")
    COSTS[name] = config_cls


def cost_config(section: Mapping[str, Any] | str | None = None, source: str = "cost") -> CostConfig:
    """The config of the cost a ``cost`` section names, validated (unknown keys named).

    Args:
        section: the section's mapping (``name`` and that cost's fields), or just a name.
        source: the file named in errors.

    Raises:
        ConfigError: an unknown cost name, a key that is not the cost's, or a bad value.
    """
    from mbvc.config import section_config

    values = {"name": section} if isinstance(section, str) else dict(section or {})
    name = values.setdefault("name", CostConfig.name)
    if not isinstance(name, str):
        raise ConfigError(f"{source}: cost.name must be a string, got {name!r}")
    if ":" in name:
        cls: type[CostConfig] = UserCostConfig
    elif name in COSTS:
        cls = COSTS[name]
    else:
        raise ConfigError(f"{source}: unknown cost {name!r}; expected one of {sorted(COSTS)} or 'module:name'."
                          + did_you_mean(name, COSTS))
    return section_config(cls, {"cost": values}, "cost", source)


def with_cost_name(section: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    """A ``cost`` section switched to the cost ``name`` (``--cost NAME``): the other cost's fields are dropped."""
    section = dict(section or {})
    if section.get("name") == name:
        return section
    return {"name": name, **({"final_weight": section["final_weight"]} if "final_weight" in section else {})}


def build_cost(cfg: CostConfig | Mapping[str, Any] | str, data_root: str | os.PathLike | None = None) -> Cost:
    """The cost ``cfg`` describes (a config, a ``cost`` section or a name).

    Args:
        cfg: a :class:`CostConfig`, a section mapping or just a name.
        data_root: folder of training rollouts, for costs that learn from them (``push``).

    Raises:
        ConfigError: an unknown name, a ``module:name`` that cannot be imported or called, or
            no ``data_root`` for a cost that needs one.
    """
    if not isinstance(cfg, CostConfig):
        cfg = cost_config(cfg)
    return cfg.build(None if data_root is None else Path(data_root))


__all__ = ["COSTS", "CostConfig", "DesignatedObjectCostConfig", "DesignatedPixelCostConfig", "DesignatedPushCostConfig",
           "GoalImageCostConfig", "LPIPSCostConfig", "PushCostConfig", "UserCostConfig", "build_cost", "cost_config",
           "register_cost", "with_cost_name"]
