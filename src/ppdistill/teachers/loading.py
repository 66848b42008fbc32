"""load_teacher: a frozen teacher from an SB3 zip, an rl-zoo folder or a callable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy

from ppdistill.core.errors import ModelLoadError, PPDistillError, TeacherLoadError, one_line
from ppdistill.core.finite import first_nonfinite_named
from ppdistill.core.spaces import check_spaces_compatible
from ppdistill.envs.ids import canonical_env_id
from ppdistill.envs.make import env_spaces
from ppdistill.envs.recipe import EnvRecipe
from ppdistill.networks.forward import TensorObs
from ppdistill.networks.normalization import NormalizedFlattenExtractor, RunningNormalizedFlattenExtractor
from ppdistill.teachers import actor_critic, external, hub, maskable, offpolicy, q_values, recurrent
from ppdistill.teachers.base import BuildOptions, Teacher, TeacherKind
from ppdistill.teachers.callable import CallableTeacher
from ppdistill.teachers.q_values import DEFAULT_Q_TEMPERATURE
from ppdistill.teachers.sb3_zip import (
    construct_policy,
    decode_entry,
    load_policy_state,
    read_sb3_zip,
    read_vecnormalize,
    space_from_record,
)
from ppdistill.teachers.zoo_folder import Located, env_recipe, locate


def load_agent(
    source: str | Path | Callable[[TensorObs], th.Tensor],
    env_id: str | None = None,
    *,
    temperature: float = DEFAULT_Q_TEMPERATURE,
    vecnormalize: str | Path | None = None,
    observation_space: spaces.Space | None = None,
    action_space: spaces.Space | None = None,
    value_fn: Callable[[TensorObs], th.Tensor] | None = None,
    device: th.device | str = "cpu",
    trust_pickle: bool = False,
    target_std: float = 0.1,
    role: str = "model",
    output: str | None = None,
    squashed_target: str = "moments",
    squashed_std_scale: float = 1.0,
) -> Teacher:
    """Load a frozen policy: a teacher, a student, or any SB3 agent, as a :class:`Teacher`
    (the interface every loaded policy has: distribution parameters, ``predict``).

    :func:`load_teacher` is this with ``role="teacher"``; export and compare read students
    with ``role="student"``. The role only names the file in error messages.

    Accepts an SB3 zip of an actor-critic algorithm (PPO, A2C, TRPO) or a value-based one
    (DQN, QR-DQN), an rl-zoo run folder (zip + ``config.yml`` + ``vecnormalize.pkl``), zips
    pickled with the old ``gym`` package, or a plain callable from observation tensors to
    distribution parameters (see :mod:`ppdistill.core.distributions` for the layout).

    Models from outside SB3 zips (:mod:`ppdistill.teachers.external`): a torch module or
    callable with ``output=``, a TorchScript file (``.pt``, ``.ts``; only with
    ``trust_pickle=True``) or an ONNX file (``.onnx``; one made by ``ppdistill export``
    declares its output); and ``hf://ORG/NAME[@REVISION]``, a model in the Hugging Face Hub's
    SB3 layout, read from the local Hub cache and never downloaded (:mod:`ppdistill.teachers.hub`).

    :param source: path to a zip, folder, ONNX or TorchScript file, ``hf://ORG/NAME``, or a
        callable (a torch module)
    :param env_id: environment the teacher will be used on; its spaces are checked against
        the teacher's. Legacy ids (``LunarLander-v2``) are mapped to today's. When omitted,
        an rl-zoo folder's ``args.yml`` names it.
    :param temperature: τ of softmax(Q/τ) for value-based teachers
    :param vecnormalize: a ``vecnormalize.pkl`` to use. Without it, the statistics saved with
        the model are found: ``<stem>.vecnormalize.pkl`` beside the zip (``ppdistill teacher
        train``), or an rl-zoo run folder's; a ppdistill student never takes a
        ``vecnormalize.pkl`` that merely lies beside it (it carries its normalization in its
        network), and a network that normalizes its inputs takes none
    :param observation_space: for a callable teacher without ``env_id``
    :param action_space: for a callable teacher without ``env_id``
    :param value_fn: for a callable teacher: observations → values
    :param device: where the teacher runs (distillation algorithms move it to the student's device)
    :param trust_pickle: allow arbitrary unpickling (cloudpickle) of the entries the allow-list
        refuses, for zips with custom classes. Only for files you trust: a pickle can run any
        code. The command line never sets it.
    :param target_std: TD3/DDPG teachers: std of the Gaussian target around the teacher's
        action, as a fraction of half the action range (see :mod:`ppdistill.teachers.offpolicy`)
    :param role: what the file is for, in error messages ("teacher", "student", "model")
    :param squashed_target: SAC/TQC/CrossQ teachers: the target Gaussian's mean, "moments"
        (the mean of the squashed actions, with their std) or "mode" (the teacher's
        deterministic action ``tanh(μ)``, with the same std); see :mod:`ppdistill.teachers.offpolicy`
    :param squashed_std_scale: SAC/TQC/CrossQ teachers: the target's std times this (1: the
        spread of the teacher's actions; below 1, a narrower target, and so a student with a
        narrower std)
    :param output: what an external model returns: "logits", "q-values", "gaussian" or
        "deterministic" (see :mod:`ppdistill.teachers.external`). Required for a TorchScript
        file and for ONNX files not made by ``ppdistill export``; a callable without it
        returns the flat parameters, as always
    :return: the policy, frozen, in eval mode
    """
    # Models from outside SB3 zips: the Hub's cache resolves to an SB3 zip read below (the
    # allow-list reader, with the snapshot's vec_normalize.pkl); modules, TorchScript and
    # ONNX files with a declared output kind are read by teachers/external.py.
    if hub.is_hub_source(source):
        cached = hub.locate_in_cache(source, role)  # type: ignore[arg-type]
        source, env_id = cached.zip_path, env_id or cached.env_id
        vecnormalize = vecnormalize if vecnormalize is not None else cached.vecnormalize
    if external.is_external(source, output):
        loaded = external.load_external(
            source, output, env_id, observation_space=observation_space, action_space=action_space,
            temperature=temperature, target_std=target_std, vecnormalize=vecnormalize,
            trust_pickle=trust_pickle, role=role,
        )  # fmt: skip
        return loaded.to(device).freeze()
    if output is not None:
        raise ModelLoadError(
            f"output= declares what a module, TorchScript or ONNX model returns; {source} is an SB3 "
            "model, which says what it is: drop output="
        )

    env_obs = env_act = None
    if env_id is not None:
        env_obs, env_act = env_spaces(env_id)

    if callable(source) and not isinstance(source, str | Path):
        obs_space = observation_space or env_obs
        act_space = action_space or env_act
        if obs_space is None or act_space is None:
            raise ModelLoadError(f"a callable {role} needs env_id=, or observation_space= and action_space=")
        teacher: Teacher = CallableTeacher(
            source, obs_space, act_space, value_fn=value_fn, info={"kind": "callable", "env_id": env_id}
        )
        return teacher.to(device).freeze()

    path = Path(source).expanduser()
    try:
        teacher = _load_from_file(
            path, env_id, env_obs, env_act, temperature, vecnormalize, trust_pickle, target_std, role,
            squashed_target, squashed_std_scale,
        )  # fmt: skip
    except PPDistillError:
        raise
    except Exception as exc:  # anything a damaged or hostile file provokes besides our own checks
        raise ModelLoadError(
            f"{path} cannot be loaded as a {role} ({one_line(exc)}); the file is damaged or unsupported"
        ) from exc
    return teacher.to(device).freeze()


def load_teacher(
    source: str | Path | Callable[[TensorObs], th.Tensor], env_id: str | None = None, **kwargs: Any
) -> Teacher:
    """Load a frozen teacher.

    Accepts an SB3 zip of an actor-critic algorithm (PPO, A2C, TRPO, RecurrentPPO), a
    value-based one (DQN, QR-DQN) or an off-policy one (SAC, TQC, CrossQ, TD3, DDPG, ARS; see
    :data:`KINDS`), an rl-zoo run folder (zip + ``config.yml``
    + ``vecnormalize.pkl``), zips pickled with the old ``gym`` package, or a plain callable
    from observation tensors to distribution parameters (see :mod:`ppdistill.core.distributions`
    for the layout). Every keyword of :func:`load_agent` applies (``temperature``,
    ``vecnormalize``, ``observation_space``, ``action_space``, ``value_fn``, ``device``,
    ``trust_pickle``, ``target_std``, ``squashed_target``, ``squashed_std_scale``).

    :param source: path to a zip or folder, or a callable
    :param env_id: environment the teacher will be used on (its spaces are checked)
    :param kwargs: as in :func:`load_agent`
    :raises TeacherLoadError: in one line, when the teacher cannot be used
    :return: the teacher, frozen, in eval mode
    """
    try:
        return load_agent(source, env_id, role="teacher", **kwargs)
    except ModelLoadError as exc:
        if isinstance(exc, TeacherLoadError):
            raise
        raise TeacherLoadError(str(exc)) from exc


TARGET_KEYWORDS = ("temperature", "target_std", "squashed_target", "squashed_std_scale")
"""The keywords of :func:`load_teacher` that shape a teacher's distillation target; a loaded
teacher's ``info`` records those its kind takes."""

