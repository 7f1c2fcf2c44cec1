"""A stable-baselines3 image features extractor for small frames (8 to 64 pixels).

SB3's default ``NatureCNN`` (8x8 stride-4, 4x4 stride-2, 3x3 convolutions without padding)
needs frames of at least 36 x 36; the push environment is often rendered at 32 or 64 pixels.
:class:`SmallImageCNN` uses padded 3x3 convolutions, so any frame of 8 pixels or more works.

This module imports stable-baselines3 at import time; :mod:`agents.baselines` imports it only
when a pixel policy is trained. Saved models refer to the class by this module path.
"""
from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from mbvc.errors import ShapeError

NATURE_CNN_MIN_SIZE = 36
"""Smallest frame side ``NatureCNN`` accepts."""


class SmallImageCNN(BaseFeaturesExtractor):
    """Three padded 3x3 convolutions (stride 2, 2, 1; 32-64-64 channels) and a linear layer.

    Args:
        observation_space: channel-first image ``Box`` ``(C, H, W)`` (SB3 transposes
            channel-last images before the policy sees them), ``H, W >= 8``.
        features_dim: size of the output features.
        normalized_image: whether the images are already float in [0, 1] (SB3's flag).
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 256, normalized_image: bool = False) -> None:
        if not is_image_space(observation_space, check_channels=False, normalized_image=normalized_image):
            raise ShapeError(f"SmallImageCNN needs an image observation space (C, H, W), got {observation_space}")
        channels, height, width = observation_space.shape
        if min(height, width) < 8:
            raise ShapeError(f"SmallImageCNN needs frames of at least 8 x 8, got {height} x {width}")
        super().__init__(observation_space, features_dim)
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flatten = self.cnn(torch.zeros(1, channels, height, width)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flatten, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Features ``(B, features_dim)`` of images ``(B, C, H, W)`` (already scaled by SB3)."""
        return self.linear(self.cnn(observations))
