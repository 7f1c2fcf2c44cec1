"""Policies that need no learning: uniform random, a scripted pusher, and mixes of both.

Every policy is a callable ``policy(obs) -> action`` with ``reset(seed)`` called at the start
of an episode, so that collection can seed each episode's policy noise independently of the
process that runs it (resumed and parallel collections then equal serial ones). Trained agents
(``agents``' protocol: ``reset(obs, goal, seed)`` and ``act(obs)``) become policies through
:class:`AgentPolicy`; :func:`make_policy` does this for ``module:factory`` specs.

Example:
    >>> import gymnasium as gym, envs
    >>> from envs.policies import ScriptedPushPolicy
    >>> env = gym.make("mbvc/Push-v0", image_size=16)
    >>> policy = ScriptedPushPolicy.from_env(env)
    >>> obs, _ = env.reset(seed=0)
    >>> policy.reset(seed=0)
    >>> policy(obs).shape
    (2,)
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from envs.scene import LIFT_STEP, TURN_STEP, WORKSPACE, StateLayout
from mbvc.errors import ConfigError, MbvcError, did_you_mean

PUSHER_RADIUS = 0.016


class Policy(Protocol):
    """What collection and evaluation expect of a policy."""

    def reset(self, seed: int | None = None) -> None: ...

    def __call__(self, obs: Any) -> np.ndarray: ...


class RandomPolicy:
    """Uniform actions in a bounded ``Box`` action space, from its own seeded generator."""

    def __init__(self, action_space: gym.spaces.Space, seed: int | None = None) -> None:
        if not (isinstance(action_space, gym.spaces.Box) and action_space.is_bounded()):
            raise ConfigError(f"RandomPolicy requires a bounded Box action space, got {action_space}")
        self.low, self.high = action_space.low, action_space.high
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def __call__(self, obs: Any) -> np.ndarray:
        return self.rng.uniform(self.low, self.high).astype(np.float32)


class ScriptedPushPolicy:
    """Closed-loop pusher that uses the true state (``obs["state"]``) of a :class:`PushEnv`.

    Each step it recomputes the push axis from the target object to the goal. If the pusher is
    behind the object on that axis it pushes through, steering back onto the axis as the
    object drifts or turns; otherwise it goes around the object (out to the side, then
    behind) to the approach point. The contacts are therefore deliberate and varied, which
    makes the data informative for world models.

    Args:
        layout: the env's :class:`~envs.scene.StateLayout`.
        radii: footprint radius of each object (metres).
        max_step: metres per unit action (the env's ``max_step``).
        action_dim: 2, or 4 for the BAIR-like variant (lift held at 0, spatula turned
            square to the push axis).
        tolerance: distance to the goal (metres) below which the pusher stands still.
    """

    def __init__(self, layout: StateLayout, radii: tuple[float, ...], max_step: float,
                 action_dim: int = 2, tolerance: float = 0.01) -> None:
        if len(radii) != layout.num_objects:
            raise ConfigError(f"ScriptedPushPolicy: {layout.num_objects} objects in the layout, "
                              f"got {len(radii)} radii")
        self.layout, self.radii = layout, tuple(radii)
        self.max_step, self.action_dim, self.tolerance = max_step, action_dim, tolerance

    @classmethod
    def from_env(cls, env: gym.Env) -> ScriptedPushPolicy:
        """Build the policy for a (possibly wrapped) :class:`~envs.push.PushEnv`."""
        base = env.unwrapped
        if not hasattr(base, "layout") or not hasattr(base, "scene"):
            raise ConfigError(f"ScriptedPushPolicy needs an mbvc Push env, got {type(base).__name__}")
        return cls(base.layout, tuple(o.radius for o in base.scene.objects), base.max_step, base.action_dim)

    def reset(self, seed: int | None = None) -> None:
        """Nothing to reset: the policy is a deterministic function of the state."""

    def __call__(self, obs: dict[str, np.ndarray] | np.ndarray) -> np.ndarray:
        state = np.asarray(obs["state"] if isinstance(obs, dict) else obs, dtype=np.float64)
        lay = self.layout
        target = int(np.argmax(state[lay.target]))
        pusher = state[lay.pusher][:2]
        obj = state[lay.object(target)][:2]
        goal = state[lay.goal]
        delta = self._planar_move(pusher, obj, goal, self.radii[target])
        action = np.zeros(self.action_dim)
        action[:2] = delta / self.max_step
        if self.action_dim == 4:
            action[2:] = self._lift_and_turn(state[lay.pusher], goal - obj)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _planar_move(self, pusher: np.ndarray, obj: np.ndarray, goal: np.ndarray, radius: float) -> np.ndarray:
        """Pusher displacement (metres) for this step."""
        to_goal = goal - obj
        dist = np.linalg.norm(to_goal)
        if dist < self.tolerance:
            return np.zeros(2)  # close enough: nudging further tends to overshoot
        axis = to_goal / dist
        normal = np.array([-axis[1], axis[0]])
        rel = pusher - obj
        along, side = float(rel @ axis), float(rel @ normal)
        contact = radius + PUSHER_RADIUS  # centre distance at which the pusher touches
        if along < -0.5 * contact and abs(side) < 0.6 * radius:
            # Behind the object and on the axis: push, aiming to stop with the object at the
            # goal, and steer back onto the axis as the object drifts.
            waypoint = goal - axis * contact * 0.8 - normal * side
            return _cap(waypoint - pusher, self.max_step)
        behind = obj - axis * (contact + 0.01)
        keep_out = contact + 0.005
        if _segment_clear(pusher, behind, obj, keep_out):
            return _cap(behind - pusher, self.max_step)
        # The object is in the way: go round it, via a point beside it and then a point
        # diagonally behind it, on the pusher's side unless a wall leaves no room there.
        wide = contact + 0.03
        s = 1.0 if side >= 0 else -1.0
        if not _inside(obj + (normal * s - axis) * wide) and _inside(obj + (-normal * s - axis) * wide):
            s = -s  # only switch when the other side has room, else the choice would chatter
        beside = obj + normal * s * wide + axis * min(max(along, 0.0), wide)
        diagonal = obj + (normal * s - axis) * wide
        waypoint = diagonal if _segment_clear(pusher, diagonal, obj, keep_out) else beside
        waypoint = np.clip(waypoint, -WORKSPACE, WORKSPACE)
        return _cap(waypoint - pusher, self.max_step)

    def _lift_and_turn(self, pose: np.ndarray, to_goal: np.ndarray) -> np.ndarray:
        """Lift and wrist actions of the 4-D variant: stay down, keep the spatula square."""
        yaw = np.arctan2(to_goal[1], to_goal[0]) + np.pi / 2
        yaw_error = (yaw - pose[3] + np.pi / 2) % np.pi - np.pi / 2  # the spatula is symmetric
        return np.array([-pose[2] / LIFT_STEP, yaw_error / TURN_STEP])


class NoisyPolicy:
    """Wrap a policy: with probability ``random_prob`` act at random, else add Gaussian noise.

    Args:
        base: the policy to perturb.
        action_space: bounded ``Box`` to sample from and clip to.
        noise_std: standard deviation of the added noise, in action units.
        random_prob: per-step probability of a uniform random action.
        seed: seed of the noise generator (re-seeded by ``reset``).
    """

    def __init__(self, base: Policy, action_space: gym.spaces.Box, noise_std: float = 0.3,
                 random_prob: float = 0.2, seed: int | None = None) -> None:
        if noise_std < 0 or not 0.0 <= random_prob <= 1.0:
            raise ConfigError(f"NoisyPolicy needs noise_std >= 0 and 0 <= random_prob <= 1, "
                              f"got {noise_std=}, {random_prob=}")
        self.base, self.noise_std, self.random_prob = base, noise_std, random_prob
        self.random = RandomPolicy(action_space, seed)
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        self.base.reset(seed)
        if seed is not None:
            # Separate streams so that the noise does not depend on the base policy's draws.
            self.rng = np.random.default_rng([seed, 1])
            self.random.reset(seed + 2**31)

    def __call__(self, obs: Any) -> np.ndarray:
        if self.rng.random() < self.random_prob:
            return self.random(obs)
        action = self.base(obs) + self.rng.normal(0.0, self.noise_std, self.random.low.shape)
        return np.clip(action, self.random.low, self.random.high).astype(np.float32)


class AgentPolicy:
    """A trained agent (``reset(obs=None, goal=None, seed=None)``, ``act(obs)``) as a policy.

    The agent is reset lazily, with the episode's first observation, its seed and, when the
    collector supplies one through :meth:`set_goal`, the goal image (``wants_goal`` asks for it).

    Args:
        agent: e.g. an ``agents.mpc.MPCAgent`` or ``agents.baselines.SB3Agent``.
    """

    wants_goal = True

    def __init__(self, agent: Any) -> None:
        if not callable(getattr(agent, "act", None)):
            raise ConfigError(f"AgentPolicy needs an object with act(obs), got {type(agent).__name__}")
        self.agent = agent
        self._seed: int | None = None
        self._goal: Any = None
        self._fresh = True

    def reset(self, seed: int | None = None) -> None:
        self._seed, self._goal, self._fresh = seed, None, True

    def set_goal(self, goal: Any) -> None:
        """Goal of the episode about to start (e.g. ``env.unwrapped.goal_image()``)."""
        self._goal = goal

    def __call__(self, obs: Any) -> np.ndarray:
        if self._fresh:
            if callable(getattr(self.agent, "reset", None)):
                self.agent.reset(obs=obs, goal=self._goal, seed=self._seed)
            self._fresh = False
        return np.asarray(self.agent.act(obs), dtype=np.float32)


class FunctionPolicy:
    """A plain function ``f(obs) -> action`` as a policy (stateless: ``reset`` does nothing)."""

    def __init__(self, fn: Callable[[Any], np.ndarray]) -> None:
        self.fn = fn

    def reset(self, seed: int | None = None) -> None:
        """Nothing to reset."""

    def __call__(self, obs: Any) -> np.ndarray:
        return np.asarray(self.fn(obs), dtype=np.float32)


def as_policy(obj: Any) -> Policy:
    """Adapt a policy, an agent (``act``) or a plain callable to the :class:`Policy` protocol.

    Raises:
        ConfigError: ``obj`` is none of these.
    """
    if callable(getattr(obj, "act", None)):
        return AgentPolicy(obj)
    if callable(obj) and callable(getattr(obj, "reset", None)):
        return obj
    if callable(obj):
        return FunctionPolicy(obj)
    raise ConfigError(f"a policy must be callable as policy(obs) or have act(obs), got {type(obj).__name__}")


class EpisodeMixPolicy:
    """Per episode, one of several policies, drawn from the episode's seed.

    Mixing whole episodes (rather than steps) keeps both kinds of trajectory in the data: the
    noisy scripted pusher's deliberate pushes from every side, and random actions like a
    planner's candidates, including long stretches without contact.

    Args:
        policies: ``(weight, policy)`` pairs; each policy has ``reset(seed)`` and ``__call__(obs)``.
        seed: seed of the draw when :meth:`reset` gets no seed.
    """

    def __init__(self, policies: Sequence[tuple[float, Policy]], seed: int | None = None) -> None:
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


#: Fraction of ``episode_mix`` episodes driven by uniform random actions (the rest: ``mixed``).
RANDOM_EPISODES = 0.25

#: Registered policies: ``factory(env, seed, noise_std, random_prob) -> Policy``.
POLICY_FACTORIES: dict[str, Callable[[gym.Env, int | None, float, float], Policy]] = {
    "random": lambda env, seed, noise, prob: RandomPolicy(env.action_space, seed),
    "scripted": lambda env, seed, noise, prob: ScriptedPushPolicy.from_env(env),
    "mixed": lambda env, seed, noise, prob: NoisyPolicy(ScriptedPushPolicy.from_env(env), env.action_space,
                                                        noise, prob, seed),
    # The demo's data: whole episodes of ``mixed`` (deliberate, varied contacts) or of ``random``
    # (coverage of the action space that a planner samples).
    "episode_mix": lambda env, seed, noise, prob: EpisodeMixPolicy([
        (1.0 - RANDOM_EPISODES, NoisyPolicy(ScriptedPushPolicy.from_env(env), env.action_space, noise, prob, None)),
        (RANDOM_EPISODES, RandomPolicy(env.action_space, None))]),
}
POLICIES = tuple(POLICY_FACTORIES)


def register_policy(name: str, factory: Callable[[gym.Env, int | None, float, float], Policy]) -> None:
    """Make ``factory(env, seed, noise_std, random_prob)`` available to :func:`make_policy` as ``name``."""
    global POLICIES
    if ":" in name:
        raise ConfigError(f"a policy name cannot contain ':' (that is the module:factory form), got {name!r}")
    POLICY_FACTORIES[name] = factory
    POLICIES = tuple(POLICY_FACTORIES)


def make_policy(name: str, env: gym.Env, seed: int | None = None, noise_std: float = 0.3,
                random_prob: float = 0.2, policy_kwargs: dict[str, Any] | None = None) -> Policy:
    """Build a policy by name for ``env``.

    Args:
        name: a registered name (``"random"``, ``"scripted"``, ``"mixed"``: scripted with noise
            and random actions, ``"episode_mix"``: per episode ``mixed`` or ``random``; see
            :func:`register_policy`), or ``"package.module:factory"`` where
            ``factory(env, **policy_kwargs)`` returns a policy, a plain ``f(obs) -> action`` or a
            trained agent (an object with ``act(obs)`` and ``reset(obs, goal, seed)``, see
            :class:`AgentPolicy`).
        env: the environment (only its spaces and, for scripted policies, its scene are used).
        seed: seed of the policy's randomness.
        noise_std: Gaussian noise of ``"mixed"``.
        random_prob: per-step random-action probability of ``"mixed"``.
        policy_kwargs: keyword arguments of a ``module:factory`` (e.g. a checkpoint path).
    """
    if policy_kwargs and ":" not in name:
        raise ConfigError(f"policy_kwargs are only for 'module:factory' policies, got {name!r} "
                          f"with {sorted(policy_kwargs)}")
    if name in POLICY_FACTORIES:
        return POLICY_FACTORIES[name](env, seed, noise_std, random_prob)
    if ":" in name:
        factory = _load_factory(name)
        try:
            made = factory(env, **(policy_kwargs or {}))
        except MbvcError:
            raise
        except Exception as exc:  # a wrong target (e.g. numpy:zeros) or wrong policy_kwargs: say which
            raise ConfigError(f"policy {name!r}: {name}(env, **{policy_kwargs or {}}) raised {type(exc).__name__}: "
                              f"{exc} (a module:factory policy is called as factory(env, **policy_kwargs); call it "
                              "yourself to see the traceback)") from exc
        return as_policy(made)
    raise ConfigError(f"unknown policy {name!r}, expected one of {list(POLICIES)} or 'module:factory'"
                      + did_you_mean(name, POLICIES))


def _load_factory(spec: str) -> Callable[[gym.Env], Policy]:
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"policy {spec!r}: cannot import {attr!r} from {module_name!r}: {exc}") from exc
    if not callable(factory):
        raise ConfigError(f"policy {spec!r} is not callable")
    return factory


def _segment_clear(a: np.ndarray, b: np.ndarray, centre: np.ndarray, radius: float) -> bool:
    """Whether the segment from ``a`` to ``b`` stays at least ``radius`` from ``centre``."""
    ab = b - a
    t = np.clip((centre - a) @ ab / max(ab @ ab, 1e-12), 0.0, 1.0)
    return bool(np.linalg.norm(a + t * ab - centre) >= radius)


def _inside(point: np.ndarray, margin: float = 0.005) -> bool:
    return bool(np.all(np.abs(point) <= WORKSPACE - margin))


def _cap(delta: np.ndarray, length: float) -> np.ndarray:
    """Shorten ``delta`` to at most ``length`` keeping its direction (clipping per axis would bend it)."""
    norm = np.linalg.norm(delta)
    return delta if norm <= length else delta * (length / norm)
