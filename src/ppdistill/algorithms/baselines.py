"""The classic baselines: pure KL distillation, with the student or the teacher acting.

Neither uses the environment's reward to train the policy. Both minimize
``KL(π_T ‖ π_θ)`` (or the reverse) on the states of the rollout, over ``n_epochs`` passes
of minibatches like PPO; the paper's setting, one full-batch step per 5-step rollout, is
``n_steps=5, batch_size=None, n_epochs=1``.

Value head: ``value_target`` says what the student's critic learns.

- ``"returns"`` (default): the λ-returns of the rollout, in the environment's reward
  units and with the student's γ. The critic is then ready for PPO fine-tuning, and the
  option works for every teacher, including those without a critic and those trained
  on normalized rewards or another γ.
- ``"teacher"``: regress on the teacher's value (the sb3_distill baselines do this); only
  for teachers with one (actor-critic, value-based). Values are converted back to reward
  units when the teacher's VecNormalize scaled rewards, but the teacher's γ stays.
- ``"none"``: the critic is not trained.
"""

from __future__ import annotations

import math
import pathlib
from collections import deque
from typing import Any, Literal

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import (
    ActorCriticCnnPolicy,
    ActorCriticPolicy,
    MultiInputActorCriticPolicy,
)
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.utils import obs_as_tensor, safe_mean
from stable_baselines3.common.vec_env import VecEnv
from torch.nn import functional as F

from ppdistill.algorithms.base import DistillationMixin, StudentObsNorm, counted
from ppdistill.algorithms.buffers import DistillRolloutBuffer, DistillRolloutBufferSamples
from ppdistill.algorithms.guards import check_rollout, nonfinite_loss, teacher_distribution_error
from ppdistill.core.distributions import SUPPORTED_ACTION_SPACES, params_from_distribution
from ppdistill.core.errors import PPDistillError
from ppdistill.core.finite import check_finite
from ppdistill.core.losses import KLDirection, action_agreement, distillation_kl
from ppdistill.teachers.base import Teacher
from ppdistill.teachers.maskable import MaskedTeacher
from ppdistill.teachers.recurrent import RecurrentTeacher

ValueTarget = Literal["returns", "teacher", "none"]


