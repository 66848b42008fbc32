"""Proximal Policy Distillation (Spigler 2024): PPO plus λ·E[max(ρ, 1−ε)·KL(π_T ‖ π_θ)]."""

from __future__ import annotations

import math
import pathlib
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.type_aliases import GymEnv
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F

from ppdistill.algorithms.base import DistillationMixin, StudentObsNorm
from ppdistill.algorithms.buffers import DistillRolloutBufferSamples
from ppdistill.algorithms.guards import nonfinite_loss
from ppdistill.core.distributions import params_from_distribution
from ppdistill.core.losses import KLDirection, action_agreement, distillation_kl, ppd_term
from ppdistill.core.schedules import Schedule, as_schedule
from ppdistill.teachers.base import Teacher


class PPD(DistillationMixin, PPO):  # type: ignore[misc]  # load() adds teacher=
    """Proximal Policy Distillation.

    The student collects its own experience and learns from the environment's reward with
    PPO's loss, plus a distillation term on every minibatch::

        loss = PPO(θ) + λ · mean( max(ρ, 1−ε) · KL(π_T(·|s) ‖ π_θ(·|s)) )

    with ρ = π_θ(a|s) / π_θ_old(a|s) and ε PPO's clip range. The teacher's outputs are
    computed once per rollout; each minibatch takes one student forward pass.

    :param policy: SB3 policy ("MlpPolicy", "CnnPolicy", "MultiInputPolicy" or a class)
    :param env: environment or its id
    :param teacher: a :class:`~ppdistill.teachers.Teacher` (see :func:`~ppdistill.load_teacher`)
        or a path to one. May be omitted only to set it later with :meth:`set_teacher`.
    :param distill_lambda: λ, a float or a picklable schedule of ``progress_remaining``
        (see :mod:`ppdistill.core.schedules`). λ = 0 is plain PPO.
    :param kl_direction: "forward" (KL(π_T‖π_θ), the paper's) or "reverse" (KL(π_θ‖π_T))
    :param detach_ratio: stop the gradient through ρ in the distillation term, so that it
        weights the KL without adding a score-function term λ·KL·∇log π (default True;
        False is the paper's form; see docs/ppd-defaults.md for the evidence)
    :param log_std_from_teacher: start a Gaussian student's log-std at the teacher's mean
        log-std (measured on the first rollout) instead of ``log_std_init`` (default True;
        False is the paper's form; only Box actions with a state-independent std are affected,
        and only when λ > 0 on the first rollout)
    :param student_obs_norm: "teacher" gives the student, inside its network, the
        teacher's frozen observation normalization when the teacher has one (and the
        student's VecEnv does not normalize); "none" leaves the student's inputs alone
    :param ppo_kwargs: every other argument of :class:`stable_baselines3.PPO`
        (learning_rate, n_steps, batch_size, n_epochs, gamma, gae_lambda, clip_range,
        ent_coef, vf_coef, max_grad_norm, use_sde, target_kl, policy_kwargs, seed,
        device, tensorboard_log, verbose, ...)
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
        _init_setup_model: bool = True,
        **ppo_kwargs: Any,
    ) -> None:
        super().__init__(policy, env, _init_setup_model=False, **ppo_kwargs)
        self.distill_lambda = distill_lambda
        self.lambda_schedule = as_schedule(distill_lambda)
        self._lambda: float | None = None
        self.detach_ratio = detach_ratio
        self._init_distillation(teacher, kl_direction, student_obs_norm, log_std_from_teacher)
        if _init_setup_model:
            self._setup_model()

    def _next_lambda(self) -> float:
        """λ for the update that follows the rollout just collected.

        Evaluated at the progress SB3 will give that update; a performance-based schedule
        first sees the student's recent episode returns.
        """
        total = max(1, getattr(self, "_total_timesteps", 1))
        progress = 1.0 - float(self.num_timesteps) / float(total)
        observe = getattr(self.lambda_schedule, "observe", None)
        if observe is not None and self.ep_info_buffer:
            observe([float(e["r"]) for e in self.ep_info_buffer])
        return float(self.lambda_schedule(progress))

    def _store_teacher_outputs(self, rollout_buffer: Any) -> None:
        # PPD: λ is decided once per rollout; with λ = 0 (e.g. the fine-tuning phase of a
        # distill-then-fine-tune schedule) the teacher is not run at all.
        self._lambda = self._next_lambda()
        if self._lambda == 0.0:
            rollout_buffer.skip_teacher()
            # a recurrent teacher not run loses track of its episodes: it starts afresh if λ returns
            self._teacher_state = None
            self._log_std_initialized = (
                True  # only ever before the first update: never overwrite a trained std
            )
            return
        super()._store_teacher_outputs(rollout_buffer)

    def train(self) -> None:
        """PPO's update with the distillation term added to each minibatch's loss.

        Lines that differ from ``stable_baselines3.PPO.train`` are marked ``# PPD:``.
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
            batch: DistillRolloutBufferSamples
            for batch in self.rollout_buffer.get(self.batch_size):  # type: ignore[assignment]
                actions = batch.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = batch.actions.long().flatten()

                # PPD: one forward pass gives log-probs, values, entropy and the distribution for the KL
                distribution, values = self._student_forward(batch.observations)
                assert values is not None
                log_prob = distribution.log_prob(actions)
                entropy = distribution.entropy()
                values = values.flatten()

                advantages = batch.advantages
                if self.normalize_advantage and len(advantages) > 1:
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
                if lam > 0:  # PPD: + λ · mean(max(ρ, 1−ε) · KL(π_T ‖ π_θ))
                    assert batch.teacher_params is not None
                    student_params = params_from_distribution(distribution)
                    kl = distillation_kl(
                        self.action_space, batch.teacher_params, student_params, self.kl_direction
                    )
                    term = ppd_term(kl, ratio, clip_range, detach_ratio=self.detach_ratio)
                    loss = loss + lam * term.loss
                    kls.append(term.kl)
                    weight_clipped.append(term.clipped_fraction)
                    distill_losses.append(lam * term.loss.detach())
                    if epoch == 0:  # agreement of the policy that collected the rollout; once is enough
                        agreements.append(
                            action_agreement(self.action_space, batch.teacher_params, student_params)
                        )

                with th.no_grad():
                    log_ratio = log_prob - batch.old_log_prob
                    approx_kl = th.mean((th.exp(log_ratio) - 1) - log_ratio)
                    # PPD: approx_kl + 0·loss is approx_kl exactly, or NaN when the loss is not
                    # finite: the check rides along with SB3's one read per minibatch.
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
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if self.clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
        # PPD: distillation diagnostics (documented in the README)
        self.logger.record("distill/lambda", lam)
        if kls:  # not when λ = 0: the teacher did not run
            self.logger.record("distill/kl", th.stack(kls).mean().item())
            self.logger.record("distill/loss", th.stack(distill_losses).mean().item())
            self.logger.record("distill/agreement", np.mean(agreements))
            self.logger.record("distill/weight_clipped_fraction", th.stack(weight_clipped).mean().item())
