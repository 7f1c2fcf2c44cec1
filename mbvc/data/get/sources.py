"""Where Moving MNIST, KTH and BAIR are published, what they weigh, and where mbvc puts them.

Each dataset is a :class:`DatasetSource`: the published files (name and published size, shown
by ``mbvc data list`` and never checked, since the real checksums are not published), the page
and terms, and what its content must look like (the ``.npy`` shape and dtype). Verification is
by content (:mod:`mbvc.data.get.verify`), so a test can hand a smaller spec made with
:func:`dataclasses.replace`.

Addresses can be overridden, for a mirror or a test server on the loopback address:
``MBVC_DATA_URL_<NAME>`` (``MBVC_DATA_URL_MOVING_MNIST``, ``MBVC_DATA_URL_KTH``,
``MBVC_DATA_URL_BAIR``) replaces the folder the dataset's files are fetched from, so a file's
address is ``$MBVC_DATA_URL_KTH/walking.zip``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mbvc.errors import ConfigError, did_you_mean

#: Environment variable of the default data root (else ``$XDG_CACHE_HOME/mbvc/data``, else ``~/.cache/mbvc/data``).
ROOT_ENV = "MBVC_DATA"
#: Prefix of the variables that override a dataset's download folder (``MBVC_DATA_URL_KTH``...).
URL_ENV = "MBVC_DATA_URL_"


#: How a dataset's files are checked and prepared (see :class:`DatasetSource`).
KINDS = ("npy", "kth", "bair")


@dataclass(frozen=True)
class RemoteFile:
    """One published file.

    Attributes:
        name: its file name at the source (also its name on disk).
        size: its published size in bytes, approximate: shown by ``mbvc data list``, never checked.
    """

    name: str
    size: int


@dataclass(frozen=True)
class DatasetSource:
    """A dataset ``mbvc data get`` can fetch.

    Attributes:
        name: the name given to ``mbvc data get`` (also the folder under the data root).
        title: one line saying what it is.
        base_url: the folder the files are fetched from (``MBVC_DATA_URL_<NAME>`` overrides it).
        files: the published files, fetched in this order.
        kind: how content is checked and prepared: ``npy`` (the file is the dataset), ``kth``
            (zip archives of ``.avi`` videos, decoded into a cache) or ``bair`` (a tar of TFRecords).
        page: the dataset's page.
        terms: licence or terms of use, and what to cite.
        reads_as: the ``data`` settings that read the prepared folder.
        npy_shape, npy_dtype: for ``npy``: the published array's shape and dtype.
    """

    name: str
    title: str
    base_url: str
    files: tuple[RemoteFile, ...]
    kind: str
    page: str
    terms: str
    reads_as: str
    npy_shape: tuple[int, ...] = ()
    npy_dtype: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"DatasetSource {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "npy" and not (self.npy_shape and self.npy_dtype):
            raise ConfigError(f"DatasetSource {self.name!r}: an npy dataset needs npy_shape and npy_dtype")

    @property
    def size(self) -> int:
        """Published size of all files together (bytes, approximate)."""
        return sum(f.size for f in self.files)

    def url(self, file: RemoteFile) -> str:
        """The address ``file`` is fetched from (``$MBVC_DATA_URL_<NAME>/<file>`` when set)."""
        base = os.environ.get(url_variable(self.name)) or self.base_url
        return f"{base.rstrip('/')}/{file.name}"


def url_variable(name: str) -> str:
    """The environment variable that overrides the download folder of dataset ``name``."""
    return URL_ENV + name.upper()


KTH_ACTIONS = ("walking", "jogging", "running", "boxing", "handwaving", "handclapping")  # the page's order
_MIB, _GIB = 1 << 20, 1 << 30

#: The datasets ``mbvc data get`` knows, by name.
SOURCES: dict[str, DatasetSource] = {
    "moving_mnist": DatasetSource(
        name="moving_mnist",
        title="Moving MNIST test set (mnist_test_seq.npy): 10,000 sequences of 20 frames, 64x64, two digits",
        base_url="http://www.cs.toronto.edu/~nitish/unsupervised_video",
        files=(RemoteFile("mnist_test_seq.npy", 20 * 10000 * 64 * 64 + 128),),
        kind="npy",
        page="http://www.cs.toronto.edu/~nitish/unsupervised_video/",
        terms="no licence stated on the page; cite Srivastava, Mansimov & Salakhutdinov, ICML 2015 "
              "(digits from MNIST, LeCun & Cortes)",
        reads_as="data.name=mnist_seq: val/test with empty data.val_paths/test_paths, or this file",
        npy_shape=(20, 10000, 64, 64),
        npy_dtype="uint8",
    ),
    "kth": DatasetSource(
        name="kth",
        title="KTH human actions: 599 grey 160x120 videos at 25 fps, 6 actions x 25 persons x 4 scenarios",
        base_url="https://www.csc.kth.se/cvap/actions",
        files=tuple(RemoteFile(f"{a}.zip", mib * _MIB)  # the sizes the page lists, in MB
                    for a, mib in zip(KTH_ACTIONS, (242, 168, 149, 194, 218, 176))),
        kind="kth",
        page="https://www.csc.kth.se/cvap/actions/",
        terms="terms as stated on the page; cite Schuldt, Laptev & Caputo, ICPR 2004",
        reads_as="data.name=kth with data.root empty, or this folder",
    ),
    "bair": DatasetSource(
        name="bair",
        title="BAIR robot pushing (softmotion30_44k): 43,520 trajectories of 30 steps, 64x64 RGB, actions",
        base_url="http://rail.eecs.berkeley.edu/datasets",
        files=(RemoteFile("bair_robot_pushing_dataset_v0.tar", int(30.06 * _GIB)),),  # TFDS: 30.06 GiB
        kind="bair",
        page="https://sites.google.com/view/sna-visual-mpc/",
        terms="no licence stated with the file; cite Ebert, Finn, Lee & Levine, CoRL 2017",
        reads_as="data.name=bair with data.root empty, or this folder",
    ),
}


def get_source(name: str) -> DatasetSource:
    """The :class:`DatasetSource` called ``name``.

    Raises:
        ConfigError: an unknown name, with a "did you mean".
    """
    if name not in SOURCES:
        raise ConfigError(f"unknown dataset {name!r}; mbvc data get knows {', '.join(SOURCES)}."
                          + did_you_mean(name, SOURCES))
    return SOURCES[name]


def default_root() -> Path:
    """``$MBVC_DATA``, else ``$XDG_CACHE_HOME/mbvc/data``, else ``~/.cache/mbvc/data``."""
    env = os.environ.get(ROOT_ENV)
    if env:  # absolute, so that a config resolved from it names the same folder from any directory
        return Path(env).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).absolute() / "mbvc" / "data"
