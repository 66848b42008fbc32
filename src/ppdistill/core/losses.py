"""Distillation losses as pure functions of flat distribution parameters.

Every function here takes teacher and student parameters in the layout of
:mod:`ppdistill.core.distributions` and returns per-sample values, so that each one can be
checked against a hand computation (tests/test_losses.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch as th
import torch.nn.functional as F
from gymnasium import spaces

from ppdistill.core.distributions import split_gaussian

KLDirection = Literal["forward", "reverse"]


def _categorical_kl(p_logits: th.Tensor, q_logits: th.Tensor) -> th.Tensor:
    log_p = F.log_softmax(p_logits, dim=-1)
    log_q = F.log_softmax(q_logits, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def _bernoulli_kl(p_logits: th.Tensor, q_logits: th.Tensor) -> th.Tensor:
    # log p = logsigmoid(l), log(1 - p) = logsigmoid(-l): stable for large |logits|.
    p = th.sigmoid(p_logits)
    kl = p * (F.logsigmoid(p_logits) - F.logsigmoid(q_logits)) + (1 - p) * (
        F.logsigmoid(-p_logits) - F.logsigmoid(-q_logits)
    )
    return kl.sum(dim=-1)


def _gaussian_kl(p_params: th.Tensor, q_params: th.Tensor) -> th.Tensor:
    mu_p, log_std_p = split_gaussian(p_params)
    mu_q, log_std_q = split_gaussian(q_params)
    var_p = (2 * log_std_p).exp()
    var_q = (2 * log_std_q).exp()
    kl = log_std_q - log_std_p + (var_p + (mu_p - mu_q) ** 2) / (2 * var_q) - 0.5
    return kl.sum(dim=-1)


def kl_divergence(action_space: spaces.Space, p_params: th.Tensor, q_params: th.Tensor) -> th.Tensor:
    """KL(p ‖ q) per sample.

    Discrete: categorical KL. MultiDiscrete: sum of the components' KLs. MultiBinary: sum
    over bits of the Bernoulli KL. Box: sum over action dimensions of the diagonal
    Gaussian KL (pre-squash).

    :param action_space: the action space both distributions live on
    :param p_params: parameters of p, ``(batch, param_dim)``
    :param q_params: parameters of q, ``(batch, param_dim)``
    :return: tensor ``(batch,)``
    """
    if isinstance(action_space, spaces.Discrete):
        return _categorical_kl(p_params, q_params)
    if isinstance(action_space, spaces.MultiDiscrete):
        sizes = [int(n) for n in action_space.nvec]
        return th.stack(
            [
                _categorical_kl(p, q)
                for p, q in zip(th.split(p_params, sizes, dim=-1), th.split(q_params, sizes, dim=-1))
            ],
            dim=-1,
        ).sum(dim=-1)
    if isinstance(action_space, spaces.MultiBinary):
        return _bernoulli_kl(p_params, q_params)
    if isinstance(action_space, spaces.Box):
        return _gaussian_kl(p_params, q_params)
    raise ValueError(f"unsupported action space {action_space}")


def distillation_kl(
    action_space: spaces.Space,
    teacher_params: th.Tensor,
    student_params: th.Tensor,
    direction: KLDirection = "forward",
) -> th.Tensor:
    """Per-sample KL between teacher and student.

    :param action_space: shared action space
    :param teacher_params: teacher's parameters (no gradient needed)
    :param student_params: student's parameters (carry the gradient)
    :param direction: ``"forward"`` is KL(π_T ‖ π_θ) (the paper's, mode-covering);
        ``"reverse"`` is KL(π_θ ‖ π_T) (mode-seeking)
    :return: tensor ``(batch,)``
    """
    if direction == "forward":
        return kl_divergence(action_space, teacher_params, student_params)
    if direction == "reverse":
        return kl_divergence(action_space, student_params, teacher_params)
    raise ValueError(f"kl_direction must be 'forward' or 'reverse', got {direction!r}")


@dataclass
class PPDTerm:
    """The PPD distillation term of one minibatch and its diagnostics.

    :param loss: ``mean(max(ρ, 1−ε) · KL)``, to be multiplied by λ
    :param kl: mean raw KL (a detached scalar tensor: no device sync per minibatch)
    :param clipped_fraction: fraction of samples with ρ < 1−ε, i.e. whose weight was held at 1−ε
    """

    loss: th.Tensor
    kl: th.Tensor
    clipped_fraction: th.Tensor


def ppd_term(kl: th.Tensor, ratio: th.Tensor, clip_range: float, detach_ratio: bool = False) -> PPDTerm:
    """PPD's weighted KL: ``mean(max(ρ, 1−ε)·KL)``.

    Because KL ≥ 0, ``max(ρ, 1−ε)·KL = max(ρ·KL, clip(ρ, 1−ε, 1+ε)·KL)``: the pessimistic
    PPO-style bound with "advantage" −KL. With ``detach_ratio=False`` (the paper's form)
    the gradient also flows through ρ, a score-function term that pushes down the
    probability of actions in states where the KL is large.

    :param kl: per-sample KL, ``(batch,)``
    :param ratio: per-sample π_θ(a|s)/π_θ_old(a|s), ``(batch,)``
    :param clip_range: PPO's ε
    :param detach_ratio: stop the gradient through ρ
    :return: the loss and its diagnostics
    """
    if detach_ratio:
        ratio = ratio.detach()
    floor = 1.0 - clip_range
    weight = th.clamp(ratio, min=floor)
    loss = (weight * kl).mean()
    with th.no_grad():
        clipped = (ratio < floor).float().mean()
    return PPDTerm(loss=loss, kl=kl.detach().mean(), clipped_fraction=clipped)


def action_agreement(
    action_space: spaces.Space, teacher_params: th.Tensor, student_params: th.Tensor
) -> float:
    """How often the student's deterministic action matches the teacher's.

    Discrete / MultiDiscrete / MultiBinary: fraction of samples whose modes are equal
    (all components / all bits). Box: fraction of action dimensions where the student's
    mean lies within one teacher standard deviation of the teacher's mean.

    :param action_space: shared action space
    :param teacher_params: ``(batch, param_dim)``
    :param student_params: ``(batch, param_dim)``
    :return: a number in [0, 1]
    """
    with th.no_grad():
        if isinstance(action_space, spaces.Discrete):
            same = teacher_params.argmax(-1) == student_params.argmax(-1)
        elif isinstance(action_space, spaces.MultiDiscrete):
            sizes = [int(n) for n in action_space.nvec]
            parts = zip(th.split(teacher_params, sizes, -1), th.split(student_params, sizes, -1))
            same = th.stack([t.argmax(-1) == s.argmax(-1) for t, s in parts], -1).all(-1)
        elif isinstance(action_space, spaces.MultiBinary):
            same = ((teacher_params > 0) == (student_params > 0)).all(-1)
        elif isinstance(action_space, spaces.Box):
            mu_t, log_std_t = split_gaussian(teacher_params)
            mu_s, _ = split_gaussian(student_params)
            same = (mu_s - mu_t).abs() <= log_std_t.exp()
        else:
            raise ValueError(f"unsupported action space {action_space}")
        return float(same.float().mean().item())
