"""Network pieces: frozen observation normalization, and one-pass actor-critic evaluation."""

from __future__ import annotations

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
