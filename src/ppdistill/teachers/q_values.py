"""Value-based teachers (DQN, QR-DQN): a softmax of Q-values at a temperature."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch as th
from gymnasium import spaces
from sb3_contrib.qrdqn.policies import QRDQNPolicy
from stable_baselines3.dqn.policies import DQNPolicy
from torch import nn

from ppdistill.core.errors import ModelLoadError
from ppdistill.networks.forward import TensorObs
from ppdistill.teachers.base import BuildOptions, Teacher, TeacherKind, TeacherOutput

DEFAULT_Q_TEMPERATURE = 0.01
"""τ in softmax(Q/τ) for value-based teachers (Rusu et al. 2016 found 0.01 best)."""


class QValueTeacher(Teacher):
    """A value-based teacher (DQN, QR-DQN): policy = softmax(Q / τ).

    τ applies to the teacher only; the student keeps its own logits. Small τ (the default,
    0.01) makes the teacher's policy nearly greedy, so the forward KL is close to the
    cross-entropy on the teacher's best action; a larger τ passes on how the teacher ranks
    the other actions. The value is E_π[Q].

    :param q_function: maps normalized observations to Q-values ``(batch, n_actions)``
    :param module: the network(s) behind ``q_function`` (frozen and moved with the teacher)
    :param temperature: τ > 0
    """

    has_value = True

    def __init__(
        self,
        q_function: Callable[[TensorObs], th.Tensor],
        module: nn.Module,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        temperature: float = DEFAULT_Q_TEMPERATURE,
        **kwargs: Any,
    ) -> None:
        if not isinstance(action_space, spaces.Discrete):
            raise ModelLoadError(f"a value-based teacher needs a Discrete action space, got {action_space}")
        if not (temperature > 0 and math.isfinite(temperature)):  # τ = inf: uniform, whatever Q says
            raise ModelLoadError(f"temperature must be a finite number > 0, got {temperature}")
        super().__init__(observation_space, action_space, **kwargs)
        self.q_function = q_function
        self.module = module
        self.temperature = float(temperature)

    def _forward(self, obs: TensorObs, with_values: bool) -> TeacherOutput:
        q = self.q_function(obs)
        logits = q / self.temperature
        values = (th.softmax(logits, dim=-1) * q).sum(-1) if with_values else None
        return TeacherOutput(logits, values)


def _build_dqn(policy: DQNPolicy, options: BuildOptions) -> Teacher:
    info = {**options.info, "kind": "q-values", "temperature": options.temperature}
    return QValueTeacher(
        policy.q_net,
        policy,
        options.observation_space,
        options.action_space,  # type: ignore[arg-type]
        temperature=options.temperature,
        info=info,
        **options.common,
    )


def _build_qrdqn(policy: QRDQNPolicy, options: BuildOptions) -> Teacher:
    quantile_net = policy.quantile_net

    def mean_q(obs: TensorObs) -> th.Tensor:
        return quantile_net(obs).mean(dim=1)

    info = {**options.info, "kind": "quantiles", "temperature": options.temperature}
    return QValueTeacher(
        mean_q,
        policy,
        options.observation_space,
        options.action_space,  # type: ignore[arg-type]
        temperature=options.temperature,
        info=info,
        **options.common,
    )


KINDS = (
    TeacherKind("q-values", (DQNPolicy,), "value-based DQN", _build_dqn, "softmax(Q / τ) of its Q-values"),
    TeacherKind(
        "quantiles", (QRDQNPolicy,), "QR-DQN", _build_qrdqn, "softmax(Q / τ) of its quantiles' means"
    ),
)
"""The SB3 policy kinds this module reads (see :class:`~ppdistill.teachers.base.TeacherKind`)."""
