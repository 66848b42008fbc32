"""Recurrent students: PPD, student-distill and teacher-distill on sb3-contrib's RecurrentPPO.

A student that sees only part of the state (positions without velocities, a cue shown once)
needs memory. These classes give it RecurrentPPO's LSTM policy (``MlpLstmPolicy``,
``CnnLstmPolicy``, ``MultiInputLstmPolicy``) and RecurrentPPO's sequence rollout buffer:

- the student acts with its LSTM state carried from step to step and reset at episode starts
  (RecurrentPPO's rollout; teacher-distill runs the student's LSTM along the teacher's steps);
- each minibatch is RecurrentPPO's: whole sequences cut at episode starts, padded to one length,
  each starting from the LSTM state recorded at its first step. The teacher's outputs, computed
  once per rollout as for any student, are cut and padded the same way
  (:class:`~ppdistill.algorithms.buffers.DistillRecurrentRolloutBuffer`), and the KL term is
  averaged over the same steps as RecurrentPPO's own terms (padded steps masked out);
- with λ = 0, :class:`RecurrentPPD` is RecurrentPPO bit for bit (tested);
- ``_last_lstm_states``, the state at the rollout boundary, is kept in checkpoints
  (:mod:`ppdistill.experiment.checkpoints`), so a resumed run continues exactly.

With ``privileged_prediction`` > 0 (off by default), the student's memory is also asked to say
what it does not see: a linear head on the actor's LSTM output predicts, at every step, the
teacher's observation (standardized over the rollout), and the mean squared error over the
steps that count, times the coefficient, is added to each minibatch's loss. A student that sees
positions learns that velocities matter from the KL to the teacher's actions alone, slowly
(``benchmarks/privileged_velocity_probe.py``); this says it directly, with what the privileged
setup has at training time only. The head is not part of the policy: ``predict``, evaluation
and export never see it; it is saved with the model (``privileged_head``, its parameters a
second group of the policy's optimizer) so that a resumed run continues exactly; such a zip is
loaded by the class that made it (RecurrentPPO.load refuses the extra optimizer group), and
with any environment or none. ``max_grad_norm`` bounds the policy's gradient, as in SB3; the
head's own is not clipped (Adam's steps do not grow with it; the suites that measured this
loss ran so).
"""

from __future__ import annotations

import math
import pathlib
from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv
from stable_baselines3.common.utils import obs_as_tensor

from ppdistill.algorithms.base import StudentObsNorm, counted
from ppdistill.algorithms.baselines import StudentDistill, TeacherDistill
from ppdistill.algorithms.buffers import (
    DistillRecurrentDictRolloutBuffer,
    DistillRecurrentRolloutBuffer,
    DistillRecurrentRolloutBufferSamples,
)
from ppdistill.algorithms.proximal import ProximalDistillation
from ppdistill.core.errors import PPDistillError
from ppdistill.core.losses import KLDirection
from ppdistill.core.schedules import Schedule
from ppdistill.envs.views import find_student_view
from ppdistill.networks.forward import (
    TensorObs,
    recurrent_actor_critic_forward,
    recurrent_forward_with_memory,
)
from ppdistill.teachers.base import Teacher

# A privileged target wider than this is an image, not a state to be predicted
_MAX_PRIVILEGED_TARGET = 4096


def privileged_target_size(space: spaces.Space) -> int:
    """The number of values the student's memory predicts for a teacher that reads ``space``:
    every entry of its Box observation (or of every Box group of a Dict one).

    :param space: the teacher's observation space
    :raises PPDistillError: for a part that is not a Box of numbers, or an image-sized one
    """
    parts = list(space.spaces.items()) if isinstance(space, spaces.Dict) else [("", space)]
    size = 0
    for name, part in parts:
        where = f"the teacher's group {name!r}" if name else "the teacher's observation"
        if not isinstance(part, spaces.Box):
            raise PPDistillError(
                f"privileged_prediction predicts the teacher's observation, but {where} is a "
                f"{type(part).__name__}, not a Box of numbers; use privileged_prediction 0"
            )
        size += int(np.prod(part.shape))
    if size > _MAX_PRIVILEGED_TARGET:
        raise PPDistillError(
            f"privileged_prediction predicts the teacher's observation, which has {size} values "
            f"(more than {_MAX_PRIVILEGED_TARGET}: an image?); use privileged_prediction 0"
        )
    return size


