"""PPD with a MaskablePPO student (sb3-contrib's invalid-action masking).

:class:`MaskablePPD` is to sb3-contrib's ``MaskablePPO`` what :class:`~ppdistill.PPD` is to
``PPO``: the student samples only legal actions, its ratio and log-probabilities are those of
its masked distribution, and its loss adds λ·mean(max(ρ, 1−ε)·KL(π_T‖π_θ)) with both
distributions masked by each sample's action masks (the KL is over the legal actions only).
With λ = 0 it is MaskablePPO, bit for bit (but for a one-sample minibatch, whose advantage
is left unnormalized, as SB3's PPO does, where MaskablePPO gives NaN).
"""

from __future__ import annotations

import pathlib
from typing import Any

import torch as th
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.distributions import MaskableDistribution
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.type_aliases import GymEnv
from stable_baselines3.common.vec_env import VecEnv

from ppdistill.algorithms.base import StudentObsNorm
from ppdistill.algorithms.buffers import (
    DistillMaskableDictRolloutBuffer,
    DistillMaskableRolloutBuffer,
    DistillMaskableRolloutBufferSamples,
)
from ppdistill.algorithms.proximal import ProximalDistillation
from ppdistill.core.losses import KLDirection
from ppdistill.core.schedules import Schedule
from ppdistill.networks.forward import actor_critic_forward
from ppdistill.teachers.base import Teacher
from ppdistill.teachers.maskable import mask_params, params_from_maskable


class MaskablePPD(ProximalDistillation, MaskablePPO):  # type: ignore[misc]  # load() adds teacher=
    """Proximal Policy Distillation into a MaskablePPO student.

    The student collects its own experience with the environment's action masks (it never
    takes an illegal action) and learns with MaskablePPO's loss plus, on every minibatch::

        loss = MaskablePPO(θ) + λ · mean( max(ρ, 1−ε) · KL(π_T(·|s) ‖ π_θ(·|s)) )

    where π_θ is the student's masked distribution and π_T the teacher's, masked with the same
    masks (a MaskablePPO teacher's target is masked already; any other teacher's is
    renormalized over the legal actions). The environment must provide ``action_masks()``
    (:class:`sb3_contrib.common.wrappers.ActionMasker`).

    :param policy: a MaskablePPO policy ("MlpPolicy", "CnnPolicy", "MultiInputPolicy" or a
        ``MaskableActorCriticPolicy`` class)
    :param env: environment (with action masks) or its id
    :param teacher: a :class:`~ppdistill.teachers.Teacher` or a path to one
    :param distill_lambda: λ, a float or a picklable schedule of ``progress_remaining``
        (λ = 0 is MaskablePPO)
    :param kl_direction: "forward" (KL(π_T‖π_θ)) or "reverse"
    :param detach_ratio: stop the gradient through ρ in the distillation term, as in
        :class:`~ppdistill.PPD`
    :param student_obs_norm: "teacher", "none" or "running", as in :class:`~ppdistill.PPD`
    :param maskable_kwargs: every other argument of :class:`sb3_contrib.MaskablePPO`
        (learning_rate, n_steps, batch_size, n_epochs, gamma, gae_lambda, clip_range, ent_coef,
        vf_coef, max_grad_norm, target_kl, policy_kwargs, seed, device, ...). ``learn()`` takes
        MaskablePPO's ``use_masking`` too.
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
        _init_setup_model: bool = True,
        **maskable_kwargs: Any,
    ) -> None:
        super().__init__(policy, env, _init_setup_model=False, **maskable_kwargs)
        self._init_lambda(distill_lambda, detach_ratio)
        self._init_distillation(teacher, kl_direction, student_obs_norm, log_std_from_teacher=False)
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        # sb3-contrib's maskable buffers (the student's masks) with the teacher's outputs
        dict_obs = isinstance(self.observation_space, spaces.Dict)
        wanted = DistillMaskableDictRolloutBuffer if dict_obs else DistillMaskableRolloutBuffer
        if self.rollout_buffer_class is None or not issubclass(self.rollout_buffer_class, wanted):
            self.rollout_buffer_class = wanted
        super()._setup_model()

    def collect_rollouts(  # type: ignore[override]
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
        use_masking: bool = True,
    ) -> bool:
        """MaskablePPO's rollout (the student acts on legal actions only), then the teacher's
        outputs for it (with the rollout's masks, which the buffer holds)."""
        return super().collect_rollouts(
            env, callback, rollout_buffer, n_rollout_steps, use_masking=use_masking
        )

    def _minibatch_forward(
        self, batch: DistillMaskableRolloutBufferSamples, with_values: bool
    ) -> tuple[Distribution, th.Tensor | None, th.Tensor | None]:
        """The student's masked distribution and values (a MaskableActorCriticPolicy has the
        ActorCriticPolicy parts the shared pass uses); every sample counts."""
        distribution, values = actor_critic_forward(self.policy, batch.observations, with_values=with_values)
        assert isinstance(distribution, MaskableDistribution)
        distribution.apply_masking(batch.action_masks)
        return distribution, values, None

    def _kl_targets(
        self, batch: DistillMaskableRolloutBufferSamples, distribution: Distribution, mask: th.Tensor | None
    ) -> tuple[th.Tensor, th.Tensor]:
        """Both distributions masked with the rollout's masks (a MaskablePPO teacher's target is
        masked already; any other teacher's is renormalized over the legal actions)."""
        assert batch.teacher_params is not None and isinstance(distribution, MaskableDistribution)
        teacher = mask_params(self.action_space, batch.teacher_params, batch.action_masks.bool())
        return teacher, params_from_maskable(distribution)
