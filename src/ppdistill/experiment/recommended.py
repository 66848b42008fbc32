"""The measured settings, for Python users: what ``ppdistill distill`` runs with.

The classes keep SB3's and the paper's defaults (``PPD(...)`` is the paper's PPD at PPO's
settings, λ 1), so that a class is what its documentation says. The settings this project
measured (``ppdistill/configs/distill.yml``: for PPD λ 3, lr 1e-3, minibatch 64, 64-step
rollouts of 8 environments, γ 0.999, GAE 0.9) are one call away, the same ones the command
line and the benchmark harness use::

    from stable_baselines3.common.env_util import make_vec_env
    from ppdistill import PPD, recommended, recommended_n_envs

    env = make_vec_env("CartPole-v1", n_envs=recommended_n_envs("ppd"), seed=0)
    student = PPD("MlpPolicy", env, teacher=teacher, **recommended("ppd", "CartPole-v1"))

Any keyword given after them overrides one (``**recommended("ppd"), distill_lambda=1.0``), so
the paper's form stays one argument away. ``teacher=`` adds the settings the config gives the
teacher's kind (``teacher_kinds`` in ``distill.yml``: DQN, SAC, ... teachers), as the command
line does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ppdistill.core.spaces import is_flat_box
from ppdistill.experiment.config import METHODS, ConfigError, class_kwargs, hyperparameters
from ppdistill.teachers.base import Teacher
from ppdistill.teachers.loading import TARGET_KEYWORDS, has_vector_observations, kind_of_source


def _section(method: str, env_id: str | None, config: Path | None, teacher: object) -> dict[str, Any]:
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if isinstance(teacher, Teacher):
        # read from its file, as the command line does (a DDPG teacher's info says "ddpg", the
        # loader's kind is td3's); a model from outside SB3 zips has no kind's settings
        path = teacher.info.get("path") if "algo_policy" in teacher.info else None
        teacher_kind = kind_of_source(path) if isinstance(path, str) else None
        vector = is_flat_box(teacher.observation_space)
    else:
        teacher_kind = kind_of_source(teacher)
        vector = has_vector_observations(teacher)
    return hyperparameters(
        env_id or "default", method, config, teacher_kind=teacher_kind, vector_observations=vector
    )


def recommended(
    method: str = "ppd", env_id: str | None = None, config: Path | None = None, *, teacher: object = None
) -> dict[str, Any]:
    """The keyword arguments of ``method``'s class that ``ppdistill distill`` uses.

    :param method: ``"ppd"``, ``"student-distill"``, ``"teacher-distill"`` or ``"ppo"``
    :param env_id: an environment id with its own entry in the config (Pendulum-v1 has one);
        None: the settings every environment starts from
    :param config: a YAML file to read instead of the shipped ``distill.yml``
    :param teacher: the teacher (loaded, or what :func:`~ppdistill.load_teacher` takes), for
        its kind's settings; None: none
    :returns: a new dict (changing it changes nothing else); the runner's own keys are left
        out: ``n_envs`` (:func:`recommended_n_envs`) and how the teacher is read, ``temperature``,
        ``target_std``, ``squashed_target``, ``squashed_std_scale``
        (:func:`recommended_teacher_kwargs`); a ``lin_X`` value comes as the schedule
        :class:`~ppdistill.core.schedules.Linear` (X falling to 0)
    :raises ConfigError: an unknown method, or a config file that cannot be read
    """
    return class_kwargs(_section(method, env_id, config, teacher))


def recommended_n_envs(
    method: str = "ppd", env_id: str | None = None, config: Path | None = None, *, teacher: object = None
) -> int:
    """How many environments the settings of :func:`recommended` were measured with.

    :param method: as in :func:`recommended`
    :param env_id: as in :func:`recommended`
    :param config: as in :func:`recommended`
    :param teacher: as in :func:`recommended`
    """
    return int(_section(method, env_id, config, teacher).get("n_envs", 1))


def recommended_teacher_kwargs(
    method: str = "ppd", env_id: str | None = None, config: Path | None = None, *, teacher: object = None
) -> dict[str, Any]:
    """The keywords of :func:`~ppdistill.load_teacher` that the config sets (a DQN teacher's
    ``temperature``, a SAC teacher's ``squashed_target``, ...), for loading the teacher as the
    command line does: ``load_teacher(path, env_id, **recommended_teacher_kwargs(teacher=path))``.

    :param method: as in :func:`recommended`
    :param env_id: as in :func:`recommended`
    :param config: as in :func:`recommended`
    :param teacher: as in :func:`recommended` (a path here: the keywords are for loading it)
    """
    section = _section(method, env_id, config, teacher)
    # the config's keys that are load_teacher's keywords, not the class's
    return {k: section[k] for k in TARGET_KEYWORDS if k in section}