def standardized(inputs: Any, device: th.device) -> th.Tensor:
    """The teacher's observations of a rollout (flat sample order; a Dict's groups in key
    order) as one float matrix, each column standardized over the rollout (a constant column
    becomes 0): targets on one scale, whatever the state's units."""
    if isinstance(inputs, dict):
        columns = [np.asarray(inputs[k]).reshape(len(inputs[k]), -1) for k in sorted(inputs)]
        flat = np.concatenate(columns, axis=1)
    else:
        flat = np.asarray(inputs).reshape(len(inputs), -1)
    x = th.as_tensor(flat, dtype=th.float32, device=device)
    mean, std = x.mean(dim=0), x.std(dim=0, unbiased=False)
    return th.where(std > 1e-6, (x - mean) / std.clamp_min(1e-6), th.zeros_like(x))


class RecurrentStudentMixin:
    """What a recurrent student changes in a distillation algorithm (mixed in first, before
    :class:`~ppdistill.algorithms.base.DistillationMixin`, with ``RecurrentPPO`` as the SB3 base):
    RecurrentPPO's policies, its sequence buffer holding the teacher's outputs, and forward passes
    that carry LSTM states."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = RecurrentPPO.policy_aliases

    # provided by SB3 / RecurrentPPO
    policy: Any
    rollout_buffer: RolloutBuffer
    observation_space: spaces.Space
    action_space: spaces.Space
    device: th.device
    n_steps: int
    n_envs: int
    gamma: float
    gae_lambda: float
    env: Any
    logger: Any

    privileged_prediction: float = 0.0
    privileged_head: th.nn.Linear | None = None
    _privileged_size: int | None = None
    _memory: th.Tensor | None = None

    def __init__(self, *args: Any, privileged_prediction: float = 0.0, **kwargs: Any) -> None:
        value = privileged_prediction
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < 0:
            raise ValueError(f"privileged_prediction must be a finite number >= 0, got {value!r}")
        self.privileged_prediction = float(value)
        super().__init__(*args, **kwargs)

    def _algorithm_kwargs(self) -> dict[str, Any]:
        return {}  # RecurrentPPO declares its own action spaces

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        self.privileged_head = None
        if self.privileged_prediction > 0:
            self._setup_privileged_head()

    def _setup_privileged_head(self) -> None:
        """A linear head from the actor's LSTM output to the teacher's observation, trained by
        the policy's optimizer (its own parameter group)."""
        view = find_student_view(self.env) if self.env is not None else None
        if view is not None:
            size = privileged_target_size(view.teacher_observation_space)
            if self._privileged_size is not None and size != self._privileged_size:
                raise PPDistillError(
                    f"this student predicts a teacher's observation of {self._privileged_size} values, "
                    f"the environment's teacher view has {size}: load it with the environment it was "
                    "trained on"
                )
            self._privileged_size = size
        elif self._privileged_size is None:  # a new model (a loaded one knows its head's size)
            # without a view the teacher reads what the student reads: nothing to predict
            raise PPDistillError(
                "privileged_prediction needs a teacher that reads more than the student: give the "
                "student a view of the environment (--student-obs positions|KEYS, or "
                "ppdistill.envs.views.split_observations), or use privileged_prediction 0"
            )
        hidden = int(self.policy.lstm_actor.hidden_size)
        self.privileged_head = th.nn.Linear(hidden, self._privileged_size).to(self.device)
        self.policy.optimizer.add_param_group({"params": list(self.privileged_head.parameters())})

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        names, variables = super()._get_torch_save_params()  # type: ignore[misc]
        if self.privileged_head is not None:
            names = [*names, "privileged_head"]
        return names, variables

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_memory"]  # type: ignore[misc]

    def collect_rollouts(
        self, env: Any, callback: Any, rollout_buffer: RolloutBuffer, n_rollout_steps: int, **kwargs: Any
    ) -> bool:
        complete = super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps, **kwargs)  # type: ignore[misc]
        if complete and self.privileged_head is not None:  # whoever acted, and whether or not λ is 0
            targets = standardized(rollout_buffer.teacher_inputs(), self.device)  # type: ignore[attr-defined]
            rollout_buffer.set_privileged_targets(targets)  # type: ignore[attr-defined]
        return bool(complete)

    def _connect_rollout_buffer(self) -> None:
        # RecurrentPPO builds its own buffer class: the same one, holding the teacher's outputs
        built = self.rollout_buffer
        cls = (
            DistillRecurrentDictRolloutBuffer
            if isinstance(self.observation_space, spaces.Dict)
            else DistillRecurrentRolloutBuffer
        )
        self.rollout_buffer = cls(
            self.n_steps,
            self.observation_space,
            self.action_space,
            built.hidden_state_shape,  # type: ignore[attr-defined]
            self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
        )
        super()._connect_rollout_buffer()  # type: ignore[misc]

    def initial_lstm_states(self, n: int) -> RNNStates:
        """Zero LSTM states for ``n`` environments (what an episode starts from)."""
        layers, _, hidden = self.policy.lstm_hidden_state_shape
        zeros = th.zeros(layers, n, hidden, device=self.device)
        return RNNStates((zeros, zeros.clone()), (zeros.clone(), zeros.clone()))

    def _student_forward(
        self, obs: TensorObs, with_values: bool = True
    ) -> tuple[Distribution, th.Tensor | None]:
        """The student on observations each taken as the first of an episode (zero state)."""
        first = next(iter(obs.values())) if isinstance(obs, dict) else obs
        n = int(first.shape[0])
        starts = th.ones(n, device=self.device)
        distribution, values, _ = recurrent_actor_critic_forward(
            self.policy, obs, self.initial_lstm_states(n), starts, with_values=with_values
        )
        return distribution, values

    def _minibatch_forward(
        self, batch: DistillRecurrentRolloutBufferSamples, with_values: bool
    ) -> tuple[Distribution, th.Tensor | None, th.Tensor | None]:
        """The student over the minibatch's padded sequences; the mask of the steps that count.
        With a privileged head, the same pass keeps the actor's LSTM output for its loss."""
        args = (self.policy, batch.observations, batch.lstm_states, batch.episode_starts, with_values)
        if self.privileged_head is None:
            distribution, values, _ = recurrent_actor_critic_forward(*args)
        else:
            distribution, values, _, self._memory = recurrent_forward_with_memory(*args)
        return distribution, values, batch.mask > 1e-8

    def _auxiliary_loss(
        self, batch: DistillRecurrentRolloutBufferSamples, mask: th.Tensor | None
    ) -> tuple[th.Tensor, th.Tensor] | None:
        """``privileged_prediction`` × the mean squared error of the head's prediction of the
        teacher's standardized observation over the steps that count, and that error (1.0 is
        no better than the rollout's mean), for the minibatch just passed forward."""
        if self.privileged_head is None:
            return None
        memory, self._memory = self._memory, None
        if memory is None or batch.privileged_targets is None:
            raise RuntimeError("no privileged targets or no memory of the student for this minibatch")
        error = ((self.privileged_head(memory) - batch.privileged_targets) ** 2).mean(dim=1)
        mse = counted(error, mask).mean()
        return self.privileged_prediction * mse, mse.detach()