# (the most specific first: a RecurrentActorCriticPolicy is an ActorCriticPolicy too)
KINDS: tuple[TeacherKind, ...] = (
    *recurrent.KINDS,
    *actor_critic.KINDS,
    *maskable.KINDS,
    *q_values.KINDS,
    *offpolicy.KINDS,
)
"""Every SB3 policy kind the loader reads: each teacher module declares its own."""


def kind_of(policy_class: type) -> TeacherKind | None:
    """The kind that reads ``policy_class`` (None: unsupported).

    :param policy_class: an SB3 policy class
    """
    return next((kind for kind in KINDS if kind.claims(policy_class)), None)


def _zip_data_of_source(source: object) -> tuple[dict[str, Any], Path] | None:
    """The JSON data of the SB3 zip a teacher source holds, and the zip's path; None for
    callables, ONNX or TorchScript files (raises PPDistillError where a zip cannot be read)."""
    if hub.is_hub_source(source):
        source = hub.locate_in_cache(source).zip_path  # type: ignore[arg-type]
    if not isinstance(source, str | Path) or external.is_external(source, None):
        return None
    zip_path = locate(Path(source).expanduser()).zip_path
    return read_sb3_zip(zip_path).data, zip_path


def kind_of_source(source: object) -> str | None:
    """The kind name of the SB3 model a teacher source holds (``"sac"``, ``"q-values"``, ...),
    read from its zip without rebuilding it; None for callables, ONNX or TorchScript files, and
    anything that cannot be read (loading it then says why, in its own words).

    The settings a teacher kind gets in ``distill.yml`` (``teacher_kinds``) are chosen with it.

    :param source: what :func:`load_agent` takes
    """
    try:
        found = _zip_data_of_source(source)
        if found is None:
            return None
        policy_class = decode_entry(found[0], "policy_class", found[1], trust_pickle=False)
    except PPDistillError:
        return None
    kind = kind_of(policy_class) if isinstance(policy_class, type) else None
    return kind.name if kind is not None else None


