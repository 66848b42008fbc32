"""What PPD, MaskablePPD and RecurrentPPD share: λ decided once per rollout, and PPO's update
with the distillation term added to each minibatch's loss.

:class:`ProximalDistillation` is mixed in before the SB3 class (``PPO``, ``MaskablePPO`` or
``RecurrentPPO``). Its :meth:`~ProximalDistillation.train` follows those classes' ``train``
line for line, so that λ = 0 reproduces each of them bit for bit (the tests say so); lines
that differ are marked ``# PPD:``. What differs between the three students is in two hooks:
``_minibatch_forward`` (the student's distribution and values on a minibatch, and the mask of
the steps that count: a recurrent student's minibatch has padded steps) and
:meth:`~ProximalDistillation._kl_targets` (a maskable student compares masked distributions).
The masked means are RecurrentPPO's; without a mask every term is PPO's own expression.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F

from ppdistill.algorithms.base import DistillationMixin, counted
from ppdistill.algorithms.guards import nonfinite_loss
from ppdistill.core.distributions import params_from_distribution
from ppdistill.core.losses import action_agreement, distillation_kl, ppd_term
from ppdistill.core.schedules import Schedule, as_schedule


class ProximalDistillation(DistillationMixin):
    """PPO's update plus λ · mean(max(ρ, 1−ε) · KL(π_T ‖ π_θ)), for any PPO-family student."""

    # provided by SB3's PPO family
    policy: Any
    rollout_buffer: Any
    n_epochs: int
    batch_size: int
    clip_range: Any
    clip_range_vf: Any
    normalize_advantage: bool
    ent_coef: float
    vf_coef: float
    max_grad_norm: float
    target_kl: float | None
    verbose: int
    logger: Any
    _n_updates: int
    _current_progress_remaining: float
    num_timesteps: int
    ep_info_buffer: Any
    _update_learning_rate: Any

    def _init_lambda(self, distill_lambda: float | Schedule, detach_ratio: bool) -> None:
        """Set λ (a float or a schedule of ``progress_remaining``) and the ratio's gradient rule."""
        self.distill_lambda = distill_lambda
        self.lambda_schedule = as_schedule(distill_lambda)
        self._lambda: float | None = None
        self.detach_ratio = detach_ratio

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
        # λ is decided once per rollout; with λ = 0 (e.g. the fine-tuning phase of a
        # distill-then-fine-tune schedule) the teacher is not run at all.
        self._lambda = self._next_lambda()
        if self._lambda == 0.0:
            rollout_buffer.skip_teacher()
            # a recurrent teacher not run loses track of its episodes: it starts afresh if λ returns
            self._teacher_state = None
            # only ever before the first update: never overwrite a trained std
            self._log_std_initialized = True
            return
        super()._store_teacher_outputs(rollout_buffer)

    def _kl_targets(
        self, batch: Any, distribution: Distribution, mask: th.Tensor | None
    ) -> tuple[th.Tensor, th.Tensor]:
        """The teacher's and the student's distribution parameters on the steps that count."""
        assert batch.teacher_params is not None
        teacher, student = batch.teacher_params, params_from_distribution(distribution)
        return counted(teacher, mask), counted(student, mask)

    def train(self) -> None:
        """The SB3 class's update with the distillation term added to each minibatch's loss."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)
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
        auxiliary_errors: list[th.Tensor] = []
        approx_kl_divs: list[float] = []

        continue_training = True
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for batch in self.rollout_buffer.get(self.batch_size):
                actions = batch.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = batch.actions.long().flatten()

                # PPD: one forward pass gives log-probs, values, entropy and the distribution for the KL
                distribution, values, mask = self._minibatch_forward(batch, True)
                assert values is not None
                log_prob = distribution.log_prob(actions)
                entropy = distribution.entropy()
                values = values.flatten()

                advantages = batch.advantages
                counted_advantages = counted(advantages, mask)
                if self.normalize_advantage and len(counted_advantages) > 1:
                    advantages = (advantages - counted_advantages.mean()) / (counted_advantages.std() + 1e-8)

                ratio = th.exp(log_prob - batch.old_log_prob)
                policy_loss_1 = advantages * ratio
                policy_loss_2 = advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
                policy_loss = -counted(th.min(policy_loss_1, policy_loss_2), mask).mean()
                pg_losses.append(policy_loss.item())
                clip_fractions.append(counted((th.abs(ratio - 1) > clip_range).float(), mask).mean().item())

                if self.clip_range_vf is None:
                    values_pred = values
                else:
                    values_pred = batch.old_values + th.clamp(
                        values - batch.old_values, -clip_range_vf, clip_range_vf
                    )
                if mask is None:
                    value_loss = F.mse_loss(batch.returns, values_pred)
                else:
                    value_loss = th.mean(((batch.returns - values_pred) ** 2)[mask])
                value_losses.append(value_loss.item())

                if entropy is None:
                    entropy_loss = -counted(-log_prob, mask).mean()
                else:
                    entropy_loss = -counted(entropy, mask).mean()
                entropy_losses.append(entropy_loss.item())

                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
                if lam > 0:  # PPD: + λ · mean(max(ρ, 1−ε) · KL(π_T ‖ π_θ)) over the steps that count
                    teacher_params, student_params = self._kl_targets(batch, distribution, mask)
                    kl = distillation_kl(self.action_space, teacher_params, student_params, self.kl_direction)
                    term = ppd_term(kl, counted(ratio, mask), clip_range, detach_ratio=self.detach_ratio)
                    loss = loss + lam * term.loss
                    kls.append(term.kl)
                    weight_clipped.append(term.clipped_fraction)
                    distill_losses.append(lam * term.loss.detach())
                    if epoch == 0:  # agreement of the policy that collected the rollout; once is enough
                        agreements.append(action_agreement(self.action_space, teacher_params, student_params))
                auxiliary = self._auxiliary_loss(batch, mask)  # PPD: a privileged prediction, say
                if auxiliary is not None:
                    loss = loss + auxiliary[0]
                    auxiliary_errors.append(auxiliary[1])

                with th.no_grad():
                    log_ratio = log_prob - batch.old_log_prob
                    approx_kl = counted((th.exp(log_ratio) - 1) - log_ratio, mask).mean()
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
        # PPD: distillation diagnostics (docs/metrics.md)
        self.logger.record("distill/lambda", lam)
        if kls:  # not when λ = 0: the teacher did not run
            self.logger.record("distill/kl", th.stack(kls).mean().item())
            self.logger.record("distill/loss", th.stack(distill_losses).mean().item())
            self.logger.record("distill/agreement", np.mean(agreements))
            self.logger.record("distill/weight_clipped_fraction", th.stack(weight_clipped).mean().item())
        if auxiliary_errors:
            self.logger.record("distill/privileged_prediction_mse", th.stack(auxiliary_errors).mean().item())
