"""Proximal Policy Distillation (Spigler 2024): PPO plus λ·E[max(ρ, 1−ε)·KL(π_T ‖ π_θ)]."""

from __future__ import annotations

import pathlib
from typing import Any

from stable_baselines3 import PPO
from stable_baselines3.common.type_aliases import GymEnv

from ppdistill.algorithms.base import StudentObsNorm
from ppdistill.algorithms.proximal import ProximalDistillation
from ppdistill.core.losses import KLDirection
from ppdistill.core.schedules import Schedule
from ppdistill.teachers.base import Teacher


class PPD(ProximalDistillation, PPO):  # type: ignore[misc]  # load() adds teacher=
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
        student's VecEnv does not normalize), and on a view of positions and their change
        (``positions_change_view``), which those statistics say nothing of, "running";
        "none" leaves the student's inputs alone; "running" gives it a normalization of its
        own, VecNormalize's transform with running statistics of the rollouts it was trained
        on, inside its network (for a teacher that has no normalization to give; a flat Box
        observation only)
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
        self._init_lambda(distill_lambda, detach_ratio)
        self._init_distillation(teacher, kl_direction, student_obs_norm, log_std_from_teacher)
        if _init_setup_model:
            self._setup_model()
