"""Network pieces: frozen observation normalization, and one-pass actor-critic evaluation."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

TensorObs = th.Tensor | dict[str, th.Tensor]


class ObsNormalizer(nn.Module):
    """VecNormalize's observation transform with frozen statistics, as a torch module.

    ``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)``, exactly what
    ``VecNormalize.normalize_obs`` does with ``training=False``.

    :param mean: running mean of the observations (one array, or one per Dict key)
    :param var: running variance, same structure as ``mean``
    :param clip_obs: clipping bound after normalization
    :param epsilon: added to the variance
    """

    mean: th.Tensor
    std: th.Tensor

    def __init__(
        self,
        mean: np.ndarray | dict[str, np.ndarray],
        var: np.ndarray | dict[str, np.ndarray],
        clip_obs: float = 10.0,
        epsilon: float = 1e-8,
    ) -> None:
        super().__init__()
        self.clip_obs = float(clip_obs)
        self.epsilon = float(epsilon)
        self.keys: list[str] | None = None
        if isinstance(mean, dict):
            assert isinstance(var, dict)
            self.keys = sorted(mean)
            for k in self.keys:
                self.register_buffer(f"mean_{k}", th.as_tensor(np.asarray(mean[k]), dtype=th.float32))
                self.register_buffer(
                    f"std_{k}", th.as_tensor(np.sqrt(np.asarray(var[k]) + epsilon), dtype=th.float32)
                )
        else:
            self.register_buffer("mean", th.as_tensor(np.asarray(mean), dtype=th.float32))
            self.register_buffer("std", th.as_tensor(np.sqrt(np.asarray(var) + epsilon), dtype=th.float32))

    def _norm(self, x: th.Tensor, mean: th.Tensor, std: th.Tensor) -> th.Tensor:
        return th.clamp((x.float() - mean) / std, -self.clip_obs, self.clip_obs)

    def forward(self, obs: TensorObs) -> TensorObs:
        if self.keys is None:
            assert isinstance(obs, th.Tensor)
            return self._norm(obs, self.mean, self.std)
        assert isinstance(obs, dict)
        out = dict(obs)
        for k in self.keys:
            mean, std = self.get_buffer(f"mean_{k}"), self.get_buffer(f"std_{k}")
            out[k] = self._norm(obs[k], mean, std)
        return out

    def stats(self) -> dict[str, Any]:
        """Statistics as plain arrays (to rebuild the module elsewhere)."""
        assert self.keys is None, "stats() is for Box observations"
        std = self.std.cpu().numpy().astype(np.float64)
        return {
            "mean": self.mean.cpu().numpy().copy(),
            "var": std**2 - self.epsilon,
            "clip_obs": self.clip_obs,
            "epsilon": self.epsilon,
        }


class NormalizedFlattenExtractor(BaseFeaturesExtractor):
    """SB3's FlattenExtractor behind frozen observation normalization.

    Gives a student the teacher's input normalization inside its own network, so the
    student takes raw observations everywhere: in ``predict``, in ``evaluate_policy``, and
    once exported. The statistics are buffers: saved with the policy, never trained.

    :param observation_space: a flat ``Box`` observation space
    :param mean: observation mean
    :param var: observation variance
    :param clip_obs: clipping bound after normalization
    :param epsilon: added to the variance
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        mean: np.ndarray,
        var: np.ndarray,
        clip_obs: float = 10.0,
        epsilon: float = 1e-8,
    ) -> None:
        super().__init__(observation_space, int(np.prod(observation_space.shape)))
        self.normalizer = ObsNormalizer(mean, var, clip_obs, epsilon)
        self.flatten = nn.Flatten()

    def forward(self, observations: th.Tensor) -> th.Tensor:
        normalized = self.normalizer(observations)
        assert isinstance(normalized, th.Tensor)
        return self.flatten(normalized)


