"""Multi-process training helpers: process-group set-up and the resumable batch stream.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address; the
command line calls :func:`init_distributed` (process-wide state belongs there) and hands the
resulting :class:`DistInfo` to the trainer.

Data order: every epoch is a :class:`~torch.utils.data.distributed.DistributedSampler`
permutation (seed + epoch), cut into global batches of ``batch_size``; process r takes the
positions r, r + N, r + 2N... of each global batch. So N processes see, together, exactly the
batches one process sees, and the stream resumes from any (epoch, batch) position.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from mbvc.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Rank and world size of this process (1 process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, validates and writes checkpoints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def dist_from_env() -> DistInfo:
    """Read the torchrun environment variables (defaults: one process)."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(info: DistInfo, backend: str | None = None) -> None:
    """Join the process group when ``info.world_size > 1`` (NCCL with CUDA, gloo otherwise)."""
    if not info.enabled or dist.is_initialized():
        return
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    log.info("process %d of %d joined the %s process group", info.rank, info.world_size, backend)


def shutdown_distributed() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``values`` over processes (returned unchanged for one process)."""
    if not info.enabled:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / info.world_size


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op for one process)."""
    if info.enabled:
        dist.barrier()


def _collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return torch.utils.data.default_collate(samples)


class BatchStream:
    """An endless, resumable stream of this process's training batches.

    Args:
        dataset: map-style dataset of sample dicts.
        batch_size: global batch size (divisible by the world size).
        seed: data-order seed.
        info: this process's rank and world size.
        num_workers: DataLoader workers.
        pin_memory: pin host memory (CUDA).
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, info: DistInfo,
                 num_workers: int = 0, pin_memory: bool = False) -> None:
        if not hasattr(dataset, "__len__"):
            raise DataError("training needs a map-style dataset (with __len__ and __getitem__), "
                            f"got {type(dataset).__name__}")
        if batch_size % info.world_size:
            raise ConfigError(f"train.batch_size={batch_size} must be divisible by the number of "
                              f"processes ({info.world_size})")
        if len(dataset) < batch_size:
            raise DataError(f"the training set has {len(dataset)} sequences, fewer than "
                            f"train.batch_size={batch_size}")
        self.dataset, self.batch_size, self.seed, self.info = dataset, batch_size, seed, info
        self.num_workers, self.pin_memory = num_workers, pin_memory
        # Same count on every process and for any world size, so the epochs line up.
        self.batches_per_epoch = len(dataset) // batch_size
        self.epoch, self.batch = 0, 0
        self._it: Iterator[dict[str, Any]] | None = None

    def state_dict(self) -> dict[str, int]:
        """Position of the next batch."""
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a position saved by :meth:`state_dict`."""
        self.epoch, self.batch, self._it = int(state["epoch"]), int(state["batch"]), None

    def _epoch_loader(self) -> Iterator[dict[str, Any]]:
        sampler = DistributedSampler(self.dataset, num_replicas=self.info.world_size, rank=self.info.rank,
                                     shuffle=True, seed=self.seed)
        sampler.set_epoch(self.epoch)
        # The sampler gives this rank positions r, r + N, ... of the epoch's permutation; cutting
        # them into runs of batch_size / N makes batch b the rank's share of global batch b.
        mine, per_rank = list(sampler), self.batch_size // self.info.world_size
        batches = [mine[b * per_rank: (b + 1) * per_rank] for b in range(self.batch, self.batches_per_epoch)]
        # A dedicated generator: creating the loader must not consume the global RNG, and
        # worker seeds must not depend on when the stream was (re)started.
        gen = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        loader = DataLoader(self.dataset, batch_sampler=batches, num_workers=self.num_workers,
                            pin_memory=self.pin_memory, collate_fn=_collate, generator=gen)
        return iter(loader)

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> dict[str, Any]:
        if self.batch >= self.batches_per_epoch:
            self.epoch, self.batch, self._it = self.epoch + 1, 0, None
        if self._it is None:
            self._it = self._epoch_loader()
        item = next(self._it)
        self.batch += 1
        return item
