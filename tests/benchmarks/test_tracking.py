"""The tracking benchmark's error on frames where the answer is known."""
from __future__ import annotations

import numpy as np
import torch

from benchmarks.tracking import Tracker, track_error


def square_frames(cols: list[float], size: int = 24) -> torch.Tensor:
    """``T x 3 x size x size``: a red 3x3 square with a white centre at row 12 and each column."""
    frames = torch.full((len(cols), 3, size, size), 0.4)
    for t, c in enumerate(cols):
        c = int(c)
        frames[t, :, 11:14, c - 1 : c + 2] = torch.tensor([0.9, 0.2, 0.1])[:, None, None]
        frames[t, :, 12, c] = 1.0
    return frames


def test_a_tracker_that_follows_the_square_has_no_error_and_standing_still_has_its_displacement():
    cols = [8, 9, 10, 11, 12]
    frames = square_frames(cols)
    truth = np.array([[12.0, c] for c in cols[1:]])
    for tracker in (Tracker("object", 3, "ssd", 2.0), Tracker("object", 5, "ssd", 2.0, 0.003),
                    Tracker("agent", 5, "ncc", 2.0)):
        assert track_error(frames[1:], frames[0], np.array([12.0, 8.0]), np.array([12.0, 8.0]), truth, tracker) < 0.1
    # A wrong truth shows as its distance: the tracker is scored, not trusted.
    assert abs(track_error(frames[1:], frames[0], np.array([12.0, 8.0]), np.array([12.0, 8.0]), truth + [0, 2],
                           Tracker("object", 3, "ssd", 2.0)) - 2.0) < 0.1
