"""Collect episodes with a policy into the rollout format of :mod:`mbvc.data.rollouts`.

Episode ``i`` of a collection is reset with seed :func:`episode_seed(seed, i) <episode_seed>`
and its policy is reseeded likewise, so the data does not depend on how many worker processes
ran it or on interruptions: a collection resumes at ``writer.num_episodes`` and a resumed run
writes exactly what an uninterrupted one would have.

Stored per episode of ``L`` steps (``T = L + 1`` frames):
``frames`` uint8 ``(T, H, W, 3)``; ``actions`` float32 ``(T, A)``, ``actions[t]`` taken at
frame ``t`` and the last row zero padding; ``states`` float32 ``(T, S)``; ``rewards`` float32
``(T,)``, ``rewards[t]`` received for ``actions[t]`` (last row 0).

Example:
    >>> import tempfile
    >>> cfg = CollectConfig("mbvc/Push-v0", num_episodes=2, policy="scripted", image_size=16,
    ...                     episode_length=5, progress=False)
    >>> collect(tempfile.mkdtemp(), cfg).episodes_total
    2
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from envs.policies import Policy, make_policy
from envs.wrappers import PixelObservation
from mbvc.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectConfig:
    """What to collect. Everything but ``num_episodes``, ``num_envs``, ``shard_size`` and
    ``progress`` is part of the dataset's spec: resuming with a different value raises.

    Attributes:
        env_id: a registered id; non-mbvc envs are made with ``render_mode="rgb_array"`` and
            wrapped in :class:`~envs.wrappers.PixelObservation` (state = their observation).
        num_episodes: total episodes wanted in the folder (existing ones count).
        policy: ``random``, ``scripted``, ``mixed`` or ``module:factory`` (see
            :func:`envs.policies.make_policy`; a factory may return a trained agent).
        policy_kwargs: keyword arguments of a ``module:factory`` policy (e.g. a checkpoint).
        seed: base seed; episode ``i`` uses ``episode_seed(seed, i)``.
        image_size: frame side.
        episode_length: steps per episode for mbvc envs (``None``: the env's default).
        noise_std: Gaussian action noise of ``mixed``.
        random_prob: per-step random-action probability of ``mixed``.
        env_kwargs: extra keyword arguments of ``gymnasium.make``.
        num_envs: worker processes (``AsyncVectorEnv``); 1 runs in this process.
        shard_size: episodes per shard of the rollout store (a crash loses at most one shard).
        progress: show a tqdm bar.
    """

    env_id: str = "mbvc/Push-v0"
    num_episodes: int = 100
    policy: str = "mixed"
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    image_size: int = 64
    episode_length: int | None = 30
    noise_std: float = 0.3
    random_prob: float = 0.2
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    num_envs: int = 1
    shard_size: int = 64
    progress: bool = True

    def __post_init__(self) -> None:
        """Refuse invalid settings before anything is created or written (they would be locked into the spec)."""
        for name in ("num_episodes", "num_envs", "shard_size", "image_size", "seed"):
            value = getattr(self, name)
            low = 0 if name in ("num_episodes", "seed") else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"CollectConfig.{name} must be an int >= {low}, got {value!r}")
        length = self.episode_length
        if length is not None and (not isinstance(length, int) or isinstance(length, bool) or length < 1):
            raise ConfigError(f"CollectConfig.episode_length must be a positive int or None, got {length!r}")
        noise, prob = self.noise_std, self.random_prob
        if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not 0 <= noise < float("inf"):
            raise ConfigError(f"CollectConfig.noise_std must be a finite number >= 0, got {noise!r}")
        if not isinstance(prob, (int, float)) or isinstance(prob, bool) or not 0 <= prob <= 1:
            raise ConfigError(f"CollectConfig.random_prob must be a probability in [0, 1], got {prob!r}")
        for name in ("env_id", "policy"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"CollectConfig.{name} must be a non-empty string, got {getattr(self, name)!r}")
        for name in ("env_kwargs", "policy_kwargs"):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise ConfigError(f"CollectConfig.{name} must be a dict, got {value!r}")
        own = sorted({"image_size", "episode_length", "render_mode"} & set(self.env_kwargs))
        if own:
            raise ConfigError(f"CollectConfig.env_kwargs must not set {', '.join(own)}, got {self.env_kwargs!r}: "
                              "the collection's own image_size and episode_length (--image-size, --episode-length) "
                              "are passed to the env, and frames are always rendered")
        for name in ("env_kwargs", "policy_kwargs"):
            value = getattr(self, name)
            try:
                json.dumps(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"CollectConfig.{name} must be JSON-serialisable (it is stored in the "
                                  f"folder's manifest), got {value!r}: {exc}") from None

    def spec(self) -> dict[str, Any]:
        """The JSON description stored with the data (and compared on resume)."""
        keep = ("env_id", "policy", "policy_kwargs", "seed", "image_size", "episode_length", "noise_std",
                "random_prob", "env_kwargs")
        spec = {k: v for k, v in asdict(self).items() if k in keep}
        # Through JSON so that tuples compare equal to the lists read back from a manifest.
        return json.loads(json.dumps({"source": "envs.collect", **spec}))


@dataclass(frozen=True)
class CollectStats:
    """Outcome of :func:`collect`."""

    episodes_total: int
    episodes_new: int
    frames: int
    seconds: float
    success_rate: float | None

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def episode_seed(base: int, index: int) -> int:
    """Seed of episode ``index`` of a collection seeded ``base`` (independent streams)."""
    return int(np.random.SeedSequence([base, index]).generate_state(1)[0])


def make_env(env_id: str, image_size: int, episode_length: int | None = None, **kwargs: Any) -> gym.Env:
    """Build one collection env whose observation is a dict with ``"image"`` (and ``"state"``).

    Raises:
        ConfigError: an unknown environment id (with the closest registered one).
    """
    try:
        return _make_env(env_id, image_size, episode_length, **kwargs)
    except gym.error.Error as e:  # NameNotFound, VersionNotFound...: the --env argument is wrong
        from mbvc.errors import ConfigError, did_you_mean

        raise ConfigError(f"environment {env_id!r}: {str(e).splitlines()[0].split(' Did you mean')[0]}"
                          + did_you_mean(env_id, list(gym.registry))) from None


def _make_env(env_id: str, image_size: int, episode_length: int | None = None, **kwargs: Any) -> gym.Env:
    if env_id.startswith("mbvc/") or env_id.startswith("envs:mbvc/"):
        import envs  # noqa: F401  registers the ids, also in spawned workers

        if episode_length is not None:
            kwargs["episode_length"] = episode_length
        return gym.make(env_id, image_size=image_size, **kwargs)
    env = gym.make(env_id, render_mode="rgb_array", **kwargs)
    return PixelObservation(env, size=image_size, pixels_only=False)


class _Episode:
    """Buffers of one episode in progress."""

    def __init__(self, obs: dict[str, Any]) -> None:
        self.frames = [np.asarray(obs["image"], np.uint8)]
        self.states = [_flat_state(obs)]
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.success = False

    def add(self, action: np.ndarray, obs: dict[str, Any], reward: float, info: dict[str, Any]) -> None:
        self.actions.append(np.asarray(action, np.float32).reshape(-1))
        self.rewards.append(float(reward))
        self.frames.append(np.asarray(obs["image"], np.uint8))
        self.states.append(_flat_state(obs))
        self.success = bool(info.get("is_success", False))

    def arrays(self) -> dict[str, np.ndarray | None]:
        act_dim = self.actions[0].shape[0] if self.actions else 0
        actions = np.zeros((len(self.frames), act_dim), np.float32)
        actions[:-1] = self.actions  # the last frame's action is padding (BAIR convention)
        rewards = np.zeros(len(self.frames), np.float32)
        rewards[:-1] = self.rewards
        states = None if self.states[0] is None else np.stack(self.states).astype(np.float32)
        return {"frames": np.stack(self.frames), "actions": actions, "states": states, "rewards": rewards}


def _flat_state(obs: dict[str, Any]) -> np.ndarray | None:
    state = obs.get("state") if isinstance(obs, dict) else None
    if state is None or not isinstance(state, np.ndarray) or state.ndim != 1:
        return None
    return state.astype(np.float32)


def _check_obs_space(space: gym.spaces.Space, env_id: str) -> None:
    image = space.spaces.get("image") if isinstance(space, gym.spaces.Dict) else None
    if not (isinstance(image, gym.spaces.Box) and image.dtype == np.uint8 and len(image.shape) == 3):
        raise ConfigError(f"collect needs observations {{'image': uint8 (H, W, 3), ...}}; {env_id} gives {space}")


def _wants_goal(policies: list[Policy]) -> bool:
    return any(getattr(p, "wants_goal", False) for p in policies)


def _run_serial(env: gym.Env, policy: Policy, seed: int) -> _Episode:
    policy.reset(seed)
    obs, _ = env.reset(seed=seed)
    if _wants_goal([policy]) and hasattr(env.unwrapped, "goal_image"):
        policy.set_goal(env.unwrapped.goal_image())
    episode = _Episode(obs)
    done = False
    while not done:
        action = policy(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        episode.add(action, obs, reward, info)
        done = terminated or truncated
    return episode


def _run_vector(venv: gym.vector.VectorEnv, policies: list[Policy], seeds: list[int],
                has_goal_image: bool = False) -> list[_Episode]:
    """One episode per sub-env; sub-envs that finish early idle (their autoresets are ignored)."""
    n = len(seeds)
    for policy, seed in zip(policies, seeds):
        policy.reset(seed)
    seeds = seeds + [seeds[-1]] * (venv.num_envs - n)  # spare workers replay the last seed, unused
    obs, _ = venv.reset(seed=seeds)
    if has_goal_image and _wants_goal(policies):
        # Rendered in the workers, where the episodes are. (Only asked of envs that have
        # goal_image: a failing call would shut the worker down.)
        for policy, goal in zip(policies[:n], venv.call("goal_image")):
            policy.set_goal(goal)
    unbatch = partial(_unbatch, keys=list(obs))
    episodes = [_Episode(unbatch(obs, i)) for i in range(n)]
    active = [True] * n
    zero = np.zeros(venv.single_action_space.shape, venv.single_action_space.dtype)
    while any(active):
        actions = np.stack([policies[i](unbatch(obs, i)) if i < n and active[i] else zero
                            for i in range(venv.num_envs)])
        obs, rewards, terminated, truncated, infos = venv.step(actions)
        for i in range(n):
            if active[i]:
                info = {k: v[i] for k, v in infos.items() if not k.startswith("_")}
                episodes[i].add(actions[i], unbatch(obs, i), rewards[i], info)
                active[i] = not (terminated[i] or truncated[i])
    return episodes


def _unbatch(obs: dict[str, np.ndarray], i: int, keys: list[str]) -> dict[str, np.ndarray]:
    return {k: obs[k][i] for k in keys}


def collect(root: str | os.PathLike, cfg: CollectConfig,
            on_episode: Callable[[int, dict[str, Any]], None] | None = None) -> CollectStats:
    """Collect ``cfg.num_episodes`` episodes into the rollout folder ``root`` (resuming it).

    Args:
        root: rollout folder (created, or resumed if it holds episodes of the same spec).
        cfg: what to collect.
        on_episode: called as ``on_episode(index, arrays)`` after each episode is written.

    Returns:
        Counts, timing and the success rate of the new episodes (``None`` without
        ``is_success`` in the env's info).
    """
    from mbvc.data.rollouts import RolloutWriter
    from mbvc.data.store import MANIFEST

    env_fn = partial(make_env, cfg.env_id, cfg.image_size, cfg.episode_length, **cfg.env_kwargs)
    probe = env_fn()  # the policies' view of the spaces; in serial mode also the env that runs
    try:
        _check_obs_space(probe.observation_space, cfg.env_id)
        # One policy per worker: agents keep per-episode state (histories, plans).
        policies = [make_policy(cfg.policy, probe, None, cfg.noise_std, cfg.random_prob, cfg.policy_kwargs)
                    for _ in range(cfg.num_envs)]
        folder_existed, store_existed = Path(root).exists(), (Path(root) / MANIFEST).exists()
        try:
            with RolloutWriter(root, cfg.spec(), cfg.shard_size) as writer:
                first = writer.num_episodes
                todo = max(cfg.num_episodes - first, 0)
                logger.info("collecting %d episodes of %s with the %s policy into %s (%d already there, %d workers)",
                            todo, cfg.env_id, cfg.policy, root, first, cfg.num_envs)
                start_time = time.perf_counter()
                new = _collect_into(writer, cfg, probe, policies, first, todo, on_episode)
                seconds = time.perf_counter() - start_time
                total = writer.num_episodes
        except BaseException:
            if not store_existed:  # a new folder must not keep a spec that never produced an episode
                _remove_empty_store(Path(root), remove_folder=not folder_existed)
            raise
    finally:
        probe.close()
    frames = sum(n for n, _ in new)
    rate = float(np.mean([ok for _, ok in new])) if new else None
    return CollectStats(total, len(new), frames, seconds, rate)


def _remove_empty_store(root: Path, remove_folder: bool) -> None:
    """Take back a store this collection created when it failed before its first episode was kept.

    Only the store's own entries go (manifest, lock, shard folders); a store that holds episodes
    is left for the next run to resume.
    """
    import re

    from mbvc.data.store import MANIFEST, read_manifest

    try:
        if read_manifest(root)["num_episodes"]:
            return
        for entry in root.iterdir():
            if entry.is_dir() and re.fullmatch(r"shard_\d{5}", entry.name):
                for f in entry.iterdir():
                    if f.suffix == ".bin":
                        f.unlink()
                entry.rmdir()
        (root / MANIFEST).unlink(missing_ok=True)
        (root / ".lock").unlink(missing_ok=True)
        if remove_folder:
            root.rmdir()
    except (OSError, ValueError) as exc:  # best effort: the original error is what the user needs
        logger.debug("could not take back the empty store %s: %s", root, exc)


def _collect_into(writer: Any, cfg: CollectConfig, env: gym.Env, policies: list[Policy], first: int, todo: int,
                  on_episode: Callable[[int, dict[str, Any]], None] | None) -> list[tuple[int, bool]]:
    """Run and write episodes ``first .. cfg.num_episodes - 1``; return (frames, success) of each."""
    workers = min(cfg.num_envs, todo)
    venv = _make_vector(partial(make_env, cfg.env_id, cfg.image_size, cfg.episode_length, **cfg.env_kwargs),
                        workers) if workers > 1 else None
    done: list[tuple[int, bool]] = []
    try:
        with tqdm(total=todo, unit="ep", disable=not cfg.progress, desc="collect") as bar:
            for start in range(first, cfg.num_episodes, workers if venv else 1):
                indices = list(range(start, min(start + (workers if venv else 1), cfg.num_episodes)))
                seeds = [episode_seed(cfg.seed, i) for i in indices]
                if venv is None:
                    episodes = [_run_serial(env, policies[0], seeds[0])]
                else:
                    episodes = _run_vector(venv, policies, seeds, hasattr(env.unwrapped, "goal_image"))
                for index, episode in zip(indices, episodes):
                    arrays = episode.arrays()
                    writer.add_episode(**arrays)
                    done.append((len(arrays["frames"]), episode.success))
                    if on_episode is not None:
                        on_episode(index, arrays)
                    bar.update(1)
    finally:
        if venv is not None:
            venv.close()
    return done


def _make_vector(env_fn: Callable[[], gym.Env], num_envs: int) -> gym.vector.AsyncVectorEnv:
    # "spawn": fresh workers, so no OpenGL context or torch thread pool is inherited by fork.
    return gym.vector.AsyncVectorEnv([env_fn] * num_envs, context="spawn")


def export_tfrecords(root: str | os.PathLike, out_dir: str | os.PathLike, records_per_file: int = 256) -> list[Path]:
    """Write a collected rollout folder as BAIR-schema TFRecords (see ``mbvc.data.rollouts``)."""
    from mbvc.data.rollouts import rollouts_to_tfrecords

    return rollouts_to_tfrecords(root, out_dir, records_per_file=records_per_file)
