"""Image students: the paper's Nature-CNN and IMPALA-CNN feature extractors."""

from __future__ import annotations

import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

SMALL_IMAGE = 36
"""Images smaller than this (in height or width) get the adapted stems described below."""


class NatureCNNExtractor(BaseFeaturesExtractor):
    """Nature-CNN (Mnih et al. 2015) with configurable widths: the paper's *smaller* image student.

    Three convolutions (8×8 stride 4, 4×4 stride 2, 3×3 stride 1) then one hidden layer. On
    small inputs (MinAtar's 10×10) those strides would leave nothing; there the stem is
    three 3×3 stride-1 convolutions without padding (10 → 8 → 6 → 4).

    :param observation_space: channels-first image space
    :param channels: output channels of the three convolutions
    :param features_dim: width of the final hidden layer
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        channels: tuple[int, int, int] = (32, 32, 32),
        features_dim: int = 128,
    ) -> None:
        super().__init__(observation_space, features_dim)
        c, h, w = observation_space.shape
        small = min(h, w) < SMALL_IMAGE
        kernels, strides = ((3, 3, 3), (1, 1, 1)) if small else ((8, 4, 3), (4, 2, 1))
        layers: list[nn.Module] = []
        in_ch = c
        for out_ch, k, s in zip(channels, kernels, strides):
            layers += [nn.Conv2d(in_ch, out_ch, k, s), nn.ReLU()]
            in_ch = out_ch
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        with th.no_grad():
            n_flat = self.cnn(th.zeros(1, c, h, w)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flat, features_dim), nn.ReLU())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.linear(self.cnn(observations))


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: th.Tensor) -> th.Tensor:
        return x + self.conv1(th.relu(self.conv0(th.relu(x))))


class ImpalaCNNExtractor(BaseFeaturesExtractor):
    """IMPALA-CNN (Espeholt et al. 2018): the paper's *same* {16, 32, 32} and *larger* {32, 64, 64}.

    Per stage: a 3×3 convolution, 3×3 max-pool with stride 2, two residual blocks; then a
    hidden layer. On small inputs (MinAtar's 10×10) the first stage does not pool, so the
    grid shrinks 10 → 10 → 5 → 3 instead of 10 → 5 → 3 → 2.

    :param observation_space: channels-first image space
    :param channels: channels of the three stages
    :param features_dim: width of the final hidden layer
    """

    def __init__(
        self, observation_space: spaces.Box, channels: tuple[int, ...] = (16, 32, 32), features_dim: int = 256
    ) -> None:
        super().__init__(observation_space, features_dim)
        c, h, w = observation_space.shape
        small = min(h, w) < SMALL_IMAGE
        stages: list[nn.Module] = []
        in_ch = c
        for i, out_ch in enumerate(channels):
            pool: nn.Module = nn.Identity() if (small and i == 0) else nn.MaxPool2d(3, stride=2, padding=1)
            stages += [nn.Conv2d(in_ch, out_ch, 3, padding=1), pool, _Residual(out_ch), _Residual(out_ch)]
            in_ch = out_ch
        self.cnn = nn.Sequential(*stages, nn.ReLU(), nn.Flatten())
        with th.no_grad():
            n_flat = self.cnn(th.zeros(1, c, h, w)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flat, features_dim), nn.ReLU())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.linear(self.cnn(observations))
