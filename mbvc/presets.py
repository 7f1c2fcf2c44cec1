"""Where the shipped presets live, and their names.

Kept free of heavy imports: ``mbvc train --help`` lists the presets without loading torch.
Loading and validating a preset is :mod:`mbvc.config`'s job.
"""
from __future__ import annotations

from pathlib import Path

PRESET_DIR = Path(__file__).parent / "configs"


def preset_names() -> list[str]:
    """Names of the presets shipped with mbvc."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
