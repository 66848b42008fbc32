"""A run's definition: everything that decides what it trains and how it is scored."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

from ppdistill.core.spaces import is_flat_box
from ppdistill.experiment.config import (
    ConfigError,
    check_keys,
    check_runner_keys,
    check_values,
)
from ppdistill.networks.presets import MLP_SIZES, mlp_student_arch
from ppdistill.teachers.loading import has_vector_observations

STUDENT_OBS = ("teacher", "raw", "positions", "positions-change")
"""The words ``student_obs`` takes; anything else names observation groups (see :class:`RunSpec`)."""


def observation_groups(text: str) -> tuple[str, ...]:
    """``"policy,proprio"`` → ``("policy", "proprio")`` (a trailing comma makes one group of a
    word of :data:`STUDENT_OBS`: ``"teacher,"`` is the group named ``teacher``).

    :raises ConfigError: an empty name, or a name given twice
    """
    names = [part.strip() for part in text.split(",")]
    if names and names[-1] == "" and len(names) > 1:
        names = names[:-1]
    if not names or any(not n or " " in n for n in names) or len(set(names)) != len(names):
        raise ConfigError(
            f"observation groups must be distinct names separated by commas, like policy,privileged; "
            f"got {text!r}"
        )
    return tuple(names)


def student_reads_vector(teacher: object, env_id: str, student_obs: str = "teacher") -> bool:
    """Whether a run's student would read a flat vector (a one-dimensional Box), told before
    the run is built, for the settings that apply only then (a teacher kind's running
    statistics); True where it cannot be told (the run's own checks then speak).

    :param teacher: the teacher source (a path, a ``zoo:`` id), read without loading it
    :param env_id: the environment
    :param student_obs: what the student sees (:attr:`RunSpec.student_obs`)
    """
    if student_obs == "teacher":
        return has_vector_observations(teacher)
    if student_obs in ("positions", "positions-change"):
        return True  # views of a flat Box's entries, refused on anything else
    from ppdistill.envs.make import env_spaces
    from ppdistill.envs.views import ObservationGroups

    try:
        space = env_spaces(env_id)[0]
        if student_obs != "raw":
            space = ObservationGroups(observation_groups(student_obs)).space(space)
    except Exception:  # an env or groups that do not build: the run says why, in its own words
        return True
    return is_flat_box(space)


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
    :param student_obs: what the student observes: ``"teacher"``, the teacher's observation;
        ``"raw"``, the environment's own where the teacher's environment adds inputs for it (an
        rl-zoo run's ``TimeFeatureWrapper`` or ``frame_stack``; see :mod:`ppdistill.envs.recipe`);
        ``"positions"``, the positions of the state without its velocities
        (:mod:`ppdistill.envs.masked`); ``"positions-change"``, those positions and their change
        since the step before; or observation groups of a Dict observation, comma
        separated (``"policy"``; a trailing comma for one group named like a word above). The
        teacher reads its own observation in each case.
    :param teacher_obs: the observation groups the teacher reads, comma separated
        (``"policy,privileged"``), when the student reads groups too (None: the groups of the
        teacher's own observation space)

    ``hp`` may hold the runner's keys besides the algorithm's: ``n_envs``, ``temperature``
    (DQN teachers), ``target_std`` (TD3 teachers), ``squashed_target`` and
    ``squashed_std_scale`` (SAC teachers),
    ``lambda_schedule`` (PPD), and for a distill-then-fine-tune pipeline
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
    teacher_obs: str | None = None

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
        if not isinstance(self.student_obs, str) or not self.student_obs:
            raise ConfigError(
                f"student_obs must be {', '.join(STUDENT_OBS)} or observation groups, got "
                f"{self.student_obs!r} (--student-obs)"
            )
        if self.student_obs not in STUDENT_OBS:
            observation_groups(self.student_obs)
        if self.teacher_obs is not None:
            if not isinstance(self.teacher_obs, str):
                raise ConfigError(f"teacher_obs must name observation groups, got {self.teacher_obs!r}")
            observation_groups(self.teacher_obs)
            if self.student_groups is None:
                raise ConfigError(
                    "--teacher-obs names the groups the teacher reads when the student reads groups "
                    "too: give the student's with --student-obs KEYS"
                )

    @property
    def student_groups(self) -> tuple[str, ...] | None:
        """The observation groups the student reads (None: ``student_obs`` is a word of
        :data:`STUDENT_OBS`)."""
        return None if self.student_obs in STUDENT_OBS else observation_groups(self.student_obs)

    @property
    def teacher_groups(self) -> tuple[str, ...] | None:
        """The observation groups the teacher reads, when given."""
        return None if self.teacher_obs is None else observation_groups(self.teacher_obs)

    @property
    def student_policy(self) -> str:
        """The student's network: ``feedforward`` or ``lstm`` (the hyperparameter ``student_policy``)."""
        return str(self.hp.get("student_policy", "feedforward"))

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
