"""Exception hierarchy of mbvc.

Every error raised on bad user input derives from :class:`MbvcError`, so the command line can
print it as one line and exit non-zero. Each subclass also derives from the matching builtin
(``ValueError``, ``ImportError``...), so ``except ValueError`` keeps working for callers.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class MbvcError(Exception):
    """Base class of all errors mbvc raises on purpose."""


class ConfigError(MbvcError, ValueError):
    """A configuration value, preset name or command-line argument is invalid."""


class ShapeError(MbvcError, ValueError):
    """A tensor argument has the wrong rank, size or dtype."""


class CheckpointError(MbvcError, ValueError):
    """A checkpoint file is missing, malformed or does not match the model."""


class DataError(MbvcError, ValueError):
    """A dataset file or folder is missing, corrupt or not in the expected format."""


class DependencyNotInstalled(MbvcError, ImportError):
    """An optional dependency (or weight file) needed by a feature is absent."""


class EnvError(MbvcError, RuntimeError):
    """An environment could not be created or rendered."""


class OutputError(MbvcError, OSError):
    """An output file or folder cannot be created or written (read-only, full disk, not a folder).

    Also an ``OSError``, so ``except OSError`` keeps catching what a failed write raised before.
    """


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return a ``" Did you mean 'x'?"`` suffix for an unknown ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""
