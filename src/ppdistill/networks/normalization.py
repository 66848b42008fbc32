"""Observation normalization inside a network: VecNormalize's transform as torch modules,
with a teacher's frozen statistics or with the student's own running ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from torch import nn

from ppdistill.core.errors import PPDistillError
from ppdistill.core.spaces import is_flat_box
from ppdistill.networks.forward import TensorObs


class NormalizationError(PPDistillError, ValueError):
    """A normalization that cannot be given to this network (one line: what and what to do)."""


def normalize(x: th.Tensor, mean: th.Tensor, std: th.Tensor, clip_obs: float) -> th.Tensor:
    """VecNormalize's observation transform, ``clip((x - mean) / std, -clip_obs, clip_obs)``, the one
    place both normalizing extractors compute it."""
    return th.clamp((x.float() - mean) / std, -clip_obs, clip_obs)


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

    def forward(self, obs: TensorObs) -> TensorObs:
        if self.keys is None:
            assert isinstance(obs, th.Tensor)
            return normalize(obs, self.mean, self.std, self.clip_obs)
        assert isinstance(obs, dict)
        out = dict(obs)
        for k in self.keys:
            mean, std = self.get_buffer(f"mean_{k}"), self.get_buffer(f"std_{k}")
            out[k] = normalize(obs[k], mean, std, self.clip_obs)
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


class RunningNormalizedFlattenExtractor(BaseFeaturesExtractor):
    """SB3's FlattenExtractor behind VecNormalize's observation transform with the student's own
    running statistics (for a teacher that has none to give).

    The statistics are buffers (saved with the policy, exported with it, never trained by the
    optimizer). They change only through :meth:`update`, which the distillation algorithms call
    with each rollout's observations *after* the update on that rollout: the rollout is
    collected and trained on with the same statistics, so PPO's ratio starts at 1.

    :param observation_space: a flat ``Box`` observation space
    :param clip_obs: clipping bound after normalization
    :param epsilon: added to the variance
    """

    mean: th.Tensor
    var: th.Tensor
    count: th.Tensor

    def __init__(self, observation_space: spaces.Box, clip_obs: float = 10.0, epsilon: float = 1e-8) -> None:
        super().__init__(observation_space, int(np.prod(observation_space.shape)))
        self.clip_obs, self.epsilon = float(clip_obs), float(epsilon)
        shape = observation_space.shape
        self.register_buffer("mean", th.zeros(shape, dtype=th.float32))
        self.register_buffer("var", th.ones(shape, dtype=th.float32))
        # SB3's RunningMeanStd starts at a count of 1e-4 too: the first batch all but replaces it
        self.register_buffer("count", th.tensor(1e-4, dtype=th.float64))
        self.flatten = nn.Flatten()

    def forward(self, observations: th.Tensor) -> th.Tensor:
        std = th.sqrt(self.var + self.epsilon)
        return self.flatten(normalize(observations, self.mean, std, self.clip_obs))

    @th.no_grad()
    def update(self, observations: np.ndarray) -> None:
        """Merge a batch of observations into the statistics, with SB3's ``RunningMeanStd``
        (VecNormalize's own update) in float64.

        :param observations: shape ``(..., *observation_shape)``
        """
        shape = tuple(self.mean.shape)
        batch = np.asarray(observations, dtype=np.float64).reshape(-1, *shape)
        if len(batch) == 0:
            return
        rms = RunningMeanStd(shape=shape)
        rms.mean, rms.var = self.mean.double().cpu().numpy(), self.var.double().cpu().numpy()
        rms.count = float(self.count.item())
        rms.update(batch)
        self.mean.copy_(th.as_tensor(rms.mean, dtype=th.float32))
        self.var.copy_(th.as_tensor(rms.var, dtype=th.float32))
        self.count.fill_(float(rms.count))


def running_normalization(policy_kwargs: dict[str, Any], observation_space: spaces.Space) -> dict[str, Any]:
    """``policy_kwargs`` whose network normalizes its inputs with running statistics of its own
    (:class:`RunningNormalizedFlattenExtractor`).

    :param policy_kwargs: the student's policy kwargs
    :param observation_space: the student's observation space
    :raises NormalizationError: observations that are not a flat Box, or a features extractor of
        the user's
    """
    if not is_flat_box(observation_space):
        raise NormalizationError(
            f"student_obs_norm 'running' needs a flat Box observation, not {observation_space}; "
            "use 'teacher' or 'none'"
        )
    if policy_kwargs.get("features_extractor_class", FlattenExtractor) is not FlattenExtractor:
        raise NormalizationError(
            "student_obs_norm 'running' replaces the features extractor; drop yours or use 'none'"
        )
    return {**policy_kwargs, "features_extractor_class": RunningNormalizedFlattenExtractor}


def with_normalization(
    policy_kwargs: dict[str, Any],
    normalizer: ObsNormalizer | None,
    observation_space: spaces.Space,
    env_normalizes: bool = False,
    view: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, Any]:
    """``policy_kwargs`` whose network normalizes its inputs with ``normalizer`` (frozen), where
    that cannot clash: a flat Box observation, no features extractor of the user's, and no
    observation normalization in the environment already. Otherwise ``policy_kwargs`` unchanged.

    Used to give a student (or a PPO from scratch compared with one) its teacher's
    VecNormalize statistics, so that it takes raw observations everywhere.

    :param policy_kwargs: the student's policy kwargs
    :param normalizer: the teacher's observation normalization, if any
    :param observation_space: the student's observation space
    :param env_normalizes: whether the student's VecEnv normalizes observations itself
    :param view: when the student sees a part of the teacher's observation: that part, applied
        to the statistics too (a student without the teacher's time feature gets the
        statistics of the other entries)
    """
    if normalizer is None or normalizer.keys is not None or not isinstance(observation_space, spaces.Box):
        return policy_kwargs
    if policy_kwargs.get("features_extractor_class", FlattenExtractor) is not FlattenExtractor:
        return policy_kwargs
    if env_normalizes:
        return policy_kwargs
    stats = normalizer.stats()
    if view is not None:
        stats = {**stats, "mean": view(np.asarray(stats["mean"])), "var": view(np.asarray(stats["var"]))}
    if tuple(np.shape(stats["mean"])) != observation_space.shape:
        return policy_kwargs  # statistics of other observations: not the student's to take
    return {
        **policy_kwargs,
        "features_extractor_class": NormalizedFlattenExtractor,
        "features_extractor_kwargs": stats,
    }
