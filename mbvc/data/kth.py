"""KTH human actions, from the distributed ``.avi`` files or the reference's extracted frames.

Videos are decoded once (``.avi`` through imageio's ffmpeg plugin, or PNG/JPG frames through
Pillow), turned grey the way the reference does (first channel; KTH is grey already),
resized with bilinear interpolation on pixel centres (what the reference's ``cv2.resize``
does, without OpenCV) and rounded into a uint8 cache; training never decodes video again.

Splits: persons 01-16 train, 17-25 test. Windows never cross a video (nor a gap in the frame
numbers of an extracted video) and, as in the reference, are laid from the end of each video
backward: consecutive windows do not overlap for boxing, handclapping, handwaving and walking,
and start 3 frames apart for jogging and running. Training windows are 20 frames (10 -> 10),
evaluation windows 30 (10 -> 20).
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from mbvc.data.cache import partial_build, resolve_cache_dir
from mbvc.data.kth_decode import (  # noqa: F401 - read_video and resize_bilinear are re-exported
    convert_video,
    default_workers,
    ordered_map,
    read_video,
    resize_bilinear,
)
from mbvc.data.store import SequenceStore, SequenceWriter, read_manifest
from mbvc.data.windows import StoreWindows
from mbvc.errors import DataError, did_you_mean

logger = logging.getLogger(__name__)

ACTIONS = ("boxing", "handclapping", "handwaving", "walking", "jogging", "running")
DENSE_ACTIONS = ("jogging", "running")  # windows start 3 frames apart
DENSE_STRIDE = 3
PERSONS = {"train": range(1, 17), "test": range(17, 26)}
_VIDEO = re.compile(r"^person(\d\d)_([a-z]+)_d(\d)(?:_uncomp)?$")


def _parse(name: str) -> tuple[int, str] | None:
    m = _VIDEO.match(name)
    if m is None or m.group(2) not in ACTIONS:
        return None
    return int(m.group(1)), m.group(2)


def find_videos(root: str | os.PathLike, source: str = "auto") -> list[tuple[str, Path]]:
    """KTH videos under ``root``: ``(name, path)`` sorted by name, ``name`` like ``person01_boxing_d1``.

    Args:
        root: folder of ``.avi`` files (any depth) or the extracted layout
            ``<root>/<action>/<person01_boxing_d1>/image_0001.png``.
        source: ``avi``, ``frames`` or ``auto`` (extracted frames if any, else ``.avi``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"KTH root {root} is not a folder")
    if source not in ("auto", "avi", "frames"):
        raise DataError(f"source must be 'auto', 'avi' or 'frames', got {source!r}")
    frames = [] if source == "avi" else [(d.name, d) for a in ACTIONS if (root / a).is_dir()
                                          for d in (root / a).iterdir() if d.is_dir() and _parse(d.name)]
    avis = [] if source == "frames" or (source == "auto" and frames) else [
        (p.stem.removesuffix("_uncomp"), p) for p in root.rglob("*.avi") if _parse(p.stem)]
    videos = sorted(frames or avis)
    if not videos:
        raise DataError(f"no KTH videos under {root}: expected files like person01_boxing_d1_uncomp.avi "
                        "or folders like boxing/person01_boxing_d1/image_0001.png")
    return videos


def cache_name(split: str, image_size: int = 128) -> str:
    """Folder name of a KTH cache."""
    return f"kth_{split}_{image_size}"


