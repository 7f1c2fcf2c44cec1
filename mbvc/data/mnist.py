"""Moving MNIST generation: seeded, identical on every machine, from the shipped MNIST digits.

Each sequence places ``num_digits`` digits at random positions with random directions and one
constant speed; a digit reflects off the canvas borders and digits combine by per-pixel maximum.
Sequence ``i`` of seed ``s`` is drawn from its own ``PCG64(SeedSequence([s, i]))`` stream and
uses only IEEE-exact arithmetic (+, -, *, /, sqrt, floor; no trig or libm calls), so the same
seed gives bit-identical frames on every platform, in any order, with any number of workers.

Digit pools (of the 10,000 shipped MNIST test digits, ``mbvc/data/assets``): train uses digits
0-7999, val 8000-8999, test 9000-9999, so test sequences never show a training digit.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from importlib import resources

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from mbvc.data.windows import frames_tensor
from mbvc.errors import DataError, did_you_mean

logger = logging.getLogger(__name__)

POOLS = {"train": (0, 8000), "val": (8000, 9000), "test": (9000, 10000)}
#: Sequences per split in the reference's Moving MNIST files.
REFERENCE_SIZES = {"train": 10000, "val": 2000, "test": 3000}


@lru_cache(maxsize=1)
def _shipped_digits() -> np.ndarray:
    with resources.files("mbvc.data").joinpath("assets/mnist_test_10k.npz").open("rb") as f:
        digits = np.load(f)["data"]
    digits.setflags(write=False)
    return digits


def load_mnist_digits(split: str | None = None) -> np.ndarray:
    """The shipped MNIST digits, uint8 ``(N, 28, 28)``: all 10,000 or one split's disjoint pool."""
    digits = _shipped_digits()
    if split is None:
        return digits
    if split not in POOLS:
        raise DataError(f"unknown digit pool {split!r}; expected one of {list(POOLS)}." + did_you_mean(split, POOLS))
    lo, hi = POOLS[split]
    return digits[lo:hi]


class MovingMNISTGenerator:
    """Draws Moving MNIST sequences; ``gen.sequence(seed, i)`` is a pure function of ``(seed, i)``.

    Args:
        digits: uint8 ``(N, h, w)`` digit images; default: the shipped pool of ``split``.
        split: digit pool when ``digits`` is None (``train``, ``val``, ``test``).
        seq_len: frames per sequence.
        image_size: canvas side.
        num_digits: digits per sequence.
        speed: pixels per frame (the classic generator moves about 3.6 px on a 64 canvas).
    """

    def __init__(self, digits: np.ndarray | None = None, split: str = "train", seq_len: int = 20,
                 image_size: int = 64, num_digits: int = 2, speed: float = 3.6) -> None:
        digits = load_mnist_digits(split) if digits is None else np.asarray(digits)
        if digits.ndim != 3 or digits.dtype != np.uint8 or len(digits) == 0:
            raise DataError(f"digits must be uint8 (N, h, w) with N >= 1, got {digits.dtype} {digits.shape}")
        if seq_len < 1 or num_digits < 1:
            raise DataError(f"need seq_len >= 1 and num_digits >= 1, got {seq_len=} {num_digits=}")
        self.lim = np.array([image_size - digits.shape[1], image_size - digits.shape[2]], dtype=np.float64)
        if (self.lim < 0).any():
            raise DataError(f"image_size {image_size} is smaller than the digits {digits.shape[1:]}")
        if not 0 <= speed <= self.lim.min():
            raise DataError(f"speed must be in [0, {self.lim.min()}] px/frame so a bounce stays in frame, "
                            f"got {speed}")
        self.digits, self.seq_len, self.image_size = digits, seq_len, image_size
        self.num_digits, self.speed = num_digits, float(speed)

    def trajectories(self, rng: np.random.Generator) -> np.ndarray:
        """Top-left corners ``(num_digits, seq_len, 2)`` int (row, col), drawn from ``rng``."""
        out = np.empty((self.num_digits, self.seq_len, 2), dtype=np.int64)
        for d in range(self.num_digits):
            pos = rng.random(2) * self.lim
            while True:  # uniform direction by rejection: no trig, so exact on every machine
                v = rng.random(2) * 2.0 - 1.0
                norm2 = v[0] * v[0] + v[1] * v[1]
                if 1e-4 < norm2 <= 1.0:
                    break
            v = v / np.sqrt(norm2) * self.speed
            for t in range(self.seq_len):
                out[d, t] = np.floor(pos)
                pos = pos + v
                low, high = pos < 0, pos > self.lim  # reflect off the borders
                pos = np.where(low, -pos, np.where(high, 2 * self.lim - pos, pos))
                v = np.where(low | high, -v, v)
        return out

    def sequence(self, seed: int, index: int) -> np.ndarray:
        """Sequence ``index`` of ``seed``: uint8 ``(seq_len, image_size, image_size)``."""
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(index)])))
        chosen = rng.integers(0, len(self.digits), self.num_digits)
        corners = self.trajectories(rng)
        frames = np.zeros((self.seq_len, self.image_size, self.image_size), dtype=np.uint8)
        h, w = self.digits.shape[1:]
        for d, k in enumerate(chosen):
            digit = self.digits[k]
            for t, (r, c) in enumerate(corners[d]):
                np.maximum(frames[t, r:r + h, c:c + w], digit, out=frames[t, r:r + h, c:c + w])
        return frames


