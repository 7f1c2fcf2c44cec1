"""mbvc: PredRNN / PredRNN-V2 world models and visual model-predictive control in PyTorch.

Conventions used across the package:

* frames are ``(batch, time, channels, height, width)`` float tensors in ``[0, 1]``;
* actions are ``(batch, time, action_dim)`` float tensors.
"""
from __future__ import annotations

__version__ = "0.1.0"
