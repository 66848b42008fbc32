"""Hyperparameter files in the rl_zoo3 style: YAML keyed by env id, with a ``default`` entry.

``distill.yml`` (shipped in ``ppdistill/configs``) holds one section per method under each
key; an environment's section overrides ``default`` key by key, and the ``teacher_kinds``
entry sits between them (settings for the teachers of one kind: DQN, SAC, ...). ``--hp
key=value`` on the command line overrides all of them; values are parsed as YAML (``1e-3``,
``null``, ``[64, 64]``, ``{net_arch: [32, 16]}``).

Every value of a known hyperparameter is checked against :data:`HYPERPARAMETERS` (its type
and range, finiteness for numbers, its choices) before any work: :func:`check_values`, run
by :class:`~ppdistill.experiment.spec.RunSpec` on a run's ``hp`` and ``finetune_hp`` and by
:func:`hyperparameters` on each section of a config file. Keys outside the table (and inside
:func:`valid_keys`) reach the algorithm unchecked.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import inspect
import math
import numbers
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from ppdistill.algorithms import (
    PPD,
    RecurrentPPD,
    RecurrentStudentDistill,
    RecurrentTeacherDistill,
    StudentDistill,
    TeacherDistill,
)
from ppdistill.core.errors import PPDistillError, one_line
from ppdistill.core.schedules import parse_schedule_name, zoo_schedule
from ppdistill.teachers.loading import KINDS

METHODS = ("ppd", "student-distill", "teacher-distill", "ppo")
STUDENT_POLICIES = ("feedforward", "lstm")
"""The student's network: ``feedforward`` (an MLP, or a CNN for images) or ``lstm``
(sb3-contrib's RecurrentPPO policies: a recurrent student for each method, RecurrentPPO for ppo)."""

# Keys that the run itself provides, or that are not hyperparameters of the model.
_RESERVED = {
    "self",
    "policy",
    "env",
    "teacher",
    "seed",
    "device",
    "verbose",
    "tensorboard_log",
    "_init_setup_model",
}
# Keys understood by the runner rather than the algorithm (see ppdistill.experiment.runner):
# n_envs (training environments), temperature (τ of a value-based teacher), target_std (σ_T
# of a deterministic teacher's target: TD3, DDPG, ARS), squashed_target (the centre of a SAC,
# TQC or CrossQ teacher's target: "moments" or "mode"), squashed_std_scale (its std's factor), lambda_schedule
# (PPD), normalize_reward (training rewards scaled by a running estimate of the return's
# std, SB3's VecNormalize without its observation part: the RL Zoo's ``normalize``),
# then_finetune / critic_warmup / finetune_critic_reset / finetune_hp / finetune_anchor /
# finetune_anchor_steps / finetune_keep_better (a distill-then-fine-tune pipeline of ppd, student-distill or
# teacher-distill), student_policy
# (feedforward or lstm: which class the method's student is). Each acts;
# tests/experiment/test_hp_keys.py checks that.
PIPELINE_KEYS = (
    "then_finetune",
    "critic_warmup",
    "finetune_critic_reset",
    "finetune_hp",
    "finetune_anchor",
    "finetune_anchor_steps",
    "finetune_keep_better",
)
RUNNER_KEYS = {
    "n_envs",
    "student_policy",
    "normalize_reward",
    "temperature",
    "target_std",
    "squashed_target",
    "squashed_std_scale",
    "lambda_schedule",
    *PIPELINE_KEYS,
}


def class_kwargs(hp: Mapping[str, Any], exclude: Collection[str] = ()) -> dict[str, Any]:
    """The keyword arguments of the method's class in resolved hyperparameters: the runner's
    keys (and ``exclude``) left out, rl_zoo3's ``lin_X`` turned into the schedule it names (SB3's
    classes take a number or a callable, not the config's string). The command line, the
    fine-tuning phase and :func:`~ppdistill.experiment.recommended.recommended` all build with it.

    :param hp: hyperparameters as :func:`hyperparameters` resolves them
    :param exclude: further keys the caller passes another way (e.g. ``policy_kwargs``)
    """
    return {k: zoo_schedule(v) for k, v in hp.items() if k not in RUNNER_KEYS and k not in exclude}


# Keys an rl_zoo3 user may bring that a run does not take, with what to do instead.
NOT_HYPERPARAMETERS = {
    "timesteps": "the budget is --timesteps (a suite's `timesteps`)",
    "n_timesteps": "the budget is --timesteps (a suite's `timesteps`)",
    "normalize": (
        "observations are not normalized by a VecNormalize around the student: a teacher's own "
        "statistics are applied to its inputs and given to the student inside its network "
        "(student_obs_norm); for the reward part, set normalize_reward: true"
    ),
}
# Methods whose student can be handed over to PPO after distilling.
PIPELINE_METHODS = ("ppd", "student-distill", "teacher-distill")
# A config's sections per env: a method's settings, or the fine-tuning PPO's (``finetune``).
CONFIG_SECTIONS = (*METHODS, "finetune")
TEACHER_KINDS = "teacher_kinds"
"""The config's entry of settings per teacher kind, between ``default`` and an env's entry."""
KIND_NAMES = tuple(kind.name for kind in KINDS)
"""The kinds ``teacher_kinds`` may name: the loader's (``q-values``, ``sac``, ``td3``, ...)."""


class ConfigError(PPDistillError, ValueError):
    """A configuration file or override is invalid."""


def algorithm_class(method: str, student_policy: str = "feedforward") -> type:
    """The SB3 class behind a method name.

    :param method: one of :data:`METHODS`
    :param student_policy: one of :data:`STUDENT_POLICIES` (``lstm``: the method's recurrent class)
    """

    classes: dict[str, type] = {
        "ppd": PPD,
        "student-distill": StudentDistill,
        "teacher-distill": TeacherDistill,
        "ppo": PPO,
    }
    recurrent: dict[str, type] = {
        "ppd": RecurrentPPD,
        "student-distill": RecurrentStudentDistill,
        "teacher-distill": RecurrentTeacherDistill,
        "ppo": RecurrentPPO,
    }
    if method not in classes:
        raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if student_policy not in STUDENT_POLICIES:
        raise ConfigError(
            f"unknown student_policy {student_policy!r}; choose one of {', '.join(STUDENT_POLICIES)} "
            "(--student-policy)"
        )
    return (recurrent if student_policy == "lstm" else classes)[method]


def _constructor_keys(cls: type) -> set[str]:
    """The keyword arguments a class's constructor takes (through its bases while they pass
    ``**kwargs`` on)."""
    keys: set[str] = set()
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters
        keys |= {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            break
    return keys


@functools.cache
def valid_keys(method: str, student_policy: str = "feedforward") -> frozenset[str]:
    """Hyperparameters a method accepts (its constructor's, PPO's for PPD, and the runner's); for
    an LSTM student, those that both its class and the feedforward one take, plus
    :data:`RECURRENT_STUDENT_KEYS` where its class takes them.

    :param method: one of :data:`METHODS`
    :param student_policy: one of :data:`STUDENT_POLICIES`
    """
    keys = _constructor_keys(algorithm_class(method))
    if student_policy != "feedforward":
        own = _constructor_keys(algorithm_class(method, student_policy))
        keys = (keys & own) | (own & RECURRENT_STUDENT_KEYS)
    return frozenset((keys - _RESERVED) | RUNNER_KEYS)


RECURRENT_STUDENT_KEYS = frozenset({"privileged_prediction"})
"""Hyperparameters only a recurrent student takes (the distillation methods' LSTM classes)."""


def student_policy_of(values: Mapping[str, Any]) -> str:
    """The ``student_policy`` of hyperparameters (``feedforward`` when absent or not a known one)."""
    value = values.get("student_policy", "feedforward")
    return value if value in STUDENT_POLICIES else "feedforward"


def coerce_numbers(value: Any) -> Any:
    """Numbers that YAML 1.1 leaves as strings (``1e-3``) become floats, recursively."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: coerce_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [coerce_numbers(v) for v in value]
    return value


def shipped_config_sha256() -> str:
    """SHA-256 of the shipped ``distill.yml``: which defaults a run was made with (a run's
    record carries it, so a suite run after defaults were frozen can show it)."""
    data = resources.files("ppdistill").joinpath("configs/distill.yml").read_bytes()
    return hashlib.sha256(data).hexdigest()


@functools.lru_cache(maxsize=1)
def _shipped_config() -> dict[str, Any]:
    text = resources.files("ppdistill").joinpath("configs/distill.yml").read_text()
    data = yaml.safe_load(text) or {}
    _check_sections(data, "the shipped distill.yml")
    return coerce_numbers(data)


def _read_yaml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return copy.deepcopy(_shipped_config())
    else:
        if path.is_dir():
            raise ConfigError(f"config file {path} is a directory; give a YAML file (--config FILE)")
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; give a YAML file (--config FILE)")
        try:
            text, where = path.read_text(), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {one_line(exc)}") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {one_line(exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must map env ids (and 'default') to per-method settings")
    _check_sections(data, where)
    return coerce_numbers(data)


def _check_sections(data: dict[str, Any], where: str) -> None:
    """Refuse a section that is not a method's or ``finetune``, and a teacher kind that no
    loader reads: misspelt, either would be ignored."""
    entries = dict(data)
    kinds = entries.pop(TEACHER_KINDS, None) or {}
    if not isinstance(kinds, dict):
        raise ConfigError(f"{where}: {TEACHER_KINDS} must map teacher kinds to per-method settings")
    for name, entry in kinds.items():
        if name not in KIND_NAMES:
            raise ConfigError(
                f"{where}: {TEACHER_KINDS} has {name!r}, which is not a teacher kind; "
                f"kinds are {', '.join(KIND_NAMES)} (DDPG teachers are td3's)"
            )
        if isinstance(entry, dict) and "finetune" in entry:
            raise ConfigError(
                f"{where}: {TEACHER_KINDS}.{name} has a finetune section; a pipeline's fine-tuning "
                "settings are the env's (put them under the env id)"
            )
    for key, entry in [*entries.items(), *((f"{TEACHER_KINDS}.{k}", v) for k, v in kinds.items())]:
        unknown = sorted(set(entry) - set(CONFIG_SECTIONS)) if isinstance(entry, dict) else []
        if unknown:
            valid = ", ".join(CONFIG_SECTIONS)
            raise ConfigError(f"{where}: entry {key} has a section {unknown[0]!r}; sections are {valid}")


def hyperparameters(
    env_id: str,
    method: str,
    config: Path | None = None,
    section: str | None = None,
    teacher_kind: str | None = None,
    vector_observations: bool = True,
) -> dict[str, Any]:
    """Merged hyperparameters of ``method`` on ``env_id``: default, then the teacher kind's
    entry (``teacher_kinds``), then the env's entry.

    :param env_id: environment id
    :param method: one of :data:`METHODS`
    :param config: a YAML file to use instead of the shipped ``distill.yml``
    :param section: the config's section to read, checked as ``method``'s keys (default:
        ``method``; ``finetune`` holds the fine-tuning PPO's settings)
    :param teacher_kind: the teacher's kind name (:func:`~ppdistill.teachers.loading.kind_of_source`),
        or None: no kind's settings
    :param vector_observations: whether the student reads a flat vector
        (:func:`~ppdistill.experiment.spec.student_reads_vector`); if not, a kind's
        ``student_obs_norm: running`` is not given (running statistics are for vectors: a DQN
        teacher's image student keeps the default)
    """
    section_name = section or method
    data = _read_yaml(config)
    merged: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    by_kind = data.get(TEACHER_KINDS) or {}
    if teacher_kind is not None and teacher_kind not in KIND_NAMES:
        raise ConfigError(f"teacher kind {teacher_kind!r} is not one of {', '.join(KIND_NAMES)}")
    layers = [("default", data.get("default"))]
    if teacher_kind is not None:
        layers.append((f"{TEACHER_KINDS}.{teacher_kind}", by_kind.get(teacher_kind)))
    if env_id not in ("default", TEACHER_KINDS):  # "default": recommended() without an env
        layers.append((env_id, data.get(env_id)))
    for key, entry in layers:
        entry = entry or {}
        if not isinstance(entry, dict):
            raise ConfigError(f"entry {key!r} of the config must map method names to settings")
        values = entry.get(section_name) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"entry {key}.{section_name} of the config must be a mapping")
        by_kind_for_vectors = key.startswith(TEACHER_KINDS) and values.get("student_obs_norm") == "running"
        if by_kind_for_vectors and not vector_observations:
            values = {k: v for k, v in values.items() if k != "student_obs_norm"}
        merged.update(values)
        sections[key] = values
    # student_policy often comes from the command line, after the config: keys of either
    # student pass here, and RunSpec refuses an LSTM-only key once it sees the merged settings
    check_keys(method, merged, "the config", any_student=True)
    name = str(config) if config is not None else "the shipped distill.yml"
    for key, values in sections.items():
        check_values(method, values, f"{name} (entry {key}.{section_name})")
    return merged


def finetune_hyperparameters(env_id: str, config: Path | None = None) -> dict[str, Any]:
    """The settings of a pipeline's fine-tuning PPO on ``env_id``: the config's ``ppo`` section,
    then its ``finetune`` section (in the shipped config, the RL Zoo's tuned PPO for the envs
    it has them for).

    :param env_id: environment id
    :param config: a YAML file to use instead of the shipped ``distill.yml``
    """
    merged = hyperparameters(env_id, "ppo", config)
    merged.update(hyperparameters(env_id, "ppo", config, section="finetune"))
    return merged


def parse_overrides(items: list[str], option: str = "--hp") -> dict[str, Any]:
    """``["lr=1e-3", "policy_kwargs={net_arch: [8]}"]`` → a dict, values parsed as YAML.

    :param items: ``key=value`` strings
    :param option: the command-line option they came from, for the error messages
        (``--hp``, ``--finetune-hp``)
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = coerce_numbers(yaml.safe_load(raw))
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"{option} {key.strip()}: cannot parse {raw!r} as a YAML value "
                f"(quote it for the shell, e.g. {option} '{key.strip()}=[64, 64]')"
            ) from exc
    return out


def check_keys(method: str, values: dict[str, Any], where: str, any_student: bool = False) -> None:
    """Raise :class:`ConfigError` naming the first unknown key.

    :param method: one of :data:`METHODS`
    :param values: the settings
    :param where: where they come from, for the message
    :param any_student: accept the keys of either student network (a config layer, whose
        ``student_policy`` may come later)
    """
    for key in values:
        if key in NOT_HYPERPARAMETERS:
            raise ConfigError(
                f"{key!r} in {where} is not a hyperparameter of a run: {NOT_HYPERPARAMETERS[key]}"
            )
    allowed = valid_keys(method, student_policy_of(values))
    if any_student:
        allowed = allowed | valid_keys(method, "lstm")
    unknown = sorted(set(values) - allowed)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        if unknown[0] in valid_keys(method, "lstm"):
            hint = " (it is for an LSTM student: student_policy lstm, --student-policy lstm)"
        raise ConfigError(
            f"unknown hyperparameter {unknown[0]!r} for {method} in {where}{hint}; "
            f"valid keys: {', '.join(sorted(allowed))}"
        )


# ---- the values of known hyperparameters -----------------------------------------------

# Activation functions that a YAML file or --hp can name (policy_kwargs' activation_fn).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= low


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _positive(value: Any) -> bool:
    return _is_real(value) and float(value) > 0


def _non_negative(value: Any) -> bool:
    return _is_real(value) and float(value) >= 0


def _probability(value: Any) -> bool:
    return _is_real(value) and 0.0 <= float(value) <= 1.0


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _schedule(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """A number that ``check`` accepts, rl_zoo3's ``lin_X`` with such an X, or (from Python) a
    schedule: a callable that is not a class."""

    def ok(v: Any) -> bool:
        if isinstance(v, str) and v.startswith("lin_"):
            try:
                return check(float(v[4:]))
            except ValueError:
                return False
        return check(v) or (callable(v) and not isinstance(v, str | type))

    return ok


def _or_none(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _class_or_none(value: Any) -> bool:
    return value is None or isinstance(value, type)


def _mapping_or_none(value: Any) -> bool:
    return value is None or isinstance(value, Mapping)


@dataclass(frozen=True)
class HpRule:
    """What a hyperparameter's value must be.

    :param what: the rule in words ("a whole number > 0")
    :param check: whether a value obeys it
    :param example: a valid value, shown in the message (None: only Python can give one)
    :param option: the command-line option that sets it besides ``--hp``
    :param choices: the values it takes, for a key with choices
    """

    what: str
    check: Callable[[Any], bool]
    example: Any
    option: str | None = None
    choices: tuple[str, ...] = ()


def _choice(*values: str) -> HpRule:
    return HpRule(f"one of {', '.join(values)}", lambda v: v in values, values[0], choices=values)


_BOOL = HpRule("true or false", _is_bool, True)
_PYTHON_CLASS = HpRule("a class (from Python only; YAML and --hp cannot give one)", _class_or_none, None)

# The table of known hyperparameters: every method's and the runner's keys with a value that
# can be checked without an environment. ``batch_size`` null (the whole rollout) is for
# student-distill and teacher-distill only; PPO and PPD also need batch_size > 1 and a rollout of
# more than one step while they normalize advantages (:func:`check_ppo_sizes`).
# ``policy_kwargs`` has its own rules (:func:`check_policy_kwargs`); lambda_schedule,
# then_finetune, critic_warmup and finetune_hp are checked by :func:`check_runner_keys`.
HYPERPARAMETERS: dict[str, HpRule] = {
    "learning_rate": HpRule("a finite number > 0 (or lin_X: X falling to 0)", _schedule(_positive), 0.0003),
    "n_steps": HpRule("a whole number > 0 (steps per environment per rollout)", lambda v: _is_int(v, 1), 64),
    "batch_size": HpRule("a whole number > 0", _or_none(lambda v: _is_int(v, 1)), 64),
    "n_epochs": HpRule("a whole number > 0", lambda v: _is_int(v, 1), 4),
    "n_envs": HpRule("a whole number > 0", lambda v: _is_int(v, 1), 8, option="--n-envs"),
    "gamma": HpRule("a number in [0, 1]", _probability, 0.99),
    "gae_lambda": HpRule("a number in [0, 1]", _probability, 0.95),
    "clip_range": HpRule("a finite number > 0 (or lin_X: X falling to 0)", _schedule(_positive), 0.2),
    "clip_range_vf": HpRule(
        "a finite number > 0, or null (no value clipping)", _or_none(_schedule(_positive)), 0.2
    ),
    "ent_coef": HpRule("a finite number >= 0", _non_negative, 0.0),
    "vf_coef": HpRule("a finite number >= 0", _non_negative, 0.5),
    "max_grad_norm": HpRule("a finite number > 0", _positive, 0.5),
    "target_kl": HpRule("a finite number > 0, or null (no early stop)", _or_none(_positive), 0.02),
    "privileged_prediction": HpRule(
        "a finite number >= 0 (0: no prediction of the teacher's observation)", _non_negative, 1.0
    ),
    "distill_lambda": HpRule("a finite number >= 0", _schedule(_non_negative), 3.0, option="--lambda"),
    "temperature": HpRule("a finite number > 0", _positive, 0.1, option="--temperature"),
    "target_std": HpRule("a finite number > 0 (a fraction of half the action range)", _positive, 0.1),
    "squashed_target": _choice("moments", "mode"),
    "squashed_std_scale": HpRule(
        "a finite number > 0 (1: the spread of the teacher's actions)", _positive, 1.0
    ),
    "sde_sample_freq": HpRule("a whole number >= -1 (-1: once per rollout)", lambda v: _is_int(v, -1), 4),
    "stats_window_size": HpRule("a whole number > 0", lambda v: _is_int(v, 1), 100),
    "use_sde": _BOOL,
    "normalize_reward": _BOOL,
    "normalize_advantage": _BOOL,
    "detach_ratio": _BOOL,
    "log_std_from_teacher": _BOOL,
    "monitor_wrapper": _BOOL,
    "teacher_deterministic": _BOOL,
    "kl_direction": _choice("forward", "reverse"),
    "student_obs_norm": _choice("teacher", "none", "running"),
    "value_target": _choice("returns", "teacher", "none"),
    "student_policy": HpRule(
        f"one of {', '.join(STUDENT_POLICIES)}",
        lambda v: v in STUDENT_POLICIES,
        "lstm",
        option="--student-policy",
        choices=STUDENT_POLICIES,
    ),
    "rollout_buffer_class": _PYTHON_CLASS,
    "rollout_buffer_kwargs": HpRule("a mapping, or null", _mapping_or_none, None),
}

# policy_kwargs: the keyword arguments of SB3's actor-critic policies that a run may set (the
# algorithm gives the spaces, the learning rate and use_sde), and the known ones' rules.
POLICY_KWARGS = frozenset(inspect.signature(ActorCriticPolicy.__init__).parameters) - {
    "self",
    "observation_space",
    "action_space",
    "lr_schedule",
    "use_sde",
}
# ... and those that only sb3-contrib's recurrent policies take (student_policy: lstm)
LSTM_POLICY_KWARGS = frozenset(inspect.signature(RecurrentActorCriticPolicy.__init__).parameters) - (
    POLICY_KWARGS | {"self", "observation_space", "action_space", "lr_schedule", "use_sde"}
)
_POLICY_RULES: dict[str, HpRule] = {
    "lstm_hidden_size": HpRule("a whole number > 0", lambda v: _is_int(v, 1), 64),
    "n_lstm_layers": HpRule("a whole number > 0", lambda v: _is_int(v, 1), 1),
    "shared_lstm": _BOOL,
    "enable_critic_lstm": _BOOL,
    "lstm_kwargs": HpRule("a mapping, or null", _mapping_or_none, None),
    "ortho_init": _BOOL,
    "full_std": _BOOL,
    "use_expln": _BOOL,
    "squash_output": _BOOL,
    "share_features_extractor": _BOOL,
    "normalize_images": _BOOL,
    "log_std_init": HpRule("a finite number", _is_real, 0.0),
    "features_extractor_kwargs": HpRule("a mapping, or null", _mapping_or_none, None),
    "optimizer_kwargs": HpRule("a mapping, or null", _mapping_or_none, None),
    "optimizer_class": _PYTHON_CLASS,
}


def _shown(value: Any, limit: int = 80) -> str:
    """A value as a message shows it: repr, shortened, on one line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_yaml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


class _Source:
    """Where values came from, for the message's advice: an option (``--hp``,
    ``--finetune-hp``) or a place in a file."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.option = source if source.startswith("--") else None

    def label(self, key: str) -> str:
        if self.option == "--finetune-hp":
            return f"finetune_hp {key}"
        return key if self.option else f"{key} in {self.source}"

    def fix(self, key: str, example: Any, option: str | None = None) -> str:
        if self.option is None:
            return f"fix it there, e.g. {key}: {example}"
        setting = f"{key}={example}"
        if " " in setting or "{" in setting:
            setting = f"'{setting}'"
        fix = f"e.g. {self.option} {setting}"
        if option is not None and self.option == "--hp":
            fix += f" (or {option} {example})"
        return fix


def _value_error(key: str, rule: HpRule, value: Any, source: _Source, hint: str = "") -> ConfigError:
    if rule.example is None:
        return ConfigError(f"{source.label(key)} must be {rule.what}, got {_shown(value)}{hint}")
    fix = source.fix(key, _as_yaml(rule.example), rule.option)
    return ConfigError(f"{source.label(key)} must be {rule.what}, got {_shown(value)}{hint}; {fix}")


def _hint(key: str, value: Any) -> str:
    schedules = ("learning_rate", "clip_range", "clip_range_vf")
    if isinstance(value, str) and key in schedules and value.startswith(("lin_", "linear_")):
        return " (rl_zoo3's schedules are read in the form lin_X, X a number > 0)"
    if isinstance(value, float) and not math.isfinite(value):
        return " (NaN and infinity are refused)"
    return ""


@functools.cache
def default_hyperparameter(method: str, key: str) -> Any:
    """The value ``method``'s class takes for ``key`` when the hyperparameters do not give it.

    :param method: one of :data:`METHODS`
    :param key: a constructor argument of the method's class (or of a base class it passes to)
    :raises KeyError: no class in the chain takes ``key``
    """
    for klass in algorithm_class(method).__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        param = inspect.signature(vars(klass)["__init__"]).parameters.get(key)
        if param is not None and param.default is not param.empty:
            return param.default
    raise KeyError(key)


def check_values(method: str, values: Mapping[str, Any], source: str = "--hp") -> None:
    """Check the values of the known hyperparameters in ``values`` against :data:`HYPERPARAMETERS`.

    :param method: one of :data:`METHODS` (PPO's rules apply to ``finetune_hp``)
    :param values: hyperparameters (keys outside the table are not checked)
    :param source: where they came from, for the message: ``--hp``, ``--finetune-hp``, or a
        place in a file (``config.yml (entry default.ppd)``)
    :raises ConfigError: one line naming the key, the value, the rule and what to give instead
    """
    where = _Source(source)
    for key, value in values.items():
        rule = HYPERPARAMETERS.get(key)
        if rule is not None and not rule.check(value):
            raise _value_error(key, rule, value, where, _hint(key, value))
        if key == "policy_kwargs":
            check_policy_kwargs(value, source, recurrent=student_policy_of(values) == "lstm")


def check_ppo_sizes(method: str, values: Mapping[str, Any], source: str = "--hp") -> None:
    """PPO's rules across keys, which SB3 asserts in its constructor: ``batch_size`` is not null,
    and while advantages are normalized (``normalize_advantage``, the default) a minibatch
    and a rollout (``n_steps × n_envs``) hold at least 2 samples.

    Checked by :func:`ppdistill.experiment.validation.validate_run` (a run's whole
    hyperparameters, each phase), not per key.

    :param method: one of :data:`METHODS` (no rule for student-distill and teacher-distill)
    :param values: a phase's hyperparameters (their values already checked by :func:`check_values`)
    :param source: as in :func:`check_values`
    :raises ConfigError: one line naming the key to change
    """
    if method not in ("ppo", "ppd"):
        return
    where = _Source(source)
    batch = values.get("batch_size", default_hyperparameter(method, "batch_size"))
    if batch is None:
        raise ConfigError(
            f"{where.label('batch_size')} null (the whole rollout in one batch) is for "
            f"student-distill and teacher-distill; {method} needs a whole number > 1, "
            f"{where.fix('batch_size', 64)}"
        )
    if values.get("normalize_advantage", True) is not True:
        return
    if batch < 2:
        raise ConfigError(
            f"{where.label('batch_size')} must be > 1 for {method}, which normalizes advantages "
            f"per minibatch, got {batch}; {where.fix('batch_size', 64)}"
        )
    steps = values.get("n_steps", default_hyperparameter(method, "n_steps"))
    n_envs = values.get("n_envs", 1)
    if steps * n_envs < 2:
        raise ConfigError(
            f"{method} normalizes advantages over a rollout of n_steps × n_envs = {steps} × "
            f"{n_envs} step; it needs at least 2: {where.fix('n_steps', 64)}"
        )


def check_policy_kwargs(value: Any, source: str = "--hp", recurrent: bool = False) -> None:
    """Check ``policy_kwargs``: a mapping of SB3 policy arguments, the known ones' values.

    ``net_arch``: a list of positive layer sizes, or ``{pi: [...], vf: [...]}`` (also in
    rl_zoo3's older ``[{pi: ..., vf: ...}]``); ``activation_fn``: a name of
    :data:`ACTIVATIONS` (from a file or the command line) or a ``torch.nn.Module`` class;
    ``features_extractor_class`` and ``optimizer_class``: classes, from Python only.

    :param value: the ``policy_kwargs`` of a run
    :param source: as in :func:`check_values`
    :param recurrent: for an LSTM student (which also takes :data:`LSTM_POLICY_KWARGS`)
    :raises ConfigError: one line naming the key and what to give instead
    """
    where = _Source(source)
    label = where.label("policy_kwargs")
    example = "{net_arch: [64, 64]}"
    if value is None:
        return
    if not isinstance(value, Mapping):
        hint = ""
        if isinstance(value, str) and value.strip().startswith("dict("):
            hint = " (rl_zoo3's Python expressions are not read: write it as YAML)"
        raise ConfigError(
            f"{label} must be a mapping like {example}, got {_shown(value)}{hint}; "
            f"{where.fix('policy_kwargs', example)}"
        )
    allowed = POLICY_KWARGS | LSTM_POLICY_KWARGS if recurrent else POLICY_KWARGS
    for key, item in value.items():
        if key in LSTM_POLICY_KWARGS and not recurrent:
            raise ConfigError(
                f"{label} {key} is for LSTM students: add --student-policy lstm (student_policy: lstm)"
            )
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            did_you_mean = f" (did you mean {close[0]}?)" if close else ""
            if key == "use_sde":
                did_you_mean = " (use_sde is a hyperparameter of its own: --hp use_sde=true)"
            valid = ", ".join(sorted(allowed))
            raise ConfigError(f"unknown key {key!r} in {label}{did_you_mean}; valid keys: {valid}")
        name = f"{label} {key}"
        if key == "net_arch":
            if not _is_net_arch(item):
                raise ConfigError(
                    f"{name} must be a list of layer sizes > 0 or {{pi: [...], vf: [...]}}, got "
                    f"{_shown(item)}; {where.fix('policy_kwargs', '{net_arch: [64, 64]}')}"
                )
        elif key == "activation_fn":
            if isinstance(item, str) and item.lower() in ACTIVATIONS:
                continue
            if isinstance(item, type) and issubclass(item, nn.Module):
                continue
            raise ConfigError(
                f"{name} must be one of {', '.join(ACTIVATIONS)} (or, from Python, a torch.nn.Module "
                f"class), got {_shown(item)}; {where.fix('policy_kwargs', '{activation_fn: relu}')}"
            )
        elif key == "features_extractor_class":
            if not _class_or_none(item):
                raise ConfigError(
                    f"{name} must be a class, which only the Python API can give (got {_shown(item)}); "
                    "drop it, or build the run from Python"
                )
        elif key in _POLICY_RULES and not _POLICY_RULES[key].check(item):
            rule = _POLICY_RULES[key]
            if rule.example is None:
                raise ConfigError(f"{name} must be {rule.what}, got {_shown(item)}")
            example = f"{{{key}: {_as_yaml(rule.example)}}}"
            raise ConfigError(
                f"{name} must be {rule.what}, got {_shown(item)}; {where.fix('policy_kwargs', example)}"
            )


def _is_layers(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(_is_int(n, 1) for n in value)


def _is_net_arch(value: Any) -> bool:
    if value is None or _is_layers(value):
        return True
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], Mapping):
        value = value[0]  # rl_zoo3's older form, which SB3 still reads
    return (
        isinstance(value, Mapping)
        and set(value) <= {"pi", "vf"}
        and all(_is_layers(layers) for layers in value.values())
    )


def resolve_policy_kwargs(policy_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``policy_kwargs`` as SB3 takes them: an activation function's name becomes its class.

    A run keeps the names (its spec is written to YAML and JSON); the model gets the classes.

    :param policy_kwargs: a run's ``policy_kwargs`` (checked by :func:`check_policy_kwargs`)
    """
    kwargs = dict(policy_kwargs or {})
    activation = kwargs.get("activation_fn")
    if isinstance(activation, str):
        kwargs["activation_fn"] = ACTIVATIONS[activation.lower()]
    return kwargs


def _count(value: Any, name: str) -> int:
    whole = isinstance(value, int) or (
        isinstance(value, float) and math.isfinite(value) and value == int(value)
    )
    if isinstance(value, bool) or not whole or value < 0:
        raise ConfigError(f"{name} must be a whole number of env steps >= 0, got {value!r}")
    return int(value)


def check_runner_keys(method: str, hp: dict[str, Any]) -> None:
    """Check the runner's own keys of a run (which methods take them, their values).

    :param method: one of :data:`METHODS`
    :param hp: the run's hyperparameters
    :raises ConfigError: naming the key and what to do
    """

    if hp.get("lambda_schedule") is not None:
        if method != "ppd":
            raise ConfigError(f"lambda_schedule applies to ppd only, not {method}")
        try:
            parse_schedule_name(hp["lambda_schedule"])
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    finetune = _count(hp.get("then_finetune") or 0, "then_finetune")
    if finetune and hp.get("student_policy") == "lstm":
        raise ConfigError(
            "then_finetune hands the student to PPO, which has no LSTM: not with student_policy lstm "
            "(PPD: lambda_schedule 'distill-then-finetune:FRACTION' fine-tunes the LSTM student in place)"
        )
    if finetune and method not in PIPELINE_METHODS:
        raise ConfigError(f"then_finetune applies to {', '.join(PIPELINE_METHODS)}, not {method}")
    for key in PIPELINE_KEYS[1:]:
        if hp.get(key) and not finetune:
            raise ConfigError(f"{key} needs then_finetune (the env steps of PPO fine-tuning)")
    warmup = _count(hp.get("critic_warmup") or 0, "critic_warmup")
    if warmup > finetune:
        raise ConfigError(f"critic_warmup ({warmup}) exceeds then_finetune ({finetune})")
    reset = hp.get("finetune_critic_reset")
    if reset is not None and not isinstance(reset, bool):
        raise ConfigError(f"finetune_critic_reset must be true or false, got {reset!r}")
    anchor = hp.get("finetune_anchor") or 0.0
    if isinstance(anchor, bool) or not isinstance(anchor, int | float) or not 0.0 <= anchor < float("inf"):
        raise ConfigError(
            f"finetune_anchor (the KL anchor's λ at the switch) must be a number >= 0, got {anchor!r}"
        )
    fading = _count(hp.get("finetune_anchor_steps") or 0, "finetune_anchor_steps")
    if fading > finetune:
        raise ConfigError(f"finetune_anchor_steps ({fading}) exceeds then_finetune ({finetune})")
    if fading and not anchor:
        raise ConfigError("finetune_anchor_steps needs finetune_anchor (the KL anchor's λ at the switch)")
    keep = hp.get("finetune_keep_better") or 0
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0 or keep == 1:
        raise ConfigError(
            f"finetune_keep_better must be a whole number of validation episodes >= 2 (0: off), got {keep!r}"
        )
    extra = hp.get("finetune_hp")
    if extra is not None:
        if not isinstance(extra, dict):
            raise ConfigError(
                f"finetune_hp must map PPO hyperparameters to values, got {_shown(extra)} "
                "(give them with --finetune-hp KEY=VALUE)"
            )
        check_keys("ppo", extra, "finetune_hp")
        check_values("ppo", extra, "--finetune-hp")


def run_hyperparameters(
    env_id: str,
    method: str,
    overrides: dict[str, Any] | None = None,
    config: Path | None = None,
    teacher_kind: str | None = None,
    vector_observations: bool = True,
) -> dict[str, Any]:
    """A run's hyperparameters: the config's section for ``method`` on ``env_id``, then ``overrides``.

    The config's layers: ``default``, then the teacher kind's entry (``teacher_kinds``), then
    the env's. A distill-then-fine-tune pipeline (``then_finetune`` > 0) also gets ``finetune_hp``
    completed: :func:`finetune_hyperparameters` for the env, then the ``finetune_hp`` given. Its
    ``gamma``, ``gae_lambda`` and ``normalize_reward`` become the distillation phase's too
    (where they shape the critic's value target, and for PPD its reward term), unless
    ``overrides`` set them: the critic learned while distilling is then the one PPO needs, on
    the same reward scale.

    :param env_id: environment id
    :param method: one of :data:`METHODS`
    :param overrides: values replacing the config's (``--hp``, a suite's ``hp``)
    :param config: a YAML file to use instead of the shipped ``distill.yml``
    :param teacher_kind: the teacher's kind name, for the config's ``teacher_kinds`` entry
    :param vector_observations: whether the student reads a flat vector, as in
        :func:`hyperparameters`
    """
    overrides = dict(overrides or {})
    hp = hyperparameters(
        env_id, method, config, teacher_kind=teacher_kind, vector_observations=vector_observations
    )
    if overrides.get("then_finetune", hp.get("then_finetune")):
        finetune = finetune_hyperparameters(env_id, config)
        finetune.update(hp.get("finetune_hp") or {})
        finetune.update(overrides.get("finetune_hp") or {})
        hp.update({k: finetune[k] for k in ("gamma", "gae_lambda", "normalize_reward") if k in finetune})
        hp.update(overrides)
        hp["finetune_hp"] = finetune
    else:
        hp.update(overrides)
    return hp