class KLDistillation(DistillationMixin, OnPolicyAlgorithm):  # type: ignore[misc]  # load() adds teacher=
    """Pure KL distillation; the base of :class:`StudentDistill` and :class:`TeacherDistill`.

    :param policy: SB3 actor-critic policy ("MlpPolicy", "CnnPolicy", "MultiInputPolicy" or a class)
    :param env: environment or its id
    :param teacher: a :class:`~ppdistill.teachers.Teacher` or a path to one
    :param learning_rate: learning rate, or an SB3 schedule of it
    :param n_steps: steps per environment per rollout
    :param batch_size: minibatch size (None: the whole rollout in one batch)
    :param n_epochs: passes over each rollout
    :param gamma: discount for the value target "returns"
    :param gae_lambda: λ of the λ-returns for the value target "returns"
    :param ent_coef: entropy bonus
    :param vf_coef: weight of the value loss
    :param max_grad_norm: gradient clipping
    :param value_target: "returns", "teacher" or "none" (see the module docstring)
    :param kl_direction: "forward" (KL(π_T‖π_θ)) or "reverse"
    :param student_obs_norm: "teacher", "none" or "running", as in :class:`~ppdistill.PPD`
    :param log_std_from_teacher: as in :class:`~ppdistill.PPD`
    :param kwargs: other :class:`~stable_baselines3.common.on_policy_algorithm.OnPolicyAlgorithm`
        arguments (use_sde, sde_sample_freq, policy_kwargs, tensorboard_log, verbose, seed, device, ...)
    """

    policy_aliases = {  # noqa: RUF012 (SB3 declares it this way)
        "MlpPolicy": ActorCriticPolicy,
        "CnnPolicy": ActorCriticCnnPolicy,
        "MultiInputPolicy": MultiInputActorCriticPolicy,
    }

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: GymEnv | str,
        teacher: Teacher | str | pathlib.Path | None = None,
        learning_rate: float | Schedule = 1e-3,
        n_steps: int = 64,
        batch_size: int | None = 64,
        n_epochs: int = 4,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        value_target: ValueTarget = "returns",
        kl_direction: KLDirection = "forward",
        student_obs_norm: StudentObsNorm = "teacher",
        log_std_from_teacher: bool = False,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        _init_setup_model: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            _init_setup_model=False,
            **self._algorithm_kwargs(),
            **kwargs,
        )
        if value_target not in ("returns", "teacher", "none"):
            raise ValueError(f"value_target must be 'returns', 'teacher' or 'none', got {value_target!r}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be positive or None, got {batch_size}")
        if n_epochs < 1:
            raise ValueError(f"n_epochs must be at least 1, got {n_epochs}")
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.value_target = value_target
        self._init_distillation(teacher, kl_direction, student_obs_norm, log_std_from_teacher)
        if _init_setup_model:
            self._setup_model()

    def _algorithm_kwargs(self) -> dict[str, Any]:
        """Arguments of the SB3 base class that this class sets (its action spaces)."""
        return {"supported_action_spaces": SUPPORTED_ACTION_SPACES}

    @property
    def _needs_teacher_values(self) -> bool:
        return self.value_target == "teacher"

    def set_teacher(self, teacher: Teacher | str | pathlib.Path) -> None:
        super().set_teacher(teacher)
        assert self.teacher is not None
        if self.value_target == "teacher" and not self.teacher.has_value:
            raise PPDistillError(
                "value_target='teacher' needs a teacher with a value function; use value_target='returns'"
            )

    def train(self) -> None:
        """KL steps over the rollout: ``KL + vf_coef·value_loss − ent_coef·entropy`` per minibatch."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        train_values = self.value_target != "none"
        kls: list[float] = []
        agreements: list[float] = []
        value_losses: list[float] = []
        entropies: list[float] = []
        losses: list[float] = []
        auxiliary_errors: list[float] = []
        batch: DistillRolloutBufferSamples
        for epoch in range(self.n_epochs):
            for batch in self.rollout_buffer.get(self.batch_size):  # type: ignore[assignment]
                assert batch.teacher_params is not None
                distribution, values, mask = self._minibatch_forward(batch, train_values)
                student_params = params_from_distribution(distribution)
                kl = distillation_kl(
                    self.action_space, batch.teacher_params, student_params, self.kl_direction
                )
                kl = counted(kl, mask)  # a recurrent student's padded steps left out
                loss = kl.mean()
                if values is not None:
                    target = batch.returns if self.value_target == "returns" else batch.teacher_values
                    assert target is not None
                    value_loss = F.mse_loss(counted(values.flatten(), mask), counted(target, mask))
                    loss = loss + self.vf_coef * value_loss
                    value_losses.append(value_loss.item())
                if self.ent_coef != 0:
                    entropy = distribution.entropy()
                    assert entropy is not None
                    entropy = counted(entropy, mask)
                    loss = loss - self.ent_coef * entropy.mean()
                    entropies.append(entropy.mean().item())
                auxiliary = self._auxiliary_loss(batch, mask)  # a recurrent student's privileged prediction
                if auxiliary is not None:
                    loss = loss + auxiliary[0]
                    auxiliary_errors.append(auxiliary[1].item())

                losses.append(loss.item())  # read before the step: a NaN must not reach the weights
                if not math.isfinite(losses[-1]):
                    raise nonfinite_loss("the distillation loss", self._n_updates + 1, self.num_timesteps)
                self.policy.optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()

                kls.append(kl.mean().item())
                if epoch == 0:  # the policy that collected the rollout
                    teacher_params = counted(batch.teacher_params, mask)
                    agreements.append(
                        action_agreement(self.action_space, teacher_params, counted(student_params, mask))
                    )
            self._n_updates += 1

        self.logger.record("distill/kl", np.mean(kls))
        self.logger.record("distill/loss", np.mean(losses))
        self.logger.record("distill/agreement", np.mean(agreements))
        if value_losses:
            self.logger.record("train/value_loss", np.mean(value_losses))
        if entropies:
            self.logger.record("train/entropy", np.mean(entropies))
        if auxiliary_errors:
            self.logger.record("distill/privileged_prediction_mse", np.mean(auxiliary_errors))
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")


class StudentDistill(KLDistillation):
    """Student-distill: the student acts; it learns ``KL(π_T ‖ π_θ)`` on the states it visits.

    No environment reward reaches the policy (the critic may learn returns, see
    ``value_target``). Parameters as in :class:`KLDistillation`.
    """


class TeacherDistill(KLDistillation):
    """Teacher-distill: the teacher acts; the student learns ``KL(π_T ‖ π_θ)`` on the teacher's states.

    The episodes in the rollout are the teacher's: their returns are logged as
    ``rollout/teacher_ep_rew_mean``, never as ``rollout/ep_rew_mean``. Evaluate the student
    with :func:`~ppdistill.evaluate` or an ``EvalCallback``.

    :param teacher_deterministic: the teacher acts with its mode instead of sampling
    """

    def __init__(self, *args: Any, teacher_deterministic: bool = False, **kwargs: Any) -> None:
        self.teacher_deterministic = teacher_deterministic
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        self.teacher_ep_info_buffer: deque[dict[str, Any]] = deque(maxlen=self._stats_window_size)

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
        **kwargs: Any,
    ) -> bool:
        """Step the environment with the teacher's actions; store its outputs as they come."""
        teacher = self._require_teacher()
        buffer: DistillRolloutBuffer = rollout_buffer  # type: ignore[assignment]
        assert self._last_obs is not None
        self.policy.set_training_mode(False)
        self._update_running_normalization(buffer)  # as the mixin's: before the boundary
        buffer.reset()
        callback.on_rollout_start()
        need_values = self.value_target == "returns"
        params_steps: list[th.Tensor] = []
        value_steps: list[th.Tensor] = []
        dones = np.zeros(env.num_envs, dtype=bool)
        for _ in range(n_rollout_steps):
            assert self._last_obs is not None
            raw = self._raw_observations()
            teacher_obs = raw if raw is not None else self._last_obs
            # torch refuses to build distributions from NaN parameters: say which values were bad
            try:
                if teacher.recurrent:  # one step of its LSTM, its state carried from the last
                    actions, out = self._act_recurrent(teacher, obs_as_tensor(teacher_obs, self.device))
                elif isinstance(teacher, MaskedTeacher):  # only legal actions, its target masked
                    actions, out = teacher.act_on(
                        obs_as_tensor(teacher_obs, self.device),
                        self.teacher_deterministic,
                        self._needs_teacher_values,
                        action_masks=self._current_action_masks(env),
                    )
                else:
                    actions, out = teacher.act_on(
                        obs_as_tensor(teacher_obs, self.device),
                        self.teacher_deterministic,
                        self._needs_teacher_values,
                    )
            except ValueError as exc:
                where = f"at env step {self.num_timesteps}"
                hint = "the environment (or a wrapper) produced it"
                check_finite(teacher_obs, "an observation", where, hint)
                try:  # the outputs again, only to name the bad value
                    params = teacher(obs_as_tensor(teacher_obs, self.device)).params
                except ValueError:
                    params = None
                raise teacher_distribution_error(exc, where, params) from exc
            values = self._student_step(self._last_obs, need_values)

            new_obs, rewards, dones, infos = env.step(actions)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            for info in infos:  # the teacher's episodes, kept apart from the student's statistics
                if "episode" in info:
                    self.teacher_ep_info_buffer.append(info["episode"])

            if need_values:  # bootstrap truncated episodes with the student's critic, as SB3 does
                for idx, done in enumerate(dones):
                    if (
                        done
                        and infos[idx].get("terminal_observation") is not None
                        and infos[idx].get("TimeLimit.truncated", False)
                    ):
                        terminal_obs = self.policy.obs_to_tensor(infos[idx]["terminal_observation"])[0]
                        rewards[idx] += self.gamma * self._terminal_value(terminal_obs, idx).item()

            stored_actions = (
                actions.reshape(-1, 1) if isinstance(self.action_space, spaces.Discrete) else actions
            )
            self._add_step(
                buffer,
                self._last_obs,
                stored_actions,
                rewards,
                self._last_episode_starts,
                values,
                th.zeros(env.num_envs, device=self.device),  # no ratio in a KL loss: log-probs unused
            )
            params_steps.append(out.params)
            if out.values is not None:
                value_steps.append(out.values)
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones

        last_values = self._last_values(self._last_obs, dones)
        buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
        # (n_steps, n_envs, P) -> the buffer's flat order (env-major), like swap_and_flatten
        params = th.stack(params_steps).transpose(0, 1).reshape(-1, params_steps[0].shape[-1]).float()
        tvalues = th.stack(value_steps).transpose(0, 1).reshape(-1).float() if value_steps else None
        check_rollout(buffer, self._last_obs, self.num_timesteps)
        self._attach_teacher_outputs(buffer, params, tvalues)  # what the mixin does after SB3's loop
        self._rollout_to_normalize = self._keeps_running_statistics()
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    # -- the student along the teacher's steps (a recurrent student overrides these) ----------
    def _student_step(self, obs: Any, need_values: bool) -> th.Tensor:
        """The student's values of the observations the teacher acts on (zeros when not needed)."""
        with th.no_grad():
            if need_values:
                return self.policy.predict_values(obs_as_tensor(obs, self.device))
            return th.zeros(self.n_envs, 1, device=self.device)

    def _terminal_value(self, terminal_obs: Any, index: int) -> th.Tensor:
        """The student's value of env ``index``'s terminal observation (a truncated episode)."""
        with th.no_grad():
            return self.policy.predict_values(terminal_obs)[0]

    def _add_step(self, buffer: RolloutBuffer, *step: Any) -> None:
        """One step into the rollout buffer."""
        buffer.add(*step)

    def _last_values(self, obs: Any, dones: np.ndarray) -> th.Tensor:
        """The student's values of the observations after the rollout (to bootstrap it)."""
        with th.no_grad():
            return self.policy.predict_values(obs_as_tensor(obs, self.device))

    def _recorded_action_masks(self) -> np.ndarray | None:
        return None  # a masked teacher's outputs are taken as it acts, with that step's masks

    def _act_recurrent(self, teacher: Teacher, obs: Any) -> tuple[np.ndarray, Any]:
        """A recurrent teacher acts on one step: its state advanced, reset where episodes start."""
        assert isinstance(teacher, RecurrentTeacher)
        if self._teacher_state is None:
            self._teacher_state = teacher.initial_state(self.n_envs)
        starts = th.as_tensor(self._last_episode_starts, dtype=th.float32, device=self.device)
        out, self._teacher_state = teacher.sequence(
            obs, starts, self._teacher_state, with_values=self._needs_teacher_values
        )
        return teacher.act(out.params, self.teacher_deterministic), out

    def dump_logs(self, iteration: int = 0) -> None:
        if self.teacher_ep_info_buffer:
            self.logger.record(
                "rollout/teacher_ep_rew_mean", safe_mean([e["r"] for e in self.teacher_ep_info_buffer])
            )
            self.logger.record(
                "rollout/teacher_ep_len_mean", safe_mean([e["l"] for e in self.teacher_ep_info_buffer])
            )
        super().dump_logs(iteration)