def has_vector_observations(source: object) -> bool:
    """Whether the SB3 model a teacher source holds reads a flat vector (a one-dimensional
    Box), read from its zip's JSON without unpickling anything; True where it cannot be told
    (callables, ONNX, an unreadable zip: the run's own checks then speak).

    A kind's settings for vector observations (``teacher_kinds``' running statistics) are not
    given to the students of an image or a Dict teacher (a DQN on Atari).

    :param source: what :func:`load_agent` takes
    """
    try:
        found = _zip_data_of_source(source)
    except PPDistillError:
        return True
    record = found[0].get("observation_space") if found is not None else None
    if not isinstance(record, dict):
        return True
    # SB3 writes a space's readable attributes beside its pickle: ':type:', and '_shape'
    # (gymnasium) or 'shape' (the old gym's)
    shape = record.get("_shape", record.get("shape"))
    if "Box" not in str(record.get(":type:", "")):
        return False
    return not isinstance(shape, list) or len(shape) == 1


def _uses_found_vecnormalize(located: Located, data: dict[str, Any], policy_kwargs: dict[str, Any]) -> bool:
    """Whether the ``vecnormalize.pkl`` found with a model is the model's own.

    - A network that normalizes its own inputs (a student given its teacher's statistics,
      :class:`~ppdistill.networks.NormalizedFlattenExtractor`, or keeping its own,
      :class:`~ppdistill.networks.RunningNormalizedFlattenExtractor`) takes raw observations: any
      statistics found beside it would normalize them twice.
    - A ppdistill student (its ``data`` records ``teacher_info``) carries its normalization in
      its network; statistics beside it are someone else's (a student saved in its teacher's
      folder). Only an rl-zoo run's own layout, ``<stem>/vecnormalize.pkl`` (a student trained
      inside the zoo with ``normalize: true``), is its own.
    - Any other model (a plain SB3 zip, an rl-zoo run) uses what was found, as SB3 and the
      zoo lay it out.
    """
    if located.vecnormalize is None:
        return False
    if policy_kwargs.get("features_extractor_class") in (
        NormalizedFlattenExtractor,
        RunningNormalizedFlattenExtractor,
    ):
        return False
    if "teacher_info" in data:
        return located.vecnormalize_place == "run-folder"
    return True