def convert_kth(root: str | os.PathLike, cache_dir: str | os.PathLike, split: str, image_size: int = 128,
                source: str = "auto", workers: int | None = None) -> Path:
    """Decode one split once into a uint8 cache ``<cache_dir>/kth_<split>_<size>``; reuse it afterwards.

    Videos are decoded and resized in ``workers`` processes (default :func:`default_workers`)
    and written in name order, so the cache is identical for any number of workers.

    Raises:
        DataError: no videos, unreadable files, mixed frame sizes within a video, empty split,
            or an existing cache built from other videos.
    """
    if split not in PERSONS:
        raise DataError(f"KTH split must be 'train' or 'test', got {split!r}." + did_you_mean(split, PERSONS))
    workers = default_workers() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise DataError(f"workers must be an int >= 1, got {workers!r}")
    videos = [(n, p) for n, p in find_videos(root, source) if _parse(n)[0] in PERSONS[split]]
    if not videos:
        raise DataError(f"no KTH videos of persons {PERSONS[split].start:02d}-{PERSONS[split].stop - 1} "
                        f"({split} split) under {root}")
    spec = {"source": "kth", "split": split, "image_size": image_size, "videos": [n for n, _ in videos]}
    name = cache_name(split, image_size)
    final, partial = Path(cache_dir) / name, Path(cache_dir) / f".{name}.partial"
    if final.exists():
        if read_manifest(final)["spec"] != SequenceWriter.normalise(spec):
            raise DataError(f"cache {final} was built from other videos or options; move it away or "
                            "pass another cache_dir")
        return final
    logger.info("decoding %d KTH %s videos into %s: a one-time step", len(videos), split, final)
    with partial_build(partial, spec):
        # Shards are sealed only between videos, so a resumed conversion can skip whole videos.
        with SequenceWriter(partial, spec, shard_size=1 << 30) as writer:
            done = {m["video"] for m in SequenceStore(partial).meta} if writer.num_episodes else set()
            todo = [(vname, path, image_size) for vname, path in videos if vname not in done]
            for k, (vname, runs) in enumerate(ordered_map(convert_video, todo, workers)):
                if k and k % 64 == 0:
                    writer.flush()
                person, action = _parse(vname)
                for first, small in runs:
                    writer.add({"frames": small}, {"video": vname, "action": action, "person": person,
                                                   "first_frame": first})
    os.replace(partial, final)
    return final


class KTHDataset(StoreWindows):
    """Windows over a KTH cache made by :func:`convert_kth`.

    Samples: ``{"frames": (T, 1, S, S)}`` float32 in ``[0, 1]`` (uint8 if ``uint8``).

    Args:
        cache: cache folder.
        seq_len: window length (20 for training, 30 for 10 -> 20 evaluation).
        stride: ``"category"`` (the reference: ``seq_len`` for boxing, handclapping, handwaving
            and walking, 3 for jogging and running) or an int for every video.
        uint8: yield uint8 frames.
        skip_short: skip (count and log) videos shorter than ``seq_len`` instead of raising.
    """

    def __init__(self, cache: str | os.PathLike, seq_len: int, stride: int | str = "category",
                 uint8: bool = False, skip_short: bool = False) -> None:
        store = SequenceStore(cache)
        if stride == "category":
            strides = [DENSE_STRIDE if m.get("action") in DENSE_ACTIONS else seq_len for m in store.meta]
        elif isinstance(stride, int) and stride >= 1:
            strides = [stride] * len(store)
        else:
            raise DataError(f"stride must be 'category' or an int >= 1, got {stride!r}")
        super().__init__(store, seq_len, 1, uint8, anchor="end", skip_short=skip_short, strides=strides)


def kth_dataset(root: str | os.PathLike, split: str, seq_len: int | None = None, stride: int | str = "category",
                uint8: bool = False, image_size: int = 128, cache_dir: str | os.PathLike | None = None,
                source: str = "auto", skip_short: bool = False) -> KTHDataset:
    """Convert ``split`` if needed and open it.

    The cache goes to ``cache_dir``, by default ``<root>/mbvc_cache``, or a user cache folder
    when ``root`` is read-only (see :func:`mbvc.data.cache.resolve_cache_dir`). ``seq_len`` defaults to 20 for train and 30 for test.
    """
    cache_dir = resolve_cache_dir(root, cache_dir, cache_name(split, image_size))
    cache = convert_kth(root, cache_dir, split, image_size, source)
    return KTHDataset(cache, seq_len or (20 if split == "train" else 30), stride, uint8, skip_short)
