"""``mbvc data``: list the published datasets, and fetch, verify and prepare one (``data get NAME``)."""
from __future__ import annotations

import argparse
from pathlib import Path

from mbvc.cli import positive_int, say

HELP = "fetch Moving MNIST, KTH or BAIR once, verified and prepared (`data list`, `data get NAME`)"
_ROOT_HELP = "data root (default: $MBVC_DATA, else ~/.cache/mbvc/data); the dataset goes to ROOT/NAME"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    ls = sub.add_parser("list", help="each dataset's source, size, terms and whether it is present",
                        description="Each dataset's source address, size, terms and whether it is present.")
    ls.add_argument("--root", type=Path, help=_ROOT_HELP)
    get = sub.add_parser("get", help="download, verify and prepare a dataset (resumable; offline with --from)",
                         description="Download NAME (resuming an interrupted download), verify it by content, "
                                     "record its sha256 in a manifest and prepare it for the readers, once.")
    get.add_argument("name", metavar="NAME", help="moving_mnist, kth or bair")
    get.add_argument("--root", type=Path, help=_ROOT_HELP)
    get.add_argument("--from", dest="source", type=Path, metavar="FILE_OR_DIR",
                     help="a published file downloaded elsewhere, or a folder holding them: verified and "
                          "prepared the same way (never moved or removed); files not there are downloaded")
    get.add_argument("--image-size", type=positive_int, action="append", metavar="N",
                     help="kth: cache side to decode (repeatable; default 128, the kth-*-small presets use 64)")
    get.add_argument("--keep-archives", action="store_true",
                     help="keep the downloaded zip/tar archives after unpacking (default: removed)")
    get.add_argument("--no-progress", action="store_true", help="no download progress bar")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list(args.root)
    return _get(args)


def _list(root: Path | None) -> int:
    from mbvc.data.get import SOURCES, dataset_folder, dataset_status, default_root, human_size

    say(f"data root: {root or default_root()}")
    for src in SOURCES.values():
        folder = dataset_folder(src.name, root)
        state, detail = dataset_status(folder)
        where = f" in {folder}" if state != "absent" else ""
        say(f"\n{src.name}: {state}{where}" + (f" ({detail})" if detail else ""))
        say(f"  what:    {src.title}")
        say(f"  source:  {_addresses(src)}")
        say(f"  size:    about {human_size(src.size)} to download")
        say(f"  terms:   {src.terms}; page {src.page}")
        say(f"  read as: {src.reads_as}")
    return 0


def _addresses(src) -> str:  # noqa: ANN001 - a DatasetSource (imported lazily)
    """``http://host/dir/file`` or, for several files, ``http://host/dir/{a.zip,b.zip}``."""
    urls = [src.url(f) for f in src.files]
    if len(urls) == 1:
        return urls[0]
    return f"{urls[0].rsplit('/', 1)[0]}/{{{','.join(f.name for f in src.files)}}}"


def _get(args: argparse.Namespace) -> int:
    from mbvc.data.get import get_dataset, get_source, human_size

    src = get_source(args.name)
    if args.image_size and src.kind != "kth":
        from mbvc.errors import ConfigError

        raise ConfigError(f"--image-size sets the side of the KTH cache; {src.name} has none (its readers size "
                          "frames themselves)")
    report = get_dataset(src, args.root, args.source, tuple(args.image_size) if args.image_size else None,
                         args.keep_archives, progress=False if args.no_progress else None)
    if report.already:
        head = f"{src.name}: present in {report.folder} (complete manifest)"
        if not report.built_caches:
            say(f"{head}; nothing to do")
            return 0
        say(f"{head}; nothing to download")
    else:
        fetched = f"downloaded {human_size(report.fetched)}, " if report.fetched else ""
        say(f"{src.name}: {fetched}verified and prepared in {report.folder}")
    steps = ", ".join(f"{step} {sec:.1f} s" for step, sec in report.seconds.items())
    say(f"  time {report.wall:.1f} s ({steps}); {human_size(report.disk)} on disk")
    if report.built_caches:
        say(f"  decoded: {', '.join(report.built_caches)}")
    say(f"  read as: {src.reads_as}")
    return 0
