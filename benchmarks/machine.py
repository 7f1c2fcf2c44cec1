"""Where a benchmark ran: :func:`mbvc.machine.machine_info`, recorded next to its figures."""
from __future__ import annotations

from mbvc.machine import cpu_model, machine_info

__all__ = ["cpu_model", "machine_info"]
