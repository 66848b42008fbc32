"""PPD with a MaskablePPO student (sb3-contrib's invalid-action masking).

:class:`MaskablePPD` is to sb3-contrib's ``MaskablePPO`` what :class:`~ppdistill.PPD` is to
``PPO``: the student samples only legal actions, its ratio and log-probabilities are those of
its masked distribution, and its loss adds λ·mean(max(ρ, 1−ε)·KL(π_T‖π_θ)) with both
distributions masked by each sample's action masks (the KL is over the legal actions only).
With λ = 0 it is MaskablePPO, bit for bit.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.distributions import MaskableDistribution
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import GymEnv
from stable_baselines3.common.utils import explained_variance
from stable_baselines3.common.vec_env import VecEnv
from torch.nn import functional as F

from ppdistill.algorithms.base import DistillationMixin, StudentObsNorm
from ppdistill.algorithms.buffers import (
    DistillMaskableDictRolloutBuffer,
    DistillMaskableRolloutBuffer,
    DistillMaskableRolloutBufferSamples,
)
from ppdistill.algorithms.guards import nonfinite_loss
from ppdistill.core.losses import KLDirection, action_agreement, distillation_kl, ppd_term
from ppdistill.core.schedules import Schedule, as_schedule
from ppdistill.networks.forward import actor_critic_forward
from ppdistill.teachers.base import Teacher
from ppdistill.teachers.maskable import mask_params, params_from_maskable


class MaskablePPD(DistillationMixin, MaskablePPO):  # type: ignore[misc]  # load() adds teacher=
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
    :param student_obs_norm: "teacher" or "none", as in :class:`~ppdistill.PPD`
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
        self.distill_lambda = distill_lambda
        self.lambda_schedule = as_schedule(distill_lambda)
        self._lambda: float | None = None
        self.detach_ratio = detach_ratio
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

    def _next_lambda(self) -> float:
        """λ for the update that follows the rollout just collected (as in :class:`~ppdistill.PPD`)."""
        total = max(1, getattr(self, "_total_timesteps", 1))
        progress = 1.0 - float(self.num_timesteps) / float(total)
        observe = getattr(self.lambda_schedule, "observe", None)
        if observe is not None and self.ep_info_buffer:
            observe([float(e["r"]) for e in self.ep_info_buffer])
        return float(self.lambda_schedule(progress))

    def _store_teacher_outputs(self, rollout_buffer: Any) -> None:
        # λ is decided once per rollout; with λ = 0 the teacher is not run at all
        self._lambda = self._next_lambda()
        if self._lambda == 0.0:
            rollout_buffer.skip_teacher()
            self._teacher_state = None
            self._log_std_initialized = True
            return
        super()._store_teacher_outputs(rollout_buffer)

    def train(self) -> None:
        """MaskablePPO's update with the distillation term added to each minibatch's loss.

        Lines that differ from ``sb3_contrib.MaskablePPO.train`` are marked ``# PPD:``.
        """
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]
        lam = self._lambda if self._lambda is not None else self._next_lambda()  # PPD: λ of this rollout
        self._lambda = None

        entropy_losses: list[float] = []
        pg_losses: list[float] = []
        value_losses: list[float] = []
        clip_fractions: list[float] = []
        kls: list[th.Tensor] = []  # PPD: diagnostics, kept as tensors and read once per update
        distill_losses: list[th.Tensor] = []
        agreements: list[float] = []
        weight_clipped: list[th.Tensor] = []
        approx_kl_divs: list[float] = []

        continue_training = True
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            batch: DistillMaskableRolloutBufferSamples
            for batch in self.rollout_buffer.get(self.batch_size):  # type: ignore[assignment]
                actions = batch.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = batch.actions.long().flatten()

                # PPD: one forward pass gives log-probs, values, entropy and the masked distribution
                # (a MaskableActorCriticPolicy has the ActorCriticPolicy parts the shared pass uses)
                distribution, values = actor_critic_forward(self.policy, batch.observations)
                assert isinstance(distribution, MaskableDistribution)
                distribution.apply_masking(batch.action_masks)
                assert values is not None
                log_prob = distribution.log_prob(actions)
                entropy = distribution.entropy()
                values = values.flatten()

                advantages = batch.advantages
                if self.normalize_advantage:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

                ratio = th.exp(log_prob - batch.old_log_prob)
                policy_loss_1 = advantages * ratio
                policy_loss_2 = advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
                policy_loss = -th.min(policy_loss_1, policy_loss_2).mean()
                pg_losses.append(policy_loss.item())
                clip_fractions.append(th.mean((th.abs(ratio - 1) > clip_range).float()).item())

                if self.clip_range_vf is None:
                    values_pred = values
                else:
                    values_pred = batch.old_values + th.clamp(
                        values - batch.old_values, -clip_range_vf, clip_range_vf
                    )
                value_loss = F.mse_loss(batch.returns, values_pred)
                value_losses.append(value_loss.item())

                if entropy is None:
                    entropy_loss = -th.mean(-log_prob)
                else:
                    entropy_loss = -th.mean(entropy)
                entropy_losses.append(entropy_loss.item())

                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
                if lam > 0:  # PPD: + λ · mean(max(ρ, 1−ε) · KL(π_T ‖ π_θ)), both masked
                    assert batch.teacher_params is not None
                    student_params = params_from_maskable(distribution)
                    teacher_params = mask_params(
                        self.action_space, batch.teacher_params, batch.action_masks.bool()
                    )
                    kl = distillation_kl(self.action_space, teacher_params, student_params, self.kl_direction)
                    term = ppd_term(kl, ratio, clip_range, detach_ratio=self.detach_ratio)
                    loss = loss + lam * term.loss
                    kls.append(term.kl)
                    weight_clipped.append(term.clipped_fraction)
                    distill_losses.append(lam * term.loss.detach())
                    if epoch == 0:  # agreement of the policy that collected the rollout
                        agreements.append(action_agreement(self.action_space, teacher_params, student_params))

                with th.no_grad():
                    log_ratio = log_prob - batch.old_log_prob
                    approx_kl = th.mean((th.exp(log_ratio) - 1) - log_ratio)
                    # PPD: approx_kl + 0·loss is approx_kl exactly, or NaN when the loss is not finite
                    approx_kl_div = approx_kl.add_(loss.detach(), alpha=0.0).cpu().numpy()
                    approx_kl_divs.append(float(approx_kl_div))
                if not math.isfinite(approx_kl_divs[-1]):  # PPD: stop before a NaN reaches the weights
                    raise nonfinite_loss("the PPD loss", self._n_updates + 1, self.num_timesteps)

                if self.target_kl is not None and approx_kl_div > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl_div:.2f}")
                    break

                self.policy.optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()

            self._n_updates += 1
            if not continue_training:
                break

        explained_var = explained_variance(
            self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()
        )

        self.logger.record("train/entropy_loss", np.mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", np.mean(pg_losses))
        self.logger.record("train/value_loss", np.mean(value_losses))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if self.clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
        # PPD: distillation diagnostics (as PPD's, docs/metrics.md)
        self.logger.record("distill/lambda", lam)
        if kls:  # not when λ = 0: the teacher did not run
            self.logger.record("distill/kl", th.stack(kls).mean().item())
            self.logger.record("distill/loss", th.stack(distill_losses).mean().item())
            self.logger.record("distill/agreement", np.mean(agreements))
            self.logger.record("distill/weight_clipped_fraction", th.stack(weight_clipped).mean().item())
