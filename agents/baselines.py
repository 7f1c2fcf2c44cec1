"""Reference controllers: random, scripted (true state), and model-free stable-baselines3.

All follow :class:`agents.core.Agent` (``reset(obs, goal)``, ``act(obs)``), so
:func:`agents.evaluation.evaluate_agent` scores them exactly like the MPC agent.
stable-baselines3 and ``envs`` are imported only when used.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from mbvc.errors import ConfigError, DependencyNotInstalled, ShapeError, did_you_mean
from mbvc.io import atomic_path, write_json

log = logging.getLogger(__name__)

SB3_ALGOS = ("ppo", "sac")
OBSERVATIONS = ("pixels", "pixels_goal", "state")
"""``pixels``: the observed image; ``pixels_goal``: the image with the goal image stacked on its
channels (``H x W x 6``), for tasks whose goal is not drawn in the scene; ``state``: the true
state vector."""


class RandomAgent:
    """Uniform random actions in a bounded ``Box``, from its own seeded generator.

    Args:
        action_space: bounded ``gymnasium.spaces.Box``.
        seed: seed of the generator; :meth:`reset` with ``seed`` re-seeds it.
    """

    def __init__(self, action_space: gym.spaces.Box, seed: int | None = None) -> None:
        if not (isinstance(action_space, gym.spaces.Box) and action_space.is_bounded()):
            raise ConfigError(f"RandomAgent requires a bounded Box action space, got {action_space}")
        self.low, self.high = action_space.low, action_space.high
        self.rng = np.random.default_rng(seed)

    def reset(self, obs: dict[str, Any] | None = None, goal: Any = None, seed: int | None = None) -> None:
        """Start an episode (re-seeding when ``seed`` is given)."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, obs: Any) -> np.ndarray:
        """A uniform action (``A``, float32)."""
        return self.rng.uniform(self.low, self.high).astype(np.float32)


class PolicyAgent:
    """Adapter from an ``envs.policies`` policy (``policy(obs) -> action``) to an agent.

    Args:
        policy: callable on observations, optionally with ``reset(seed)``.
    """

    def __init__(self, policy: Callable[[Any], np.ndarray]) -> None:
        self.policy = policy

    def reset(self, obs: dict[str, Any] | None = None, goal: Any = None, seed: int | None = None) -> None:
        """Start an episode; the policy reads its goal from the true state, not ``goal``."""
        if hasattr(self.policy, "reset"):
            self.policy.reset(seed)

    def act(self, obs: Any) -> np.ndarray:
        """The policy's action (``A``, float32)."""
        return np.asarray(self.policy(obs), dtype=np.float32)


def scripted_agent(env: gym.Env) -> PolicyAgent:
    """The scripted pushing controller of ``envs.policies`` (uses the true state: an upper reference)."""
    try:
        from envs.policies import make_policy
    except ImportError as exc:
        raise DependencyNotInstalled(f"the scripted agent needs the envs package ({exc})") from exc
    return PolicyAgent(make_policy("scripted", env))


# -- stable-baselines3 ------------------------------------------------------------------------


class DictKeyObservation(gym.ObservationWrapper):
    """Expose one entry of a ``Dict`` observation (``"image"`` or ``"state"``) as the observation.

    SB3's ``CnnPolicy`` wants a plain uint8 image space, ``MlpPolicy`` a flat vector.

    Args:
        env: environment with a ``Dict`` observation space holding ``key``.
        key: the entry to keep.
    """

    def __init__(self, env: gym.Env, key: str) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Dict) or key not in space.spaces:
            raise ConfigError(f"DictKeyObservation requires a Dict observation space with key {key!r}, got {space}")
        self.key = key
        self.observation_space = space.spaces[key]

    def observation(self, observation: dict[str, Any]) -> Any:
        return observation[self.key]


