"""``mbvc evaluate``: another name for ``mbvc test`` (the same arguments and reports)."""
from __future__ import annotations

from mbvc.commands.test import HELP, add_arguments, run

__all__ = ["HELP", "add_arguments", "run"]
