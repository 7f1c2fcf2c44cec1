"""Designated-object costs: what a user can give, an object's pixel and where it should go.

None of these knows anything about an environment (no colour, detector or simulator state):

* :class:`DesignatedObjectCost`: the user points at an object (a pixel of the first
  observation) and at where it should go (a target pixel). The object's appearance, a patch
  around the designated pixel, is followed through the predicted frames by template matching
  (squared differences, or normalised cross-correlation, computed with ``conv2d`` batched over
  candidates and time, a soft-argmax per frame) and the cost is the distance of the tracked
  position to the target, as Visual Foresight's designated-pixel costs but without predicted flow.
* :class:`DesignatedPushCost`: the same, with the agent's effector designated too and the
  shaping of a push (bring the agent behind the object first).

All are batched over candidates (and time) on the frames' device.

Example:
    >>> import torch
    >>> first = torch.zeros(3, 16, 16); first[:, 2:5, 2:5] = 1.0
    >>> goal = DesignatedGoal(source=(3, 3), target=(12, 12)).with_observation(first)
    >>> frames = first.expand(1, 2, 3, 16, 16)
    >>> round(float(DesignatedObjectCost()(frames, goal)), 1)  # the object stays 9 px x sqrt(2) away
    12.7
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mbvc.errors import ConfigError, ShapeError

from .base import Cost, check_frames, push_shaping, weighted_sum

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DesignatedGoal:
    """What a user designates: an object (``source``) and where it should go (``target``).

    Pixels are ``(row, col)`` in the frames the cost sees (the world model's size). The object's
    appearance comes from the first observation of the episode: the MPC agent calls
    :meth:`with_observation` with it (through :meth:`DesignatedObjectCost.start`, called by
    :meth:`agents.mpc.MPCAgent.reset`).

    Costs that follow the designation through the episode's observations (``observe``, called
    by :meth:`agents.mpc.MPCAgent.act` with each new frame) keep where the object and the agent
    are now in ``position`` / ``agent_position``, so that each plan starts tracking from there
    rather than from the first frame.

    Attributes:
        source: the designated object's pixel in the first observation.
        target: the pixel the object should reach.
        image: the first observation ``C x h x w`` in [0, 1] (``None`` until bound).
        agent: optionally, a pixel of the agent's own effector in the first observation (what
            pushes the object; :class:`DesignatedPushCost`).
        position: the object's pixel in the latest observation (``None``: ``source``).
        agent_position: the agent's pixel in the latest observation (``None``: ``agent``).
    """

    source: tuple[float, float]
    target: tuple[float, float]
    image: torch.Tensor | None = None
    agent: tuple[float, float] | None = None
    position: tuple[float, float] | None = None
    agent_position: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("source", "target", "agent", "position", "agent_position"):
            value = getattr(self, name)
            if value is None and name not in ("source", "target"):
                continue
            if value is None or len(tuple(value)) != 2:
                raise ConfigError(f"a designated {name} must be a pixel (row, col), got {value!r}")
            object.__setattr__(self, name, (float(value[0]), float(value[1])))

    @property
    def object_now(self) -> tuple[float, float]:
        """The object's pixel in the latest observation (``source`` until one is tracked)."""
        return self.position if self.position is not None else self.source

    @property
    def agent_now(self) -> tuple[float, float] | None:
        """The agent's pixel in the latest observation (``agent`` until one is tracked)."""
        return self.agent_position if self.agent_position is not None else self.agent

    def with_observation(self, image: torch.Tensor) -> DesignatedGoal:
        """This designation, bound to the first observation ``C x h x w`` (the object's looks)."""
        if not isinstance(image, torch.Tensor) or image.dim() != 3:
            raise ShapeError(f"a designation binds to one frame (C, h, w), got {getattr(image, 'shape', image)}")
        return dataclasses.replace(self, image=image)

    def picture(self) -> np.ndarray | None:
        """The first observation with the source (green), target (red) and agent (blue) marked, ``h x w x 3`` uint8."""
        if self.image is None:
            return None
        img = (self.image.detach().cpu().clamp(0, 1).movedim(0, -1) * 255).to(torch.uint8).numpy().copy()
        if img.shape[-1] == 1:
            img = np.repeat(img, 3, axis=-1)
        marks = [(self.source, (0, 255, 0)), (self.target, (255, 0, 0))]
        if self.agent is not None:
            marks.append((self.agent, (0, 0, 255)))
        for (r, c), colour in marks:
            r, c = int(round(min(max(r, 0), img.shape[0] - 1))), int(round(min(max(c, 0), img.shape[1] - 1)))
            img[r, c] = colour
        return img