def stack_goal(image: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """``H x W x 3`` observation and goal images (uint8) -> ``H x W x 6``."""
    if goal is None or np.shape(goal) != np.shape(image):
        raise ShapeError(
            f"the goal image must have the observation's shape {np.shape(image)}, got "
            f"{None if goal is None else np.shape(goal)}"
        )
    return np.concatenate([image, np.asarray(goal, dtype=image.dtype)], axis=-1)


class GoalImageObservation(gym.ObservationWrapper):
    """Observation = the image with the episode's goal image on extra channels (``H x W x 2C``).

    The push environment's goal is not drawn in its images (unless ``show_goal=True``), so a
    pixel policy must be told it the way the MPC agent is: with the goal image, rendered once
    per episode by ``env.unwrapped.goal_image()``.

    Args:
        env: environment with a ``Dict`` observation holding a uint8 ``image`` and a
            ``goal_image()`` method on its unwrapped env.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Dict) or "image" not in space.spaces:
            raise ConfigError(f"GoalImageObservation requires a Dict observation space with an 'image', got {space}")
        if not hasattr(env.unwrapped, "goal_image"):
            raise ConfigError(f"GoalImageObservation requires an environment with goal_image(), got {env.unwrapped}")
        image = space.spaces["image"]
        shape = (*image.shape[:-1], 2 * image.shape[-1])
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self._goal: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._goal = np.asarray(self.env.unwrapped.goal_image(), dtype=np.uint8)
        return self.observation(obs), info

    def observation(self, observation: dict[str, Any]) -> np.ndarray:
        return stack_goal(observation["image"], self._goal)  # type: ignore[arg-type]


def _key(observation: str) -> str:
    if observation not in OBSERVATIONS:
        raise ConfigError(f"observation must be one of {OBSERVATIONS}, got {observation!r}" + did_you_mean(observation, OBSERVATIONS))
    return "state" if observation == "state" else "image"


def _wrap(env: gym.Env, observation: str) -> gym.Env:
    """The env as the SB3 policy sees it for ``observation``."""
    if observation == "pixels_goal":
        return GoalImageObservation(env)
    return DictKeyObservation(env, _key(observation))


def _algo_class(algo: str) -> Any:
    if algo not in SB3_ALGOS:
        raise ConfigError(f"algo must be one of {SB3_ALGOS}, got {algo!r}" + did_you_mean(algo, SB3_ALGOS))
    try:
        import stable_baselines3 as sb3
    except ImportError as exc:
        raise DependencyNotInstalled("model-free baselines need stable-baselines3: pip install stable-baselines3") from exc
    return sb3.PPO if algo == "ppo" else sb3.SAC


class SB3Agent:
    """A trained stable-baselines3 policy as an agent (deterministic actions).

    Args:
        model: the SB3 algorithm object (``PPO`` / ``SAC``).
        observation: ``"pixels"``, ``"pixels_goal"`` or ``"state"`` (see :data:`OBSERVATIONS`),
            as trained. With ``"pixels_goal"``, :meth:`reset` needs the goal image (uint8
            ``H x W x 3``; :func:`agents.evaluation.evaluate_agent` passes it).
    """

    def __init__(self, model: Any, observation: str = "pixels") -> None:
        self.model = model
        self.observation = observation
        self.key = _key(observation)
        self.goal: np.ndarray | None = None

    @classmethod
    def load(cls, path: str | Path, algo: str = "ppo", observation: str = "pixels", device: str = "auto") -> SB3Agent:
        """Load a model saved by :func:`train_sb3`."""
        return cls(_algo_class(algo).load(str(path), device=device), observation)

    def reset(self, obs: dict[str, Any] | None = None, goal: Any = None, seed: int | None = None) -> None:
        """Start an episode; keeps ``goal`` (the goal image) for ``pixels_goal`` policies."""
        self.goal = None if goal is None else np.asarray(goal)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """The policy's deterministic action (``A``, float32)."""
        x = obs[self.key]
        if self.observation == "pixels_goal":
            x = stack_goal(x, self.goal)  # type: ignore[arg-type]
        action, _ = self.model.predict(x, deterministic=True)
        return np.asarray(action, dtype=np.float32)


def _image_policy_kwargs(space: gym.spaces.Box, policy_kwargs: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    """``CnnPolicy`` kwargs: SB3's NatureCNN where the frames are large enough (>= 36 px), else
    :class:`agents.sb3_features.SmallImageCNN`; an explicit ``features_extractor_class`` wins."""
    kwargs = dict(policy_kwargs or {})
    if "features_extractor_class" in kwargs:
        return kwargs, getattr(kwargs["features_extractor_class"], "__name__", str(kwargs["features_extractor_class"]))
    from agents.sb3_features import NATURE_CNN_MIN_SIZE, SmallImageCNN

    height, width = space.shape[:2]  # channel-last here; SB3 transposes before the policy
    if min(height, width) >= NATURE_CNN_MIN_SIZE:
        return kwargs, "NatureCNN"
    kwargs["features_extractor_class"] = SmallImageCNN
    return kwargs, "SmallImageCNN"


def _default_kwargs(algo: str, total_steps: int) -> dict[str, Any]:
    if algo == "ppo":
        # PPO collects n_steps per update; a budget smaller than the default 2048 must still
        # give at least one update.
        n_steps = max(16, min(2048, total_steps))
        return {"n_steps": n_steps, "batch_size": min(64, n_steps)}
    # SAC's default 1e6-transition buffer of images would need tens of GB; the budget bounds it.
    return {"buffer_size": max(1000, total_steps), "learning_starts": min(100, total_steps // 2)}


def train_sb3(
    make_env: Callable[[], gym.Env],
    out_dir: str | Path,
    *,
    algo: str = "ppo",
    observation: str = "pixels",
    total_steps: int = 50_000,
    seed: int = 0,
    algo_kwargs: dict[str, Any] | None = None,
    device: str = "auto",
    eval_fn: Callable[[SB3Agent], dict[str, Any]] | None = None,
) -> SB3Agent:
    """Train PPO / SAC from pixels (``CnnPolicy``) or from state (``MlpPolicy``) on a budget.

    Use the same ``total_steps`` as the environment steps the world model's data used, so that
    the comparison is at equal experience. Writes ``out_dir/model.zip`` and
    ``out_dir/results.json`` (settings, training time and, with ``eval_fn``, its results).
    Pixel policies take uint8 ``H x W x C`` frames; frames of 36 px or more use SB3's
    ``NatureCNN``, smaller ones :class:`agents.sb3_features.SmallImageCNN` (recorded as
    ``features_extractor`` in ``results.json``).

    Args:
        make_env: builds the environment (with a ``Dict`` observation holding ``image``/``state``).
        out_dir: output folder.
        algo: ``"ppo"`` or ``"sac"``.
        observation: ``"pixels"``, ``"pixels_goal"`` (image + goal image: use it when the
            goal is not drawn in the scene, e.g. the push env without ``show_goal=True``) or
            ``"state"``.
        total_steps: environment steps of training.
        seed: seed of the algorithm and the environment.
        algo_kwargs: extra arguments of the SB3 constructor (override the defaults).
        device: torch device for SB3 (``"auto"``: CUDA when present).
        eval_fn: optional ``eval_fn(agent) -> dict`` (e.g. :func:`agents.evaluation.evaluate_agent`
            on seeded episodes, ``.to_dict()``) stored under ``"eval"``.

    Returns:
        The trained agent.
    """
    cls = _algo_class(algo)
    _key(observation)
    if total_steps < 1:
        raise ConfigError(f"total_steps must be >= 1, got {total_steps=}")
    env = _wrap(make_env(), observation)
    env.reset(seed=seed)
    kwargs = {**_default_kwargs(algo, total_steps), **(algo_kwargs or {})}
    policy = "MlpPolicy" if observation == "state" else "CnnPolicy"
    features = None
    if policy == "CnnPolicy":
        kwargs["policy_kwargs"], features = _image_policy_kwargs(env.observation_space, kwargs.get("policy_kwargs"))
    model = cls(policy, env, seed=seed, device=device, verbose=0, **kwargs)
    log.info("training %s (%s) for %d steps", algo.upper(), policy, total_steps)
    start = time.perf_counter()
    model.learn(total_timesteps=total_steps)
    seconds = time.perf_counter() - start
    out = Path(out_dir)
    with atomic_path(out / "model.zip") as tmp:
        model.save(str(tmp))
    agent = SB3Agent(model, observation)
    results: dict[str, Any] = {
        "algo": algo,
        "observation": observation,
        "policy": policy,
        "features_extractor": features,
        "total_steps": total_steps,
        "seed": seed,
        "train_seconds": seconds,
        "algo_kwargs": {k: v for k, v in kwargs.items() if isinstance(v, (int, float, str, bool))},
    }
    if eval_fn is not None:
        results["eval"] = eval_fn(agent)
    write_json(out / "results.json", results)
    env.close()
    log.info("saved %s and results.json in %s (%.1f s)", "model.zip", out, seconds)
    return agent
