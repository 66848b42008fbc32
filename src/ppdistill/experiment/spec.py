"""A run's definition: everything that decides what it trains and how it is scored."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

from ppdistill.experiment.config import (
    ConfigError,
    check_keys,
    check_runner_keys,
    check_values,
)
from ppdistill.networks.presets import MLP_SIZES, mlp_student_arch

STUDENT_OBS = ("teacher", "raw")


@dataclass
class RunSpec:
    """Everything that defines a run.

    :param env_id: environment id
    :param method: "ppd", "student-distill", "teacher-distill" or "ppo" (from scratch)
    :param teacher: path of the teacher (also used by "ppo" for the student size and the ratio)
    :param timesteps: environment steps
    :param student: "tiny" (MLP only), "smaller", "same", "larger" or a comma list of hidden sizes
    :param seed: seed of the model, the training envs and (offset) the evaluation envs
    :param hp: hyperparameters (from :func:`ppdistill.experiment.config.hyperparameters`, overrides applied)
    :param eval_freq: env steps between evaluations (0: ten evaluations per run)
    :param eval_episodes: episodes per periodic evaluation
    :param final_episodes: episodes of the final evaluation (student and teacher)
    :param deterministic: evaluate with the policy's mode
    :param tensorboard: TensorBoard log folder
    :param student_obs: what the student observes when the teacher's environment adds inputs
        for the teacher (an rl-zoo run's ``TimeFeatureWrapper`` or ``frame_stack``):
        ``"teacher"``, the same observation; ``"raw"``, the environment's own, without them
        (the teacher still reads its own; see :mod:`ppdistill.envs.recipe`)

    ``hp`` may hold the runner's keys besides the algorithm's: ``n_envs``, ``temperature``
    (DQN teachers), ``lambda_schedule`` (PPD), and for a distill-then-fine-tune pipeline
    ``then_finetune`` (env steps of PPO after ``timesteps`` of distillation),
    ``critic_warmup`` and ``finetune_hp`` (the fine-tuning PPO's complete hyperparameters;
    absent, the shipped config's ``ppo`` section for the env;
    :func:`ppdistill.experiment.config.run_hyperparameters` builds it from a config and overrides).

    Every value is checked when the spec is made (:class:`~ppdistill.experiment.config.ConfigError`,
    one line): the keys of ``hp`` and ``finetune_hp`` for the method, the values of the known
    ones (:data:`ppdistill.experiment.config.HYPERPARAMETERS`: types, ranges, finiteness,
    choices, ``policy_kwargs``), and the spec's own fields. What needs the environment or the
    teacher (a rollout within the budget, sizes that fit in memory) is
    :func:`ppdistill.experiment.validation.validate_run`.
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
    student_obs: str = "teacher"

    def __post_init__(self) -> None:
        if not _whole(self.timesteps, 1):
            raise ConfigError(
                f"timesteps must be positive, got {self.timesteps!r}: a whole number of env steps "
                "(--timesteps)"
            )
        if not isinstance(self.hp, dict):
            raise ConfigError(f"hp must map hyperparameters to values, got {self.hp!r}")
        check_keys(self.method, self.hp, "the hyperparameters")
        check_runner_keys(self.method, self.hp)
        check_values(self.method, self.hp)
        if not isinstance(self.student, str):
            raise ConfigError(f"student must be {', '.join(MLP_SIZES)} or hidden sizes like 64,64")
        try:
            mlp_student_arch(self.student, [64, 64])
        except ValueError as exc:
            raise ConfigError(f"{exc} (--student)") from exc
        if not _whole(self.eval_freq, 0):
            raise ConfigError(f"eval_freq must be a whole number of env steps >= 0, got {self.eval_freq!r}")
        for name in ("eval_episodes", "final_episodes"):
            if not _whole(getattr(self, name), 1):
                raise ConfigError(f"{name} must be a whole number > 0, got {getattr(self, name)!r}")
        if self.student_obs not in STUDENT_OBS:
            raise ConfigError(
                f"student_obs must be {' or '.join(STUDENT_OBS)}, got {self.student_obs!r} (--student-obs)"
            )

    @property
    def finetune_steps(self) -> int:
        """Env steps of PPO fine-tuning after the distillation (0: not a pipeline)."""
        return int(self.hp.get("then_finetune") or 0)

    @property
    def total_timesteps(self) -> int:
        """Env steps of the whole run, both phases of a pipeline."""
        return int(self.timesteps) + self.finetune_steps

    @property
    def effective_eval_freq(self) -> int:
        """Env steps between periodic evaluations: ``eval_freq``, or (0) a tenth of the whole run."""
        return int(self.eval_freq) or max(1, self.total_timesteps // 10)


def _whole(value: Any, low: int) -> bool:
    """A whole number >= ``low`` (an integral float too, as YAML's 1e5 is read)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        number = float(value)
        return number == int(number) and int(number) >= low
    except (OverflowError, ValueError):  # infinity, NaN
        return False