class RecurrentPPD(RecurrentStudentMixin, ProximalDistillation, RecurrentPPO):  # type: ignore[misc]
    """Proximal Policy Distillation into a RecurrentPPO (LSTM) student.

    The student collects its own experience with its LSTM and learns with RecurrentPPO's loss
    plus, on every minibatch of sequences::

        loss = RecurrentPPO(θ) + λ · mean_mask( max(ρ, 1−ε) · KL(π_T(·|s) ‖ π_θ(·|h)) )

    where π_θ(·|h) is the student's distribution given its LSTM's memory of the episode so far,
    π_T the teacher's (any kind, recurrent included, run once per rollout on what it reads), and
    the mean is over the steps RecurrentPPO's own terms average over (padded steps masked out).
    With λ = 0 it is RecurrentPPO, bit for bit.

    :param policy: a RecurrentPPO policy ("MlpLstmPolicy", "CnnLstmPolicy",
        "MultiInputLstmPolicy" or a ``RecurrentActorCriticPolicy`` class)
    :param env: environment or its id
    :param teacher: a :class:`~ppdistill.teachers.Teacher` or a path to one
    :param distill_lambda: λ, a float or a picklable schedule of ``progress_remaining``
        (λ = 0 is RecurrentPPO)
    :param kl_direction: "forward" (KL(π_T‖π_θ)) or "reverse"
    :param detach_ratio: stop the gradient through ρ in the distillation term, as in
        :class:`~ppdistill.PPD`
    :param student_obs_norm: "teacher", "none" or "running", as in :class:`~ppdistill.PPD`
    :param log_std_from_teacher: as in :class:`~ppdistill.PPD`
    :param privileged_prediction: weight of the auxiliary loss that has the student's memory
        predict the teacher's observation (0: none; see the module docstring); needs a student
        that sees less than the teacher
    :param recurrent_kwargs: every other argument of :class:`sb3_contrib.RecurrentPPO`
        (learning_rate, n_steps, batch_size, n_epochs, gamma, gae_lambda, clip_range, ent_coef,
        vf_coef, max_grad_norm, target_kl, policy_kwargs with ``lstm_hidden_size``,
        ``n_lstm_layers``, ``enable_critic_lstm``, ``shared_lstm``, seed, device, ...)
    """

    def __init__(
        self,
        policy: str | type,
        env: GymEnv | str,
        teacher: Teacher | str | pathlib.Path | None = None,
        distill_lambda: float | Schedule = 1.0,
        kl_direction: KLDirection = "forward",
        detach_ratio: bool = True,
        student_obs_norm: StudentObsNorm = "teacher",
        log_std_from_teacher: bool = True,
        privileged_prediction: float = 0.0,
        _init_setup_model: bool = True,
        **recurrent_kwargs: Any,
    ) -> None:
        super().__init__(
            policy,
            env,
            _init_setup_model=False,
            privileged_prediction=privileged_prediction,
            **recurrent_kwargs,
        )
        self._init_lambda(distill_lambda, detach_ratio)
        self._init_distillation(teacher, kl_direction, student_obs_norm, log_std_from_teacher)
        if _init_setup_model:
            self._setup_model()


