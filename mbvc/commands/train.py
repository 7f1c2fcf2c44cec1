"""``mbvc train``: train a preset, resume a run, or join a ``torchrun`` job (DDP)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mbvc.cli import say
from mbvc.presets import preset_names

HELP = "train a model from a preset (resumable; multi-GPU with torchrun)"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("preset", nargs="?", help=f"{', '.join(preset_names())} or a YAML path "
                        "(optional with --resume: the run's config.yaml is used)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a preset field, e.g. train.lr=3e-4 (repeatable)")
    parser.add_argument("--run-dir", type=Path, help="run folder (default runs/<preset>-<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (1 is fastest for small models on a busy machine)")


def _configure_process(info, threads: int | None) -> None:  # noqa: ANN001 - DistInfo
    """Process-wide settings: they belong to the command line, not the library."""
    import torch

    from mbvc.training.distributed import init_distributed
    from mbvc.training.setup import set_threads

    set_threads(threads)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls as TF32 on Ampere+: faster, ample precision
        torch.backends.cudnn.allow_tf32 = True
    init_distributed(info)


def _run_dir(args: argparse.Namespace, info) -> Path:  # noqa: ANN001 - DistInfo
    """The run folder; an auto-named one is created here (exclusively) by rank 0 and shared."""
    if args.run_dir is not None:
        return args.run_dir
    if args.resume:
        from mbvc.errors import ConfigError

        raise ConfigError("--resume needs --run-dir (the run folder to continue)")
    from mbvc.training.lock import fresh_run_dir

    name = [str(fresh_run_dir("runs", Path(args.preset).stem)) if info.is_main else ""]
    if info.enabled:  # every process must agree on the folder: rank 0 made it
        import torch.distributed as dist

        dist.broadcast_object_list(name, src=0)
    return Path(name[0])


def _take_run_dir(args: argparse.Namespace, info, cfg):  # noqa: ANN001, ANN202 - DistInfo, RunConfig -> RunLock
    """Validate what needs no files, then lock the run folder before any data start-up (rank 0)."""
    from mbvc.training.lock import RunLock, remove_stale_model_temps, restore_threads
    from mbvc.training.setup import check_run_dir_free
    from mbvc.training.trainer import resolve_device

    resolve_device(cfg.train.device, info)  # e.g. cuda without CUDA: refuse before making a folder
    auto = args.run_dir is None
    args.run_dir = _run_dir(args, info)
    lock = RunLock(args.run_dir, created=auto) if info.is_main else None
    try:
        if info.is_main:
            check_run_dir_free(args.run_dir, args.resume)
            if args.resume:
                remove_stale_model_temps(args.run_dir)
        restore_threads(args.run_dir, args.threads, args.resume, record=info.is_main)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return lock


def _config(args: argparse.Namespace, overrides: list[str]):  # noqa: ANN202 - RunConfig
    from mbvc.config import load_run_config
    from mbvc.errors import ConfigError
    from mbvc.training.setup import check_same_run, load_resume_config

    if not args.resume:
        if args.preset is None:
            raise ConfigError("a preset is required (or --resume --run-dir DIR)")
        return load_run_config(args.preset, overrides)
    stored = load_resume_config(args.run_dir)
    cfg = load_run_config(args.preset, overrides) if args.preset else load_resume_config(args.run_dir, overrides)
    check_same_run(stored, cfg, args.run_dir)
    return cfg


def run(args: argparse.Namespace) -> int:
    from mbvc.training.distributed import barrier, dist_from_env, shutdown_distributed
    from mbvc.training.setup import build_datasets, build_trainer, prepare_run_dir

    info = dist_from_env()
    if not info.is_main:  # one process speaks; the others only warn
        logging.getLogger().setLevel(logging.WARNING)
    overrides = list(args.overrides) + (["train.progress=false"] if args.no_progress else [])
    handler: logging.Handler | None = None
    trainer = lock = None
    finished = interrupted = False
    try:
        _configure_process(info, args.threads)
        if args.resume and args.run_dir is None:
            _run_dir(args, info)  # says --resume needs --run-dir
        cfg = _config(args, overrides)
        lock = _take_run_dir(args, info, cfg)
        datasets = build_datasets(cfg)  # bad data paths fail here, before config.yaml exists
        if info.is_main:
            prepare_run_dir(args.run_dir, cfg, args.resume)
            handler = logging.FileHandler(args.run_dir / "train.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logging.getLogger().addHandler(handler)
            t, m = cfg.train, cfg.model
            hidden = f" hidden {list(m.num_hidden)}" if hasattr(m, "num_hidden") else ""
            amount = (f"{t.iterations} iterations" if t.time_budget_min is None else
                      f"a {t.time_budget_min:g}-min budget (iterations fitted by timing the real step)")
            say(f"run dir: {args.run_dir}\nmodel: {m.name}{hidden}, {m.input_length} -> "
                  f"{m.total_length}; data: {cfg.data.name}; eval {cfg.eval.context} -> {cfg.eval.horizon}\n"
                  f"train: {amount}, batch {t.batch_size}, lr {t.lr} ({t.optimizer}, "
                  f"{t.lr_schedule}), {info.world_size} process(es)")
        barrier(info)
        trainer = build_trainer(cfg, args.run_dir, info, resume=args.resume, datasets=datasets)
        result = trainer.fit(resume=args.resume)
        if info.is_main:
            say(f"finished at iteration {result.iteration} in {result.elapsed_s / 60:.1f} min; model: {result.model_path}")
            if result.seconds_per_iteration is not None:
                say(f"time budget: {1000 * result.seconds_per_iteration:.1f} ms per timed iteration -> "
                    f"{result.planned_iterations} iterations")
            if result.last_eval:
                shown = {k: v for k, v in result.last_eval.items() if k.endswith(("/mse", "/ssim", "/psnr", "/lpips"))}
                say("validation: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(shown.items())))
        finished = True
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if trainer is not None:
            trainer.logger.close()
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
        shutdown_distributed()
        if lock is not None:
            # A fresh start that failed before its first checkpoint leaves nothing that would
            # block the corrected command ("already holds a run", "another data" on --resume);
            # a run the user interrupted after it began training keeps its logs.
            if not finished and not args.resume and not (interrupted and trainer is not None and trainer.iteration):
                lock.discard_failed_start()
            lock.release()
    return 0
