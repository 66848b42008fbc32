"""Teachers from off-policy continuous-control agents: SAC (squashed Gaussian) and TD3 (deterministic).

A PPO student's policy is an unsquashed diagonal Gaussian over the environment's actions
(clipped to the bounds when acting). The teachers' policies are not Gaussians in that space,
so each is turned into one *distillation target* in the flat Box layout (mean, log-std):

- **SAC** acts with ``a = unscale(tanh(u))``, ``u ~ N(μ(s), σ(s))``. The target is the
  Gaussian with the same mean and variance as the teacher's action distribution
  (per dimension, in env units), computed by quadrature over the normal's quantiles —
  deterministic, no sampling. (Gauss–Hermite converges badly here: SAC's stds reach e² ≈ 7,
  where tanh is nearly a step function.) Moment matching is not an arbitrary choice: the
  Gaussian q minimizing the forward KL(p ‖ q) to any p is the one with p's mean and
  covariance, so distilling this
  target with the forward KL leads the student to the same Gaussian as the forward KL to
  SAC's true squashed distribution would. The teacher still *acts* through its real tanh.
- **TD3** (and DDPG) are deterministic: ``a = μ(s)``. The target is ``N(μ(s), σ_T²)`` with a
  fixed ``σ_T`` (``target_std`` × half the action range, default 0.1): the forward KL is
  then a Gaussian likelihood of the teacher's action plus a term that holds the student's
  std at ``σ_T`` instead of letting it collapse to zero (which the bare likelihood would).
  Acting stochastically samples that Gaussian, like TD3's exploration noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.sac.policies import SACPolicy
from stable_baselines3.td3.policies import TD3Policy

from ppdistill.core.distributions import distribution_from_params
from ppdistill.core.errors import ModelLoadError
from ppdistill.networks.forward import TensorObs
from ppdistill.teachers.base import BuildOptions, Teacher, TeacherKind, TeacherOutput

QUADRATURE_POINTS = 256
DEFAULT_TARGET_STD = 0.1


def squashed_gaussian_moments(
    mean: th.Tensor, std: th.Tensor, low: th.Tensor, high: th.Tensor, n_points: int = QUADRATURE_POINTS
) -> tuple[th.Tensor, th.Tensor]:
    """Mean and std (env units) of ``low + (tanh(u) + 1) / 2 · (high − low)`` for ``u ~ N(mean, std²)``.

    :param mean: pre-tanh means ``(batch, d)``
    :param std: pre-tanh stds ``(batch, d)``
    :param low: action lower bounds ``(d,)``
    :param high: action upper bounds ``(d,)``
    :param n_points: quadrature points
    :return: ``(mean, std)`` of the action, each ``(batch, d)``
    """
    # midpoint rule in probability space: E[f(U)] ≈ mean_i f(μ + σ Φ⁻¹((i + ½) / n))
    u = (th.arange(n_points, dtype=th.float64) + 0.5) / n_points
    nodes = th.special.ndtri(u).to(dtype=mean.dtype, device=mean.device)
    t = th.tanh(mean.unsqueeze(-1) + std.unsqueeze(-1) * nodes)
    m1 = t.mean(-1)
    m2 = (t * t).mean(-1)
    t_std = (m2 - m1 * m1).clamp_min(1e-12).sqrt()
    half = (high - low) / 2
    return low + (m1 + 1) * half, t_std * half


class SquashedGaussianTeacher(Teacher):
    """A SAC actor as a teacher; its distillation target is moment-matched (module docstring)."""

    low: th.Tensor
    high: th.Tensor

    def __init__(self, policy: SACPolicy, **kwargs: Any) -> None:
        super().__init__(policy.observation_space, policy.action_space, **kwargs)
        assert isinstance(self.action_space, spaces.Box)
        self.policy = policy
        self.register_buffer("low", th.as_tensor(self.action_space.low, dtype=th.float32))
        self.register_buffer("high", th.as_tensor(self.action_space.high, dtype=th.float32))

    def pre_tanh(self, obs: TensorObs) -> tuple[th.Tensor, th.Tensor]:
        """Mean and std of the Gaussian before the tanh."""
        actor = self.policy.actor
        mean, log_std, extra = actor.get_action_dist_params(obs)
        normal = actor.action_dist.proba_distribution(mean, log_std, **extra).distribution
        return normal.mean, normal.stddev

    def _forward(self, obs: TensorObs, with_values: bool) -> TeacherOutput:
        mean, std = self.pre_tanh(obs)
        m, s = squashed_gaussian_moments(mean, std, self.low, self.high)
        return TeacherOutput(th.cat([m, s.log()], dim=1), None)

    def act_on(
        self, obs: TensorObs, deterministic: bool, with_values: bool = False
    ) -> tuple[np.ndarray, TeacherOutput]:
        out = self(obs, with_values=with_values)
        with th.no_grad():
            normalized = self.obs_normalizer(obs) if self.obs_normalizer is not None else obs
            mean, std = self.pre_tanh(normalized)
            u = mean if deterministic else mean + std * th.randn_like(std)
        return self.policy.unscale_action(th.tanh(u).cpu().numpy()), out


class DeterministicTeacher(Teacher):
    """A TD3 or DDPG actor as a teacher: target ``N(μ(s), σ_T²)`` (module docstring).

    :param policy: the TD3 policy
    :param target_std: ``σ_T`` as a fraction of half the action range
    """

    low: th.Tensor
    half_range: th.Tensor

    def __init__(self, policy: TD3Policy, target_std: float = DEFAULT_TARGET_STD, **kwargs: Any) -> None:
        super().__init__(policy.observation_space, policy.action_space, **kwargs)
        assert isinstance(self.action_space, spaces.Box)
        if not target_std > 0:
            raise ModelLoadError(f"target_std must be > 0, got {target_std}")
        self.policy = policy
        self.target_std = float(target_std)
        low = th.as_tensor(self.action_space.low, dtype=th.float32)
        high = th.as_tensor(self.action_space.high, dtype=th.float32)
        self.register_buffer("low", low)
        self.register_buffer("half_range", (high - low) / 2)

    def _forward(self, obs: TensorObs, with_values: bool) -> TeacherOutput:
        scaled = self.policy.actor(obs)  # in [-1, 1]
        action = self.low + (scaled + 1) * self.half_range
        log_std = (self.target_std * self.half_range).log().expand_as(action)
        return TeacherOutput(th.cat([action, log_std], dim=1), None)

    def act(self, params: th.Tensor, deterministic: bool) -> np.ndarray:
        dist = distribution_from_params(self.action_space, params)
        actions = dist.get_actions(deterministic=deterministic).cpu().numpy()
        assert isinstance(self.action_space, spaces.Box)
        return np.clip(actions, self.action_space.low, self.action_space.high)


def _build_sac(policy: SACPolicy, options: BuildOptions) -> Teacher:
    return SquashedGaussianTeacher(policy, info={**options.info, "kind": "sac"}, **options.common)


def _build_td3(policy: TD3Policy, options: BuildOptions) -> Teacher:
    info = {**options.info, "kind": "td3", "target_std": options.target_std}
    return DeterministicTeacher(policy, target_std=options.target_std, info=info, **options.common)


KINDS = (
    TeacherKind("sac", (SACPolicy,), "SAC", _build_sac),
    TeacherKind("td3", (TD3Policy,), "TD3", _build_td3),
)
"""The SB3 policy kinds this module reads (see :class:`~ppdistill.teachers.base.TeacherKind`)."""
