"""Fixtures shared by every test folder."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op torch thread for the test, the former setting restored afterwards.

    The tests' models and tensors are tiny: with several threads on a shared 2-core machine,
    OpenMP's waits between many small ops make a millisecond op take up to a second.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
