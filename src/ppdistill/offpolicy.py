"""Teachers from off-policy continuous-control agents (SAC).

SAC acts with ``a = unscale(tanh(u))``, ``u ~ N(μ(s), σ(s))``. The teacher's parameters are
those of the *pre-tanh* Gaussian of ``u``; :attr:`Teacher.squashed` tells the algorithms
that the action the environment sees is squashed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.sac.policies import SACPolicy

from ppdistill.distributions import distribution_from_params, params_from_distribution
from ppdistill.errors import TeacherLoadError
from ppdistill.networks import TensorObs
from ppdistill.teachers import Teacher, TeacherOutput


class SquashedGaussianTeacher(Teacher):
    """A SAC actor as a teacher: Gaussian parameters before the tanh."""

    def __init__(self, policy: SACPolicy, **kwargs: Any) -> None:
        super().__init__(policy.observation_space, policy.action_space, **kwargs)
        self.policy = policy

    @property
    def squashed(self) -> bool:
        return True

    def _forward(self, obs: TensorObs, with_values: bool) -> TeacherOutput:
        actor = self.policy.actor
        mean, log_std, extra = actor.get_action_dist_params(obs)
        dist = actor.action_dist.proba_distribution(mean, log_std, **extra)
        return TeacherOutput(params_from_distribution(dist), None)

    def act(self, params: th.Tensor, deterministic: bool) -> np.ndarray:
        dist = distribution_from_params(self.action_space, params)
        u = dist.get_actions(deterministic=deterministic)
        scaled = th.tanh(u).cpu().numpy()
        return self.policy.unscale_action(scaled)


def offpolicy_teacher(policy: BasePolicy, info: dict[str, Any], **kwargs: Any) -> Teacher:
    """Wrap a loaded off-policy SB3 policy, or say why it cannot be a teacher.

    :param policy: the rebuilt policy with its weights
    :param info: description saved with students
    :param kwargs: normalization arguments for :class:`Teacher`
    """
    if isinstance(policy, SACPolicy):
        return SquashedGaussianTeacher(policy, info={**info, "kind": "sac"}, **kwargs)
    raise TeacherLoadError(
        f"{type(policy).__name__} teachers are not supported: use an actor-critic (PPO, A2C, TRPO), "
        "value-based (DQN, QR-DQN) or SAC model, or wrap your policy in a callable"
    )