def extract_patch(image: torch.Tensor, centre: tuple[float, float], size: int) -> torch.Tensor:
    """The ``C x size x size`` patch of ``image`` (``C x h x w``) centred on pixel ``centre``.

    Pixels outside the image repeat the border, so an object at the edge still gives a patch.
    """
    if size < 1 or size % 2 == 0:
        raise ConfigError(f"patch_size must be a positive odd number, got {size}")
    r, c = int(round(centre[0])), int(round(centre[1]))
    h, w = image.shape[-2:]
    if not (0 <= r < h and 0 <= c < w):
        raise ConfigError(f"the designated pixel {centre} is outside the {h} x {w} frame")
    half = size // 2
    padded = F.pad(image[None], (half, half, half, half), mode="replicate")[0]
    return padded[:, r : r + size, c : c + size]


def match_template(frames: torch.Tensor, template: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Zero-mean normalised cross-correlation of ``template`` at every pixel of ``frames``.

    Args:
        frames: ``B x C x h x w``.
        template: ``C x p x p`` (p odd).
        eps: variance floor: a flat window (no texture) scores ~0, not noise.

    Returns:
        ``B x h x w`` in about [-1, 1] (1: the window is an affine copy of the template).
    """
    c, p = template.shape[0], template.shape[-1]
    n = c * p * p
    t = template - template.mean()
    t = (t / t.norm().clamp_min(1e-8))[None]
    pad = p // 2
    x = F.pad(frames, (pad, pad, pad, pad), mode="replicate")
    ones = torch.ones(1, c, p, p, device=frames.device, dtype=frames.dtype)
    local_sum = F.conv2d(x, ones)
    local_sq = F.conv2d(x * x, ones)
    local_norm = (local_sq - local_sum * local_sum / n).clamp_min(0.0).add_(eps).sqrt_()
    # sum((x - mean_x) * t) = sum(x * t) since t has zero mean.
    return (F.conv2d(x, t.to(frames.dtype)) / local_norm)[:, 0]


def match_ssd(frames: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """Minus the mean squared difference between ``template`` and the window at every pixel.

    Unlike :func:`match_template` it keeps colour and brightness, which tell a small object
    from its surroundings when its shape changes (a rotating arm's tip).

    Args:
        frames: ``B x C x h x w``.
        template: ``C x p x p`` (p odd).

    Returns:
        ``B x h x w`` scores, 0 for a perfect match, lower elsewhere.
    """
    c, p = template.shape[0], template.shape[-1]
    pad = p // 2
    x = F.pad(frames, (pad, pad, pad, pad), mode="replicate")
    ones = torch.ones(1, c, p, p, device=frames.device, dtype=frames.dtype)
    t = template.to(frames.dtype)
    ssd = F.conv2d(x * x, ones) - 2 * F.conv2d(x, t[None]) + (t * t).sum()
    return -(ssd[:, 0] / (c * p * p))


#: Template matching methods of :func:`track_template`: ``(frames, template) -> scores``.
MATCHERS = {"ssd": match_ssd, "ncc": match_template}


def soft_argmax(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """Expected ``(row, col)`` under ``softmax(scores / temperature)`` over ``... x h x w``."""
    h, w = scores.shape[-2:]
    prob = torch.softmax(scores.flatten(-2) / temperature, dim=-1).unflatten(-1, (h, w))
    rows = torch.arange(h, device=scores.device, dtype=scores.dtype)
    cols = torch.arange(w, device=scores.device, dtype=scores.dtype)
    return torch.stack([(prob.sum(-1) * rows).sum(-1), (prob.sum(-2) * cols).sum(-1)], dim=-1)


def track_template(
    frames: torch.Tensor,
    template: torch.Tensor,
    start: tuple[float, float] | torch.Tensor,
    temperature: float = 0.05,
    search_radius: float | None = None,
    method: str = "ncc",
) -> torch.Tensor:
    """Follow an appearance patch through frames ``N x H x C x h x w``; positions ``N x H x 2``.

    The match maps (``method``: ``"ncc"`` or ``"ssd"``, :data:`MATCHERS`) of all ``N x H``
    frames are computed in one batched ``conv2d`` and turned into positions by a soft-argmax
    at ``temperature``. With a
    ``search_radius``, each step prefers positions near the previous step's (a Gaussian prior
    of that std in pixels, starting at ``start``), which keeps the track on the object when a
    similar one appears elsewhere; ``None`` searches the whole frame independently per step.
    """
    if method not in MATCHERS:
        raise ConfigError(f"template matching method must be one of {sorted(MATCHERS)}, got {method!r}")
    n, h = frames.shape[:2]
    scores = MATCHERS[method](frames.flatten(0, 1), template.to(frames.device, frames.dtype))
    scores = scores.unflatten(0, (n, h)) / temperature  # N x H x h x w logits
    if search_radius is None:
        return soft_argmax(scores, 1.0)
    rows = torch.arange(scores.shape[-2], device=frames.device, dtype=frames.dtype)[:, None]
    cols = torch.arange(scores.shape[-1], device=frames.device, dtype=frames.dtype)[None, :]
    pos = torch.as_tensor(start, device=frames.device, dtype=frames.dtype).expand(n, 2)
    out = []
    for t in range(h):  # H is a planning horizon (~10): a short loop, each step batched over N
        d2 = (rows - pos[:, 0, None, None]) ** 2 + (cols - pos[:, 1, None, None]) ** 2
        pos = soft_argmax(scores[:, t] - d2 / (2 * search_radius**2), 1.0)
        out.append(pos)
    return torch.stack(out, dim=1)


def _track_designated(frames: torch.Tensor, template: torch.Tensor, designated: tuple[float, float],
                      now: tuple[float, float], temperature: float, search_radius: float | None,
                      method: str) -> torch.Tensor:
    """Track a designated pixel's patch; positions ``N x H x 2`` of the *designated pixel*.

    The patch is cut around the designated pixel rounded to the grid, so the tracker finds
    where that rounded centre went; adding back the sub-pixel remainder reports the pixel the
    user designated (at 32x32 the remainder, up to 0.7 px, is half the 2.5 cm success radius).
    The prior starts from ``now`` expressed in the patch's own (rounded) frame.
    """
    rem = torch.tensor([v - round(v) for v in designated], device=frames.device, dtype=frames.dtype)
    start = torch.tensor(now, device=frames.device, dtype=frames.dtype) - rem
    return track_template(frames, template, start, temperature, search_radius, method) + rem


def _check_tracker(prefix: str, patch_size: int, method: str, temperature: float | None,
                   search_radius: float | None) -> float:
    """Refuse bad settings of one template tracker; its temperature (``None``: the method's default)."""
    if patch_size < 1 or patch_size % 2 == 0:
        raise ConfigError(f"{prefix}patch_size must be a positive odd number, got {patch_size}")
    if method not in MATCHERS:
        raise ConfigError(f"{prefix}method must be one of {sorted(MATCHERS)}, got {method!r}")
    if temperature is None:
        temperature = 0.001 if method == "ssd" else 0.05  # ssd: mean squared differences; ncc: in [-1, 1]
    if not temperature > 0 or (search_radius is not None and not search_radius > 0):
        raise ConfigError(f"{prefix}temperature and {prefix}search_radius must be > 0, got {temperature}, {search_radius}")
    return temperature


class DesignatedObjectCost(Cost):
    """Distance (pixels) from the designated object, tracked in the predictions, to its target.

    The goal is a :class:`DesignatedGoal` bound to the episode's first observation: the object's
    appearance is the ``patch_size`` patch around ``goal.source`` there. In every predicted frame
    the object is found by :func:`track_template` and the cost is its distance to
    ``goal.target``, weighted over the horizon.

    Args:
        patch_size: side of the appearance patch (odd), in pixels of the model's frames.
        method: ``"ssd"`` (squared differences: keeps colour) or ``"ncc"`` (normalised
            cross-correlation: invariant to brightness and contrast, needs texture). On
            Reacher's 32x32 frames the fingertip is tracked to 0.3 px mean error by ``ssd``
            with a 1-pixel patch and 1-4 px by ``ncc`` with 3-5 pixel patches (docs/control.md).
        temperature: softmax temperature of the scores; ``None``: 0.001 for ``ssd`` (mean
            squared differences of values in [0, 1]), 0.05 for ``ncc`` (scores in [-1, 1]).
        search_radius: std (pixels) of the prior that keeps the track near the previous step's
            position; ``None``: search the whole frame every step.
        final_weight: relative weight of the last planned step.
        weights: explicit per-step weights ``H``.
        designation: the user's fixed designation (same pixels every episode); ``None``: the
            environment designates per episode (:meth:`goal_for_env`).
    """

    def __init__(
        self,
        patch_size: int = 3,
        method: str = "ssd",
        temperature: float | None = None,
        search_radius: float | None = None,
        final_weight: float = 1.0,
        weights: Sequence[float] | torch.Tensor | None = None,
        designation: DesignatedGoal | None = None,
    ) -> None:
        self.designation = designation
        temperature = _check_tracker("", patch_size, method, temperature, search_radius)
        self.patch_size, self.temperature, self.search_radius = patch_size, temperature, search_radius
        self.method = method
        self.final_weight = final_weight
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        self._templates: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # role -> (first image, patch)

    def goal_for_env(self, env: Any, image_size: tuple[int, int]) -> DesignatedGoal:
        """The episode's designation: the user's fixed one, else ``env.unwrapped.designate(image_size)``.

        An environment may offer ``designate(image_size) -> (source, target)`` pixels for its
        benchmark goals (what a user would click on); the cost itself never reads the state.

        Raises:
            ConfigError: neither a fixed designation nor an environment that designates.
        """
        if self.designation is not None:
            return self.designation
        designate = getattr(getattr(env, "unwrapped", env), "designate", None)
        if designate is None:
            raise ConfigError("the designated_object cost needs cost.source and cost.target pixels [row, col] "
                              f"(the environment {type(getattr(env, 'unwrapped', env)).__name__} designates none)")
        source, target = designate(tuple(image_size))
        return DesignatedGoal(source, target)

    def template(self, goal: DesignatedGoal, role: str = "object") -> torch.Tensor:
        """The object's (or, ``role="agent"``, the agent's) patch from the goal's first observation, cached."""
        if goal.image is None:
            raise ConfigError("the designated-object cost needs the goal bound to the first observation "
                              "(DesignatedGoal.with_observation; MPCAgent.reset does it)")
        cached = self._templates.get(role)
        if cached is None or cached[0] is not goal.image:  # identity, not id(): a freed image's id can come back
            cached = (goal.image, extract_patch(goal.image, *self._patch_spec(goal, role)))
            self._templates[role] = cached
        return cached[1]

    def _patch_spec(self, goal: DesignatedGoal, role: str) -> tuple[tuple[float, float], int]:
        """Centre and size of the patch that shows ``role`` in the first observation."""
        if role != "object":
            raise ConfigError(f"{type(self).__name__} tracks only the object, not {role!r}")
        return goal.source, self.patch_size

    def _goal(self, goal: Any) -> DesignatedGoal:
        if not isinstance(goal, DesignatedGoal):
            raise ConfigError(f"the {type(self).__name__} cost takes a DesignatedGoal (source, target), got "
                              f"{type(goal).__name__}")
        return goal

    def _track(self, frames: torch.Tensor, goal: DesignatedGoal) -> torch.Tensor:
        """Object positions ``N x H x 2`` in frames ``N x H x C x h x w``, from where it is now."""
        return _track_designated(frames, self.template(goal), goal.source, goal.object_now, self.temperature,
                                 self.search_radius, self.method)

    def start(self, goal: Any, frame: torch.Tensor) -> Any:
        """A :class:`DesignatedGoal` bound to the episode's first observation (the object's looks)."""
        return goal.with_observation(frame) if isinstance(goal, DesignatedGoal) else goal

    def picture(self, goal: Any) -> np.ndarray | None:
        """The first observation with the designated pixels marked (:meth:`DesignatedGoal.picture`)."""
        return goal.picture() if isinstance(goal, DesignatedGoal) else super().picture(goal)

    def observe(self, goal: Any, frame: torch.Tensor) -> Any:
        """The goal with the object's position updated from a new observation ``C x h x w``.

        Visual Foresight registers its designated pixel on every new image; here the object's
        patch is matched in the frame near its last position, so plans track the object from
        where it is, not from where the episode started. A goal that is not bound yet is bound to
        this frame (its first observation); goals other than a :class:`DesignatedGoal` pass through.
        """
        if not isinstance(goal, DesignatedGoal):
            return goal
        if goal.image is None:
            return goal.with_observation(frame)
        pos = self._track(frame[None, None].to(goal.image.device, goal.image.dtype), goal)[0, 0]
        return dataclasses.replace(goal, position=(float(pos[0]), float(pos[1])))

    def __call__(self, frames: torch.Tensor, goal: Any) -> torch.Tensor:
        check_frames(frames)
        goal = self._goal(goal)
        pos = self._track(frames, goal)
        target = torch.tensor(goal.target, device=frames.device, dtype=frames.dtype)
        dist = (pos - target).pow(2).sum(-1).sqrt()
        return weighted_sum(dist, self.weights, self.final_weight)


class DesignatedPushCost(DesignatedObjectCost):
    """Push a designated object to its target with the designated agent: no environment knowledge.

    The user points at three pixels of the first observation: the object, where it should go,
    and the agent's effector (what does the pushing). Both are followed through the predicted
    frames by template matching (:class:`DesignatedObjectCost`'s tracker; the agent with its
    own, larger patch, since an effector is often thin and its context, e.g. the arm above it,
    is what makes it findable), and the cost per step is the object's distance to the target
    plus the push shaping of :func:`agents.costs.push_shaping`: ``approach_weight`` times the
    agent's distance to the point ``behind`` pixels beyond the object, where a push towards the
    target starts, plus ``keep_out_weight`` times its intrusion on the object's target side.
    The object's distance alone is flat until the agent touches it, which leaves a planner with
    no slope to follow (Push-v0: 12% with the world model); the shaping is knowledge of the
    *task* (pushing), not of the environment: no colour, detector or simulator state.

    Args:
        agent_patch_size: side (odd, pixels) of the agent's appearance patch.
        agent_method: ``"ncc"`` or ``"ssd"`` for the agent (see :class:`DesignatedObjectCost`).
        agent_temperature: softmax temperature of the agent's scores (``None``: the method's default).
        agent_search_radius: std (pixels) of the prior keeping the agent's track near its last position.
        approach_weight: weight of the approach term (0: no shaping).
        behind: pixels beyond the object (away from the target) where the agent should be.
        keep_out: pixels around the object the agent should enter only from behind.
        keep_out_weight: weight of the keep-out term.
        search_radius: std (pixels) of the prior keeping the object's track near its last
            position; unlike :class:`DesignatedObjectCost` it is on by default (2 px): a pushed
            object has the agent beside it, and a patch that takes some of the agent in matches
            the agent elsewhere in a whole-frame search (Push-v0 with the demo's world models:
            71% against 64% over three draws, benchmarks/notes/push-state-readout.md).
        **kwargs: the object's tracking and the horizon weights (:class:`DesignatedObjectCost`);
            ``designation`` may carry a fixed ``agent`` pixel.
    """

    def __init__(
        self,
        agent_patch_size: int = 7,
        agent_method: str = "ncc",
        agent_temperature: float | None = None,
        agent_search_radius: float | None = 2.0,
        approach_weight: float = 0.5,
        behind: float = 3.0,
        keep_out: float = 6.0,
        keep_out_weight: float = 2.0,
        search_radius: float | None = 2.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(search_radius=search_radius, **kwargs)
        agent_temperature = _check_tracker("agent_", agent_patch_size, agent_method, agent_temperature,
                                           agent_search_radius)
        if not (behind > 0 and keep_out > 0):
            raise ConfigError(f"behind and keep_out must be > 0, got {behind!r}, {keep_out!r}")
        if not (approach_weight >= 0 and keep_out_weight >= 0):
            raise ConfigError(f"approach_weight and keep_out_weight must be >= 0, got {approach_weight}, {keep_out_weight}")
        if self.designation is not None and self.designation.agent is None:
            raise ConfigError("the designated_push cost needs the agent's pixel too (cost.agent [row, col])")
        self.agent_patch_size, self.agent_method = agent_patch_size, agent_method
        self.agent_temperature, self.agent_search_radius = agent_temperature, agent_search_radius
        self.approach_weight, self.behind = approach_weight, behind
        self.keep_out, self.keep_out_weight = keep_out, keep_out_weight

    def goal_for_env(self, env: Any, image_size: tuple[int, int]) -> DesignatedGoal:
        """The user's fixed designation, else the environment's ``designate`` and ``designate_agent``.

        Raises:
            ConfigError: no fixed designation and an environment that cannot designate its agent.
        """
        goal = super().goal_for_env(env, image_size)
        if goal.agent is not None:
            return goal
        designate_agent = getattr(getattr(env, "unwrapped", env), "designate_agent", None)
        if designate_agent is None:
            raise ConfigError("the designated_push cost needs cost.agent, the agent's pixel [row, col] "
                              f"(the environment {type(getattr(env, 'unwrapped', env)).__name__} designates none)")
        return dataclasses.replace(goal, agent=designate_agent(tuple(image_size)))

    def _patch_spec(self, goal: DesignatedGoal, role: str) -> tuple[tuple[float, float], int]:
        if role == "agent":
            return goal.agent, self.agent_patch_size  # type: ignore[return-value]
        return super()._patch_spec(goal, role)

    def _goal(self, goal: Any) -> DesignatedGoal:
        goal = super()._goal(goal)
        if goal.agent is None:
            raise ConfigError("the designated_push cost needs a DesignatedGoal with the agent's pixel (agent=)")
        return goal

    def _track_agent(self, frames: torch.Tensor, goal: DesignatedGoal) -> torch.Tensor:
        return _track_designated(frames, self.template(goal, "agent"), goal.agent, goal.agent_now,  # type: ignore[arg-type]
                                 self.agent_temperature, self.agent_search_radius, self.agent_method)

    def observe(self, goal: Any, frame: torch.Tensor) -> Any:
        """The goal with the object's and the agent's positions updated from a new observation."""
        if not isinstance(goal, DesignatedGoal) or goal.image is None or goal.agent is None:
            return super().observe(goal, frame)
        goal = super().observe(goal, frame)
        pos = self._track_agent(frame[None, None].to(goal.image.device, goal.image.dtype), goal)[0, 0]
        return dataclasses.replace(goal, agent_position=(float(pos[0]), float(pos[1])))

    def __call__(self, frames: torch.Tensor, goal: Any) -> torch.Tensor:
        check_frames(frames)
        goal = self._goal(goal)
        obj, agent = self._track(frames, goal), self._track_agent(frames, goal)
        target = torch.tensor(goal.target, device=frames.device, dtype=frames.dtype)
        cost = (obj - target).norm(dim=-1)
        if self.approach_weight or self.keep_out_weight:
            approach, intrusion = push_shaping(obj, agent, target, self.behind, self.keep_out)
            cost = cost + self.approach_weight * approach + self.keep_out_weight * intrusion
        return weighted_sum(cost, self.weights, self.final_weight)


__all__ = ["MATCHERS", "DesignatedGoal", "DesignatedObjectCost", "DesignatedPushCost", "extract_patch", "match_ssd",
           "match_template", "soft_argmax", "track_template"]
