"""Seeded evaluation of any agent: success rate and final goal distance."""
from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from mbvc.errors import ConfigError

from .core import Agent, goal_from_env

log = logging.getLogger(__name__)


@dataclass
class EpisodeResult:
    """Outcome of one episode.

    Attributes:
        seed: the ``env.reset`` seed (it fixes the start and the goal).
        success: ``info["is_success"]`` at the last step.
        final_distance: ``info["distance"]`` at the last step.
        steps: steps taken.
        total_reward: sum of rewards.
        plan_ms: mean planning time per step (agents that record it), else ``None``.
    """

    seed: int
    success: bool
    final_distance: float
    steps: int
    total_reward: float
    plan_ms: float | None = None


@dataclass
class EvalResult:
    """Episodes of one agent, with aggregate properties."""

    episodes: list[EpisodeResult] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        """Fraction of successful episodes."""
        return float(np.mean([e.success for e in self.episodes])) if self.episodes else 0.0

    @property
    def final_distance(self) -> float:
        """Mean final distance to the goal."""
        return float(np.mean([e.final_distance for e in self.episodes])) if self.episodes else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary plus the per-episode records."""
        plan = [e.plan_ms for e in self.episodes if e.plan_ms is not None]
        return {
            "episodes": len(self.episodes),
            "success_rate": self.success_rate,
            "final_distance": self.final_distance,
            "plan_ms": float(np.mean(plan)) if plan else None,
            "per_episode": [asdict(e) for e in self.episodes],
        }


def evaluate_agent(
    agent: Agent,
    env: gym.Env,
    seeds: Sequence[int] | int = 10,
    *,
    goal_fn: Callable[[gym.Env], Any] = goal_from_env,
    max_steps: int | None = None,
    on_step: Callable[[int, dict[str, Any], np.ndarray, dict[str, Any]], None] | None = None,
) -> EvalResult:
    """Run seeded episodes and score them.

    Args:
        agent: any :class:`~agents.core.Agent`.
        env: the environment (episodes end at ``terminated`` / ``truncated`` or ``max_steps``).
        seeds: the ``reset`` seeds, or a count ``n`` for seeds ``0..n-1``.
        goal_fn: what :meth:`Agent.reset` receives as ``goal`` (default: the env's goal image).
        max_steps: optional cap on steps per episode.
        on_step: ``on_step(episode_index, obs, action, info)`` after each step (recording GIFs...).

    Returns:
        The :class:`EvalResult`.
    """
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ConfigError("evaluate_agent needs at least one seed")
    result = EvalResult()
    for index, seed in enumerate(seeds):
        obs, info = env.reset(seed=seed)
        if "seed" in inspect.signature(agent.reset).parameters:
            agent.reset(obs, goal=goal_fn(env), seed=seed)
        else:  # a user agent without per-episode seeding
            agent.reset(obs, goal=goal_fn(env))
        steps, total, done = 0, 0.0, False
        while not done and (max_steps is None or steps < max_steps):
            action = agent.act(obs)
            obs, reward, terminated, truncated, info = env.step(action)
            steps, total, done = steps + 1, total + float(reward), terminated or truncated
            if on_step is not None:
                on_step(index, obs, action, info)
        times = getattr(agent, "step_times", None)
        plan_ms = 1000.0 * float(np.mean(times)) if times else None
        ep = EpisodeResult(seed, bool(info.get("is_success", False)), float(info.get("distance", np.nan)), steps, total, plan_ms)
        log.info("episode %d (seed %d): success=%s distance=%.4f", index, seed, ep.success, ep.final_distance)
        result.episodes.append(ep)
    return result


def run_episodes(
    name: str,
    agent: Agent,
    env: gym.Env,
    seeds: Sequence[int],
    *,
    goal_fn: Callable[[gym.Env], Any] = goal_from_env,
    done: Sequence[EpisodeResult] = (),
    on_episode: Callable[[EpisodeResult, Agent], None] | None = None,
    progress: bool = False,
    max_steps: int | None = None,
) -> EvalResult:
    """Score ``agent`` on ``seeds`` one episode at a time, skipping episodes already done.

    The loop behind ``mbvc plan`` and the demo: a progress bar per agent, and resumable
    (episodes are seeded one by one, so an episode's outcome does not depend on which ran
    before it).

    Args:
        name: the agent's name on the progress bar and in the log.
        agent: any :class:`~agents.core.Agent`.
        env: the environment.
        seeds: the ``reset`` seeds, in order.
        goal_fn: what :meth:`Agent.reset` receives as ``goal``.
        done: results of episodes finished earlier; their seeds are not run again.
        on_episode: ``on_episode(result, agent)`` after each new episode (e.g. to save it).
        progress: show a tqdm bar.
        max_steps: optional cap on steps per episode.

    Returns:
        The :class:`EvalResult` of every seed, in the order of ``seeds``.
    """
    from tqdm.auto import tqdm

    finished = {e.seed: e for e in done}
    result = EvalResult()
    with tqdm(list(seeds), desc=f"{name}", unit="ep", disable=not progress) as bar:
        for seed in bar:
            if seed in finished:
                result.episodes.append(finished[seed])
                continue
            episode = evaluate_agent(agent, env, [seed], goal_fn=goal_fn, max_steps=max_steps).episodes[0]
            result.episodes.append(episode)
            if on_episode is not None:
                on_episode(episode, agent)
            bar.set_postfix(success=f"{result.success_rate:.0%}", refresh=False)
    log.info("%s: success %.0f%% over %d episodes, final distance %.4f", name, 100 * result.success_rate,
             len(result.episodes), result.final_distance)
    return result
