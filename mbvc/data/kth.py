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
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mbvc.data.cache import partial_build, resolve_cache_dir
from mbvc.data.store import SequenceStore, SequenceWriter, read_manifest
from mbvc.data.windows import StoreWindows
from mbvc.errors import DataError, DependencyNotInstalled, did_you_mean

logger = logging.getLogger(__name__)

ACTIONS = ("boxing", "handclapping", "handwaving", "walking", "jogging", "running")
DENSE_ACTIONS = ("jogging", "running")  # windows start 3 frames apart
DENSE_STRIDE = 3
PERSONS = {"train": range(1, 17), "test": range(17, 26)}
_VIDEO = re.compile(r"^person(\d\d)_([a-z]+)_d(\d)(?:_uncomp)?$")
_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp")


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


def resize_bilinear(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize on pixel centres without antialiasing (``cv2.INTER_LINEAR``'s rule).

    Args:
        frame: ``(H, W)`` array.

    Returns:
        float64 ``(height, width)``.
    """
    def weights(n_in: int, n_out: int) -> np.ndarray:
        src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        lo = np.floor(src).astype(np.int64)
        frac = src - lo
        frac[lo < 0], lo[lo < 0] = 0.0, 0
        over = lo >= n_in - 1
        frac[over], lo[over] = 0.0, n_in - 1
        w = np.zeros((n_out, n_in))
        w[np.arange(n_out), lo] += 1 - frac
        w[np.arange(n_out), np.minimum(lo + 1, n_in - 1)] += frac
        return w

    return weights(frame.shape[0], height) @ frame.astype(np.float64) @ weights(frame.shape[1], width).T


def _grey(frame: np.ndarray) -> np.ndarray:
    # The reference keeps channel 0; KTH frames are grey, so all channels are equal anyway.
    return frame[..., 0] if frame.ndim == 3 else frame


def read_video(name: str, path: Path) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_number, grey uint8 (H, W))`` of one video (1-based numbers)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_EXT and p.name.startswith("image"))
        if not files:
            raise DataError(f"{path} holds no image_XXXX.png frames")
        from PIL import Image

        for p in files:
            digits = p.name[6:10]  # image_0001.png: the number sits at characters 6..9
            if not digits.isdigit():
                raise DataError(f"{p}: expected a name like image_0001.png (frame number at characters 6..9)")
            with Image.open(p) as im:
                yield int(digits), _grey(np.asarray(im))
        return
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401 - the plugin imageio needs for .avi
    except ImportError as exc:
        raise DependencyNotInstalled("decoding KTH .avi files needs imageio-ffmpeg: "
                                     "pip install imageio-ffmpeg") from exc
    try:
        reader = imageio.get_reader(path, format="FFMPEG")
    except Exception as exc:  # imageio raises several unrelated types for unreadable files
        raise DataError(f"cannot decode {path}: {exc}") from exc
    with reader:
        for k, frame in enumerate(reader, start=1):
            yield k, _grey(frame)


def _runs(numbered: list[tuple[int, np.ndarray]], name: str) -> list[tuple[int, list[np.ndarray]]]:
    """Split a video into runs of consecutive frame numbers: windows must not span a gap."""
    runs: list[tuple[int, list[np.ndarray]]] = []
    prev = None
    for number, frame in numbered:
        if prev is None or number != prev + 1:
            runs.append((number, []))
        runs[-1][1].append(frame)
        prev = number
    if len(runs) > 1:
        logger.warning("%s: frame numbers have %d gaps; windows will not span them", name, len(runs) - 1)
    return runs


def cache_name(split: str, image_size: int = 128) -> str:
    """Folder name of a KTH cache."""
    return f"kth_{split}_{image_size}"


def convert_kth(root: str | os.PathLike, cache_dir: str | os.PathLike, split: str, image_size: int = 128,
                source: str = "auto") -> Path:
    """Decode one split once into a uint8 cache ``<cache_dir>/kth_<split>_<size>``; reuse it afterwards.

    Raises:
        DataError: no videos, unreadable files, mixed frame sizes within a video, empty split,
            or an existing cache built from other videos.
    """
    if split not in PERSONS:
        raise DataError(f"KTH split must be 'train' or 'test', got {split!r}." + did_you_mean(split, PERSONS))
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
            pending = 0
            for vname, path in videos:
                if vname in done:
                    continue
                if pending >= 64:
                    writer.flush()
                    pending = 0
                person, action = _parse(vname)
                numbered = list(read_video(vname, path))
                shapes = {f.shape for _, f in numbered}
                if len(shapes) != 1:
                    raise DataError(f"{path}: frames of mixed sizes {sorted(shapes)}; expected one size per video")
                for first, frames in _runs(numbered, vname):
                    small = np.stack([np.clip(np.rint(resize_bilinear(f, image_size, image_size)), 0, 255)
                                      for f in frames]).astype(np.uint8)
                    writer.add({"frames": small}, {"video": vname, "action": action, "person": person,
                                                   "first_frame": first})
                    pending += 1
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