def actor_critic_forward(
    policy: ActorCriticPolicy, obs: TensorObs, with_values: bool = True
) -> tuple[Distribution, th.Tensor | None]:
    """One pass through an SB3 actor-critic: the action distribution and the values.

    The same operations, in the same order, as ``ActorCriticPolicy.evaluate_actions``, which
    gives no access to the distribution itself; so a distillation step needs one forward
    pass, not two, and matches PPO's numbers bit for bit.

    :param policy: an SB3 ``ActorCriticPolicy`` (Mlp, Cnn or MultiInput)
    :param obs: preprocessed-by-SB3-convention observation tensor(s)
    :param with_values: also run the critic
    :return: the distribution and the values ``(batch, 1)`` (or None)
    """
    features = policy.extract_features(obs)
    if policy.share_features_extractor:
        latent_pi, latent_vf = policy.mlp_extractor(features)
    else:
        pi_features, vf_features = features
        latent_pi = policy.mlp_extractor.forward_actor(pi_features)
        latent_vf = policy.mlp_extractor.forward_critic(vf_features) if with_values else None
    distribution = policy._get_action_dist_from_latent(latent_pi)
    values = policy.value_net(latent_vf) if with_values else None
    return distribution, values


# ======================================================================================
# Student sizes relative to the teacher (the paper's smaller / same / larger)
# ======================================================================================

STUDENT_SIZES = ("smaller", "same", "larger")


def teacher_mlp_width(net_arch: Any) -> list[int]:
    """The actor's hidden layers of an SB3 ``net_arch`` (list, dict(pi=...), or [dict(...)])."""
    if isinstance(net_arch, list) and len(net_arch) == 1 and isinstance(net_arch[0], dict):
        net_arch = net_arch[0]
    if isinstance(net_arch, dict):
        return [int(x) for x in net_arch.get("pi", [])]
    if isinstance(net_arch, list | tuple):
        return [int(x) for x in net_arch]
    return [64, 64]


def mlp_student_arch(size: str, teacher_arch: list[int]) -> list[int]:
    """Hidden layers of an MLP student relative to the teacher's actor.

    Around the paper's (256, 256) teacher: smaller (128, 64), same (256, 256), larger (512, 512),
    i.e. about 0.25×, 1× and 3.4× the actor's parameters; other widths keep those ratios
    (a (64, 64) teacher gives (32, 16), (64, 64), (128, 128)). A custom size is a comma list.

    :param size: "smaller", "same", "larger", or e.g. "64,64"
    :param teacher_arch: the teacher actor's hidden layers
    :return: the student's hidden layers (used for both actor and critic, kept separate)
    """
    width = teacher_arch[0] if teacher_arch else 64
    if size == "smaller":
        return [max(1, width // 2), max(1, width // 4)]
    if size == "same":
        return list(teacher_arch) or [64, 64]
    if size == "larger":
        return [2 * width, 2 * width]
    try:
        layers = [int(x) for x in size.split(",") if x.strip()]
    except ValueError:
        layers = []
    if not layers or any(n < 1 for n in layers):
        raise ValueError(
            f"student size must be smaller, same, larger or a comma list like 64,64; got {size!r}"
        )
    return layers


def mlp_param_count(obs_dim: int, hidden: list[int], out_dim: int) -> int:
    """Parameters of a fully connected net with biases."""
    dims = [obs_dim, *hidden, out_dim]
    return sum(a * b + b for a, b in itertools.pairwise(dims))


# ======================================================================================
# Image students: the paper's Nature-CNN and IMPALA-CNN presets
# ======================================================================================

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


def image_student_kwargs(size: str) -> dict[str, Any]:
    """Policy kwargs of an image student ("smaller", "same" or "larger").

    Around an IMPALA {16, 32, 32} teacher, as in the paper: Nature-CNN {32, 32, 32} + FC 128,
    IMPALA {16, 32, 32} + FC 256, IMPALA {32, 64, 64} + FC 1024. The actor and critic heads
    sit directly on the shared features (SB3's CnnPolicy convention, ``net_arch=[]``).

    :param size: preset name
    """
    presets: dict[str, tuple[type[BaseFeaturesExtractor], dict[str, Any]]] = {
        "smaller": (NatureCNNExtractor, {"channels": (32, 32, 32), "features_dim": 128}),
        "same": (ImpalaCNNExtractor, {"channels": (16, 32, 32), "features_dim": 256}),
        "larger": (ImpalaCNNExtractor, {"channels": (32, 64, 64), "features_dim": 1024}),
    }
    if size not in presets:
        raise ValueError(f"image students come in sizes smaller, same, larger; got {size!r}")
    cls, kwargs = presets[size]
    return {"features_extractor_class": cls, "features_extractor_kwargs": kwargs, "net_arch": []}
