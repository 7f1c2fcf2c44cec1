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


#: CollectConfig field -> the flag that sets it (error messages name what the user typed).
_FLAGS = {"env_id": "--env", "num_episodes": "--episodes", "policy": "--policy", "policy_kwargs": "--policy-kwargs",
          "seed": "--seed", "image_size": "--image-size", "episode_length": "--episode-length", "noise_std": "--noise",
          "random_prob": "--random-prob", "env_kwargs": "--env-kwargs", "num_envs": "--num-envs",
          "shard_size": "--shard-size"}


def run(args: argparse.Namespace) -> int:
    from mbvc.io import check_output_folder

    # Every argument is checked before the folder is touched: a bad one must not be locked
    # into a new folder's manifest.
    env_kwargs = _json_object(args.env_kwargs, "--env-kwargs")
    policy_kwargs = _json_object(args.policy_kwargs, "--policy-kwargs")
    check_output_folder(args.output, "output folder")
    if args.tfrecords is not None:
        check_output_folder(args.tfrecords, "--tfrecords")
        if args.tfrecords.resolve() == args.output.resolve():
            raise ConfigError(f"--tfrecords {args.tfrecords} is the rollout folder itself; give another folder")

    import envs  # registers the ids

    envs.setup_gl()  # a process-wide setting, before mujoco loads
    from envs.collect import CollectConfig, collect, export_tfrecords

    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # PyOpenGL's INFO chatter on import

    try:
        cfg = CollectConfig(
            env_id=args.env, num_episodes=args.episodes, policy=args.policy, policy_kwargs=policy_kwargs,
            seed=args.seed, image_size=args.image_size, episode_length=args.episode_length, noise_std=args.noise,
            random_prob=args.random_prob, env_kwargs=env_kwargs, num_envs=args.num_envs,
            shard_size=args.shard_size, progress=not args.no_progress,
        )
    except ConfigError as e:
        message = str(e)
        for name, flag in _FLAGS.items():
            message = message.replace(f"CollectConfig.{name} ", f"{flag} ")
        raise ConfigError(message) from None
    say(f"collect: {cfg.env_id} policy={cfg.policy} episodes={cfg.num_episodes} seed={cfg.seed} "
          f"image={cfg.image_size} workers={cfg.num_envs} -> {args.output}")
    stats = _writing(args.output, collect, args.output, cfg)
    rate = "" if stats.success_rate is None else f", success {stats.success_rate:.0%}"
    say(f"wrote {stats.episodes_new} episodes ({stats.episodes_total} in {args.output}), "
          f"{stats.frames} frames in {stats.seconds:.1f} s ({stats.frames_per_second:.0f} frames/s){rate}")
    if args.tfrecords is not None:
        files = _writing(args.tfrecords, export_tfrecords, args.output, args.tfrecords)
        say(f"exported {stats.episodes_total} episodes to {len(files)} TFRecord files in {args.tfrecords}")
    return 0


def _writing(where: Path, fn, *fn_args):  # noqa: ANN001, ANN202 - a call that writes into ``where``
    """``fn(*fn_args)``, with an OS error the library did not name turned into one line naming the path."""
    import errno

    from mbvc.errors import MbvcError, OutputError

    refused = {errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
               errno.EIO, getattr(errno, "EDQUOT", errno.ENOSPC)}
    try:
        return fn(*fn_args)
    except OSError as e:
        if isinstance(e, MbvcError) or e.errno not in refused:  # e.g. a worker process that died: not a write
            raise
        path = e.filename or where
        raise OutputError(f"cannot write {path}: {e.strerror or e}; the episodes already finished in "
                          f"{fn_args[0]} are kept, and the same command run again resumes after them") from None


def _json_object(text: str, flag: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{flag} must be a JSON object, got {text!r}: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{flag} must be a JSON object, got {text!r}")
    return value