class RecurrentStudentDistill(RecurrentStudentMixin, StudentDistill, RecurrentPPO):  # type: ignore[misc]
    """Student-distill into a RecurrentPPO (LSTM) student: the student acts with its LSTM and
    learns ``KL(π_T ‖ π_θ)`` over RecurrentPPO's sequences (padded steps masked out).

    Parameters as in :class:`~ppdistill.algorithms.baselines.KLDistillation`, with a
    RecurrentPPO policy ("MlpLstmPolicy", ...) and its ``policy_kwargs``, plus
    ``privileged_prediction`` as in :class:`RecurrentPPD`.
    """


class RecurrentTeacherDistill(RecurrentStudentMixin, TeacherDistill, RecurrentPPO):  # type: ignore[misc]
    """Teacher-distill into a RecurrentPPO (LSTM) student: the teacher acts; the student's LSTM
    runs along the teacher's steps (its states recorded for its sequences, reset at episode
    starts), and it learns ``KL(π_T ‖ π_θ)`` over RecurrentPPO's sequences.

    Parameters as in :class:`~ppdistill.algorithms.baselines.TeacherDistill`, with a
    RecurrentPPO policy ("MlpLstmPolicy", ...) and its ``policy_kwargs``, plus
    ``privileged_prediction`` as in :class:`RecurrentPPD`.
    """

    _last_lstm_states: RNNStates  # type: ignore[assignment]
    _next_lstm_states: RNNStates

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_next_lstm_states"]

    def _student_step(self, obs: Any, need_values: bool) -> th.Tensor:
        # the student's LSTM advances along the teacher's steps, whatever the value target
        starts = th.as_tensor(self._last_episode_starts, dtype=th.float32, device=self.device)
        with th.no_grad():
            _, values, self._next_lstm_states = recurrent_actor_critic_forward(
                self.policy, obs_as_tensor(obs, self.device), self._last_lstm_states, starts
            )
        assert values is not None
        return values

    def _terminal_value(self, terminal_obs: Any, index: int) -> th.Tensor:
        # as RecurrentPPO: from the critic's state after the step, not a new episode
        vf = self._next_lstm_states.vf
        state = (vf[0][:, index : index + 1, :].contiguous(), vf[1][:, index : index + 1, :].contiguous())
        with th.no_grad():
            starts = th.zeros(1, dtype=th.float32, device=self.device)
            return self.policy.predict_values(terminal_obs, state, starts)[0]

    def _add_step(self, buffer: RolloutBuffer, *step: Any) -> None:
        # the state before the step, as RecurrentPPO records it
        buffer.add(*step, lstm_states=self._last_lstm_states)  # type: ignore[call-arg]
        self._last_lstm_states = self._next_lstm_states

    def _last_values(self, obs: Any, dones: np.ndarray) -> th.Tensor:
        starts = th.as_tensor(dones, dtype=th.float32, device=self.device)
        with th.no_grad():
            return self.policy.predict_values(
                obs_as_tensor(obs, self.device), self._last_lstm_states.vf, starts
            )