def generate_moving_mnist(num_sequences: int, seed: int = 0, split: str = "test", **kwargs) -> np.ndarray:
    """Generate a fixed set: uint8 ``(N, T, H, W)``; ``kwargs`` go to :class:`MovingMNISTGenerator`."""
    gen = MovingMNISTGenerator(split=split, **kwargs)
    out = np.empty((num_sequences, gen.seq_len, gen.image_size, gen.image_size), dtype=np.uint8)
    for i in range(num_sequences):
        out[i] = gen.sequence(seed, i)
    return out


def write_moving_mnist(path: str, num_sequences: int, seed: int = 0, split: str = "test",
                       fmt: str = "npz", context: int = 10, **kwargs) -> None:
    """Generate a fixed set and write it as the reference npz or the classic time-first npy.

    Args:
        path: output file.
        num_sequences: sequences to draw.
        seed: the set's seed.
        split: digit pool.
        fmt: ``npz`` (reference layout, float32 [0, 1], input = first ``context`` frames) or
            ``npy`` (``mnist_test_seq.npy`` layout: uint8 ``(T, N, H, W)``).
        context: input frames per clip in the npz layout.
        **kwargs: passed to :class:`MovingMNISTGenerator`.
    """
    from mbvc.data.mnist_files import write_mnist_seq, write_reference_npz

    frames = generate_moving_mnist(num_sequences, seed, split, **kwargs)
    if fmt == "npz":
        write_reference_npz(path, frames, context=context)
    elif fmt == "npy":
        write_mnist_seq(path, frames)
    else:
        raise DataError(f"fmt must be 'npz' or 'npy', got {fmt!r}")
    logger.info("wrote %d Moving MNIST sequences (seed %d, %s digits) to %s", num_sequences, seed, split, path)


class MovingMNIST(Dataset):
    """A fixed-size Moving MNIST set generated on access; item ``i`` depends only on ``(seed, i)``.

    Samples: ``{"frames": (T, 1, H, W)}`` float32 in ``[0, 1]`` (uint8 if ``uint8``).

    Args:
        num_sequences: dataset length (reference sizes: train 10,000, val 2,000, test 3,000).
        seed: set seed (use different seeds for different sets).
        split: digit pool.
        uint8: yield uint8 frames.
        **kwargs: passed to :class:`MovingMNISTGenerator`.
    """

    def __init__(self, num_sequences: int, seed: int = 0, split: str = "test", uint8: bool = False,
                 **kwargs) -> None:
        if num_sequences < 1:
            raise DataError(f"num_sequences must be >= 1, got {num_sequences}")
        self.gen = MovingMNISTGenerator(split=split, **kwargs)
        self.num_sequences, self.seed, self.uint8 = num_sequences, seed, uint8

    def __len__(self) -> int:
        return self.num_sequences

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < self.num_sequences:
            raise IndexError(i)
        return {"frames": frames_tensor(self.gen.sequence(self.seed, i)[:, None], self.uint8)}


class MovingMNISTStream(IterableDataset):
    """An endless training stream; worker ``k`` of ``n`` yields items ``k, k + n, k + 2n, ...``.

    The stream depends only on ``seed`` and the number of DataLoader workers.

    Args:
        seed: stream seed.
        split: digit pool (``train`` by default).
        uint8: yield uint8 frames.
        **kwargs: passed to :class:`MovingMNISTGenerator`.
    """

    def __init__(self, seed: int = 0, split: str = "train", uint8: bool = False, **kwargs) -> None:
        self.gen = MovingMNISTGenerator(split=split, **kwargs)
        self.seed, self.uint8 = seed, uint8

    def __iter__(self):  # noqa: ANN204 - iterator of sample dicts
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        i = worker
        while True:
            yield {"frames": frames_tensor(self.gen.sequence(self.seed, i)[:, None], self.uint8)}
            i += workers
