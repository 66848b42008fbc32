"""The student model of a run: its size preset, policy and algorithm, on fresh environments."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from ppdistill.core.errors import PPDistillError
from ppdistill.core.schedules import Schedule
from ppdistill.core.seeds import SeedPlan
from ppdistill.envs.masked import positions_change_view, positions_view
from ppdistill.envs.recipe import EnvRecipe, RecipeError, raw_view
from ppdistill.envs.views import ObservationGroups, check_groups, check_teacher_reads, statistics_view
from ppdistill.experiment.checkpoints import (
    EpisodeRecorder,
)
from ppdistill.experiment.config import (
    algorithm_class,
    class_kwargs,
    resolve_policy_kwargs,
)
from ppdistill.experiment.spec import RunSpec
from ppdistill.networks.normalization import with_normalization
from ppdistill.networks.presets import image_student_kwargs, mlp_student_arch
from ppdistill.teachers.base import Teacher


def student_policy_kwargs(
    spec: RunSpec, teacher: Teacher, observation_space: spaces.Space | None = None
) -> dict[str, Any]:
    """Policy kwargs of the student: the preset unless the hp say otherwise.

    Images get the paper's CNN presets (:func:`~ppdistill.networks.image_student_kwargs`);
    flat observations an MLP sized relative to the teacher's. An LSTM student
    (``student_policy: lstm``) of a preset ``(h1, h2, ...)`` has an LSTM of ``h1`` units
    followed by the layers ``(h2, ...)``, so that its size follows the preset's.

    :param spec: the run
    :param teacher: the teacher
    :param observation_space: the student's observation space (default: the teacher's)
    """
    kwargs = resolve_policy_kwargs(spec.hp.get("policy_kwargs"))
    space = observation_space if observation_space is not None else teacher.observation_space
    if is_image_space(space):
        if "features_extractor_class" not in kwargs:
            try:
                kwargs = {**image_student_kwargs(spec.student), **kwargs}
            except ValueError as exc:
                raise PPDistillError(str(exc)) from exc
        return kwargs
    if "net_arch" not in kwargs:
        try:
            arch = mlp_student_arch(spec.student, teacher.hidden_layers or [64, 64])
        except ValueError as exc:
            raise PPDistillError(str(exc)) from exc
        if spec.student_policy == "lstm":
            kwargs.setdefault("lstm_hidden_size", arch[0])
            arch = arch[1:]
        kwargs["net_arch"] = {"pi": arch, "vf": list(arch)}
    return kwargs


def policy_name(observation_space: spaces.Space, recurrent: bool = False) -> str:
    """SB3's policy alias for an observation space (sb3-contrib's LSTM one with ``recurrent``)."""
    if isinstance(observation_space, spaces.Dict):
        name = "MultiInputPolicy"
    else:
        name = "CnnPolicy" if is_image_space(observation_space) else "MlpPolicy"
    return name.replace("Policy", "LstmPolicy") if recurrent else name


def teacher_env(spec: RunSpec, teacher: Teacher) -> EnvRecipe:
    """The environment the teacher acts in: ``spec.env_id`` with the teacher's own wrappers,
    frame stack and ``gym.make`` arguments (an rl-zoo run's), if it has any.

    :param spec: the run
    :param teacher: the teacher
    """
    recipe = teacher.env_recipe
    return replace(recipe, env_id=spec.env_id) if recipe is not None else EnvRecipe(spec.env_id)


def student_env(spec: RunSpec, teacher: Teacher) -> EnvRecipe:
    """The environment the student trains and is evaluated in: the teacher's, with the student
    seeing a part of its observation by ``spec.student_obs``: the environment's own (``raw``),
    its positions (``positions``), those and their change since the step before
    (``positions-change``), or observation groups, while the teacher reads its own
    (its groups: ``spec.teacher_obs``, else those of its observation space).

    :param spec: the run
    :param teacher: the teacher
    :raises PPDistillError: a view that does not fit, in one line (a group the student must not
        read, one the environment lacks, one the teacher needs and is not given)
    """
    recipe = teacher_env(spec, teacher)
    if spec.student_obs == "raw" and (recipe.wrappers or recipe.frame_stack):
        try:
            return replace(recipe, student_view=raw_view(recipe))
        except RecipeError as exc:
            raise PPDistillError(f"--student-obs raw: {exc}") from exc
    if spec.student_obs == "positions":
        return replace(recipe, student_view=positions_view(recipe))
    if spec.student_obs == "positions-change":
        return replace(recipe, student_view=positions_change_view(recipe))
    groups = spec.student_groups
    if groups is None:
        return recipe
    whole, _ = recipe.spaces()
    if not isinstance(whole, spaces.Dict):
        raise PPDistillError(
            f"--student-obs {spec.student_obs} names observation groups, but {spec.env_id}'s observation "
            f"is {whole}, not a Dict of groups; give teacher, raw, positions, positions-change or a Dict "
            "environment's groups"
        )
    teacher_groups = spec.teacher_groups
    if teacher_groups is None:
        if not isinstance(teacher.observation_space, spaces.Dict):
            raise PPDistillError(
                f"the teacher reads one observation ({teacher.observation_space}), not groups: say which "
                f"group of the environment's observation (groups {', '.join(whole.spaces)}) it reads "
                "with --teacher-obs KEY"
            )
        teacher_groups = tuple(teacher.observation_space.spaces)
    check_groups(whole, groups, teacher_groups)
    view = ObservationGroups(teacher_groups)
    check_teacher_reads(teacher.observation_space, view.space(whole), "the teacher", teacher_groups)
    return replace(
        recipe, student_view=ObservationGroups(groups), teacher_view=ObservationGroups(teacher_groups)
    )


def with_reward_normalization(env: VecEnv, hp: dict[str, Any]) -> VecEnv:
    """``env`` with the RL Zoo's reward normalization when ``hp`` asks for it (``normalize_reward``):
    SB3's VecNormalize without its observation part, which is inside the student's network.

    :param env: training environments
    :param hp: a run's (or a fine-tuning phase's) hyperparameters; ``gamma`` sets the return's discount
    """
    if not hp.get("normalize_reward"):
        return env
    return VecNormalize(env, norm_obs=False, norm_reward=True, gamma=float(hp.get("gamma", 0.99)))


def build_model(
    spec: RunSpec, teacher: Teacher, verbose: int = 0, distill_lambda: Schedule | None = None
) -> BaseAlgorithm:
    """The student model of ``spec.method``, on fresh training environments.

    :param spec: the run
    :param teacher: the teacher
    :param verbose: SB3 verbosity
    :param distill_lambda: PPD's λ schedule, replacing ``spec.hp["distill_lambda"]``
    """
    hp = class_kwargs(spec.hp, exclude={"policy_kwargs"})
    if distill_lambda is not None:
        hp["distill_lambda"] = distill_lambda
    n_envs = int(spec.hp.get("n_envs", 1))
    # EpisodeRecorder lets a checkpoint rebuild the envs' state exactly (by replay).
    seed = SeedPlan(spec.seed).training
    recipe = student_env(spec, teacher)
    env = recipe.make(n_envs=n_envs, seed=seed, wrapper_class=EpisodeRecorder)
    env = with_reward_normalization(env, spec.hp)
    student_space, _ = recipe.spaces()
    policy_kwargs = student_policy_kwargs(spec, teacher, student_space)
    cls = algorithm_class(spec.method, spec.student_policy)
    policy = policy_name(student_space, recurrent=spec.student_policy == "lstm")
    # SB3 runs MLPs faster on the CPU; CNNs go to a GPU when there is one
    device = "auto" if policy.startswith("Cnn") else "cpu"
    common = {"seed": seed, "verbose": verbose, "tensorboard_log": spec.tensorboard, "device": device}
    if spec.method == "ppo":
        # From scratch, but with the same input normalization the distilled students get.
        applies, cut = statistics_view(recipe.student_view, recipe.teacher_view)
        normalizer = teacher.obs_normalizer if applies else None
        policy_kwargs = with_normalization(policy_kwargs, normalizer, student_space, view=cut)
        return cls(policy, env, policy_kwargs=policy_kwargs, **hp, **common)
    return cls(policy, env, teacher=teacher, policy_kwargs=policy_kwargs, **hp, **common)
