"""A run's definition: everything that decides what it trains and how it is scored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ppdistill.core.errors import PPDistillError
from ppdistill.experiment.config import (
    check_keys,
    check_runner_keys,
)


@dataclass
class RunSpec:
    """Everything that defines a run.

    :param env_id: environment id
    :param method: "ppd", "student-distill", "teacher-distill" or "ppo" (from scratch)
    :param teacher: path of the teacher (also used by "ppo" for the student size and the ratio)
    :param timesteps: environment steps
    :param student: "smaller", "same", "larger" or a comma list of hidden sizes
    :param seed: seed of the model, the training envs and (offset) the evaluation envs
    :param hp: hyperparameters (from :func:`ppdistill.experiment.config.hyperparameters`, overrides applied)
    :param eval_freq: env steps between evaluations (0: ten evaluations per run)
    :param eval_episodes: episodes per periodic evaluation
    :param final_episodes: episodes of the final evaluation (student and teacher)
    :param deterministic: evaluate with the policy's mode
    :param tensorboard: TensorBoard log folder

    ``hp`` may hold the runner's keys besides the algorithm's: ``n_envs``, ``temperature``
    (DQN teachers), ``lambda_schedule`` (PPD), and for a distill-then-fine-tune pipeline
    ``then_finetune`` (env steps of PPO after ``timesteps`` of distillation),
    ``critic_warmup`` and ``finetune_hp`` (the fine-tuning PPO's complete hyperparameters;
    absent, the shipped config's ``ppo`` section for the env;
    :func:`ppdistill.experiment.config.run_hyperparameters` builds it from a config and overrides).
    """

    env_id: str
    method: str
    teacher: str
    timesteps: int
    student: str = "smaller"
    seed: int = 0
    hp: dict[str, Any] = field(default_factory=dict)
    eval_freq: int = 0
    eval_episodes: int = 10
    final_episodes: int = 20
    deterministic: bool = True
    tensorboard: str | None = None

    def __post_init__(self) -> None:
        if int(self.timesteps) <= 0:
            raise PPDistillError(f"timesteps must be positive, got {self.timesteps}")
        check_keys(self.method, self.hp, "the hyperparameters")
        check_runner_keys(self.method, self.hp)

    @property
    def finetune_steps(self) -> int:
        """Env steps of PPO fine-tuning after the distillation (0: not a pipeline)."""
        return int(self.hp.get("then_finetune") or 0)

    @property
    def total_timesteps(self) -> int:
        """Env steps of the whole run, both phases of a pipeline."""
        return int(self.timesteps) + self.finetune_steps
