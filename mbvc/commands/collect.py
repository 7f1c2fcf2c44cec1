"""``mbvc collect``: run a policy in an environment and store the episodes as rollouts."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from mbvc.cli import say
from mbvc.errors import ConfigError

HELP = "collect episodes of an environment with a policy into a rollout folder (resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", type=Path, help="rollout folder to write or resume")
    parser.add_argument("--env", default="mbvc/Push-v0", help="gymnasium id (default: %(default)s)")
    parser.add_argument("-n", "--episodes", type=int, default=100, help="total episodes wanted (default: %(default)s)")
    parser.add_argument("--policy", default="mixed",
                        help="random | scripted | mixed | episode_mix (per episode mixed or random: the demo's "
                             "data) | module:factory, where factory(env, **policy_kwargs) "
                             "returns a policy or a trained agent (default: %(default)s)")
    parser.add_argument("--policy-kwargs", default="{}",
                        help='JSON keyword arguments of a module:factory policy, e.g. \'{"path": "agent.zip"}\'')
    parser.add_argument("--seed", type=int, default=0, help="base seed (default: %(default)s)")
    parser.add_argument("--image-size", type=int, default=64, help="frame side (default: %(default)s)")
    parser.add_argument("--episode-length", type=int, default=30,
                        help="steps per episode of mbvc envs (default: %(default)s)")
    parser.add_argument("--noise", type=float, default=0.3, help="action noise std of 'mixed' (default: %(default)s)")
    parser.add_argument("--random-prob", type=float, default=0.2,
                        help="random-action probability of 'mixed' (default: %(default)s)")
    parser.add_argument("--env-kwargs", default="{}",
                        help='JSON keyword arguments of gymnasium.make, e.g. \'{"num_blocks": 2}\'')
    parser.add_argument("-j", "--num-envs", type=int, default=1, help="worker processes (default: %(default)s)")
    parser.add_argument("--shard-size", type=int, default=64, help="episodes per shard (default: %(default)s)")
    parser.add_argument("--tfrecords", type=Path, default=None,
                        help="also export the folder as BAIR-schema TFRecords into this folder")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    import envs  # registers the ids

    envs.setup_gl()  # a process-wide setting, before mujoco loads
    from envs.collect import CollectConfig, collect, export_tfrecords

    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # PyOpenGL's INFO chatter on import

    env_kwargs = _json_object(args.env_kwargs, "--env-kwargs")
    policy_kwargs = _json_object(args.policy_kwargs, "--policy-kwargs")
    cfg = CollectConfig(
        env_id=args.env, num_episodes=args.episodes, policy=args.policy, policy_kwargs=policy_kwargs,
        seed=args.seed, image_size=args.image_size, episode_length=args.episode_length, noise_std=args.noise,
        random_prob=args.random_prob, env_kwargs=env_kwargs, num_envs=args.num_envs,
        shard_size=args.shard_size, progress=not args.no_progress,
    )
    say(f"collect: {cfg.env_id} policy={cfg.policy} episodes={cfg.num_episodes} seed={cfg.seed} "
          f"image={cfg.image_size} workers={cfg.num_envs} -> {args.output}")
    stats = collect(args.output, cfg)
    rate = "" if stats.success_rate is None else f", success {stats.success_rate:.0%}"
    say(f"wrote {stats.episodes_new} episodes ({stats.episodes_total} in {args.output}), "
          f"{stats.frames} frames in {stats.seconds:.1f} s ({stats.frames_per_second:.0f} frames/s){rate}")
    if args.tfrecords is not None:
        files = export_tfrecords(args.output, args.tfrecords)
        say(f"exported {stats.episodes_total} episodes to {len(files)} TFRecord files in {args.tfrecords}")
    return 0


def _json_object(text: str, flag: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{flag} must be a JSON object, got {text!r}: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{flag} must be a JSON object, got {text!r}")
    return value