def _recipe_of(located: Located, data: dict[str, Any], env_id: str | None) -> EnvRecipe | None:
    """The environment a model acts in when it is more than ``env_id``: an rl-zoo run's
    wrappers (its config.yml), or the recipe a ppdistill student recorded (``env_recipe``)."""
    if env_id is None:
        return None
    recipe = None
    if located.env_settings:
        recipe = env_recipe(located, env_id)
    else:
        recorded = _recorded_recipe(located, data)
        recipe = replace(recorded, env_id=env_id) if recorded is not None else None
    return None if recipe is None or recipe.plain else recipe


def _recorded_recipe(located: Located, data: dict[str, Any]) -> EnvRecipe | None:
    """The recipe a ppdistill student recorded (``env_recipe``), read but not built."""
    if not isinstance(data.get("env_recipe"), dict):  # JSON in the zip's data, never a pickle
        return None
    try:
        recipe = EnvRecipe.from_dict(data["env_recipe"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{located.zip_path}: its env_recipe is damaged ({one_line(exc)})") from exc
    return None if recipe.plain else recipe


def _load_from_file(
    path: Path,
    env_id: str | None,
    env_obs: spaces.Space | None,
    env_act: spaces.Space | None,
    temperature: float,
    vecnormalize: str | Path | None,
    trust_pickle: bool,
    target_std: float,
    role: str,
    squashed_target: str = "moments",
    squashed_std_scale: float = 1.0,
) -> Teacher:
    located = locate(path, role)
    if env_id is None and located.env_id is not None:
        env_id = canonical_env_id(located.env_id)
        env_obs, env_act = env_spaces(env_id)
    contents = read_sb3_zip(located.zip_path)
    data = contents.data
    recipe = _recipe_of(located, data, env_id)
    if recipe is not None:
        # the observations it was trained on are its wrappers' (a time feature, a frame stack)
        env_obs, env_act = recipe.spaces()
    policy_class = decode_entry(data, "policy_class", located.zip_path, trust_pickle)
    if not isinstance(policy_class, type) or not issubclass(policy_class, BasePolicy):
        raise ModelLoadError(f"{located.zip_path}: 'policy_class' is not an SB3 policy class")

    # refused before rebuilding, so an unsupported kind is not reported as a damaged file
    kind = kind_of(policy_class)
    if kind is None:
        described = ", ".join(k.described for k in KINDS)
        raise ModelLoadError(
            f"{policy_class.__name__} {role}s are not supported: use a model of one of these kinds: "
            f"{described}; or wrap your policy in a callable"
        )
    policy_kwargs = decode_entry(data, "policy_kwargs", located.zip_path, trust_pickle) or {}
    if not isinstance(policy_kwargs, dict):
        raise ModelLoadError(f"{located.zip_path}: 'policy_kwargs' is not a mapping; the file is damaged")
    obs_space = act_space = None
    for key in ("observation_space", "action_space"):
        try:
            space = space_from_record(decode_entry(data, key, located.zip_path, trust_pickle=False))
        except Exception:  # unreadable: the environment's space is used (or we say so below)
            space = None
        if key == "observation_space":
            obs_space = space
        else:
            act_space = space
    where = f"{role} {located.zip_path.name}"
    if obs_space is not None and env_obs is not None:
        check_spaces_compatible("observation", obs_space, env_obs, where)
    if act_space is not None and env_act is not None:
        check_spaces_compatible("action", act_space, env_act, where)
    # Prefer the environment's own space objects (today's bounds); fall back on the stored ones.
    obs_space = env_obs or obs_space
    act_space = env_act or act_space
    if obs_space is None or act_space is None:
        raise ModelLoadError(
            f"{located.zip_path}: its spaces cannot be read; name its environment (--env ID; "
            "Python API: env_id=) so that they come from the environment"
        )

    if issubclass(policy_class, ActorCriticPolicy):
        policy_kwargs = {**policy_kwargs, "use_sde": bool(data.get("use_sde", False))}
    n_weights = sum(t.numel() for t in contents.policy_state.values())
    policy = construct_policy(policy_class, obs_space, act_space, policy_kwargs, n_weights=n_weights)
    load_policy_state(policy, contents.policy_state, located.zip_path)
    found = first_nonfinite_named(contents.policy_state.items())
    if found is not None:
        raise ModelLoadError(
            f"{located.zip_path}: the weight {found[0]} holds NaN or infinite values; the file is damaged"
        )
    policy.set_training_mode(False)

    if vecnormalize is not None:
        vec_path: Path | None = Path(vecnormalize).expanduser()
    elif _uses_found_vecnormalize(located, data, policy_kwargs):
        vec_path = located.vecnormalize
    else:
        vec_path = None
    normalizer, value_scale = read_vecnormalize(vec_path) if vec_path is not None else (None, 1.0)
    if normalizer is not None and normalizer.keys is None and isinstance(obs_space, spaces.Box):
        norm_shape = tuple(normalizer.stats()["mean"].shape)
        if norm_shape != obs_space.shape:
            raise ModelLoadError(
                f"{vec_path} normalizes observations of shape {norm_shape}, but the {role} takes "
                f"{obs_space.shape}: it belongs to another model; keep beside a model only the "
                "vecnormalize.pkl saved with it (Python API: vecnormalize= names the file)"
            )
    info: dict[str, Any] = {
        "path": str(located.zip_path.resolve()),
        "vecnormalize": str(vec_path.resolve()) if vec_path else None,
        "algo_policy": policy_class.__name__,
        "env_id": env_id,
        "sb3_version": contents.sb3_version,
    }
    if recipe is None and env_id is None:
        # said, not built: its spaces are the zip's, and its environment may not be installed here
        # (a deployment machine), but what it sees (a view) must not be lost
        recipe = _recorded_recipe(located, data)
    if recipe is not None:
        info["env"] = recipe.as_dict()  # how to build the environment it acts in
    options = BuildOptions(
        obs_space, act_space, info, normalizer, value_scale, temperature=temperature, target_std=target_std,
        squashed_target=squashed_target, squashed_std_scale=squashed_std_scale,
    )  # fmt: skip
    return kind.build(policy, options)
