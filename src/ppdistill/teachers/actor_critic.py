"""SB3 actor-critic policies (PPO, A2C, TRPO) as teachers."""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.policies import ActorCriticPolicy

from ppdistill.core.distributions import (
    params_from_distribution,
)
from ppdistill.networks.forward import TensorObs, actor_critic_forward
from ppdistill.teachers.base import BuildOptions, Teacher, TeacherKind, TeacherOutput


class ActorCriticTeacher(Teacher):
    """An SB3 actor-critic policy (PPO, A2C, TRPO; gSDE included) as a teacher."""

    has_value = True

    def __init__(self, policy: ActorCriticPolicy, **kwargs: Any) -> None:
        super().__init__(policy.observation_space, policy.action_space, **kwargs)
        self.policy = policy

    def _forward(self, obs: TensorObs, with_values: bool) -> TeacherOutput:
        dist, values = actor_critic_forward(self.policy, obs, with_values=with_values)
        return TeacherOutput(params_from_distribution(dist), values)


def _build(policy: ActorCriticPolicy, options: BuildOptions) -> Teacher:
    return ActorCriticTeacher(policy, info={**options.info, "kind": "actor-critic"}, **options.common)


KINDS = (
    TeacherKind(
        "actor-critic",
        (ActorCriticPolicy,),
        "actor-critic (PPO, A2C, TRPO)",
        _build,
        "its own action distribution (categorical, Bernoulli or diagonal Gaussian)",
    ),
)
"""The SB3 policy kinds this module reads (see :class:`~ppdistill.teachers.base.TeacherKind`)."""
