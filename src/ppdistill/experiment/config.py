"""Hyperparameter files in the rl_zoo3 style: YAML keyed by env id, with a ``default`` entry.

``distill.yml`` (shipped in ``ppdistill/configs``) holds one section per method under each
key; an environment's section overrides ``default`` key by key. ``--hp key=value`` on the
command line overrides both; values are parsed as YAML (``1e-3``, ``null``, ``[64, 64]``,
``{net_arch: [32, 16]}``).
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3 import PPO

from ppdistill.algorithms import PPD, StudentDistill, TeacherDistill
from ppdistill.core.errors import PPDistillError, one_line
from ppdistill.core.schedules import parse_schedule_name

METHODS = ("ppd", "student-distill", "teacher-distill", "ppo")

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
# n_envs (training environments), temperature (τ of a value-based teacher), lambda_schedule
# (PPD), then_finetune / critic_warmup / finetune_hp (a distill-then-fine-tune pipeline of
# student-distill or teacher-distill). Each acts; tests/experiment/test_hp_keys.py checks that.
RUNNER_KEYS = {
    "n_envs",
    "temperature",
    "lambda_schedule",
    "then_finetune",
    "critic_warmup",
    "finetune_hp",
}
# Keys an rl_zoo3 user may bring that a run does not take, with what to do instead.
NOT_HYPERPARAMETERS = {
    "timesteps": "the budget is --timesteps (a suite's `timesteps`)",
    "n_timesteps": "the budget is --timesteps (a suite's `timesteps`)",
    "normalize": (
        "the student does not train inside VecNormalize; a teacher's own VecNormalize statistics "
        "are applied to its inputs and given to the student inside its network (student_obs_norm)"
    ),
}
PIPELINE_KEYS = ("then_finetune", "critic_warmup", "finetune_hp")
# Methods whose student can be handed over to PPO after distilling.
PIPELINE_METHODS = ("student-distill", "teacher-distill")


class ConfigError(PPDistillError, ValueError):
    """A configuration file or override is invalid."""


def algorithm_class(method: str) -> type:
    """The SB3 class behind a method name.

    :param method: one of :data:`METHODS`
    """

    classes: dict[str, type] = {
        "ppd": PPD,
        "student-distill": StudentDistill,
        "teacher-distill": TeacherDistill,
        "ppo": PPO,
    }
    if method not in classes:
        raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return classes[method]


@functools.cache
def valid_keys(method: str) -> frozenset[str]:
    """Hyperparameters a method accepts (its constructor's, PPO's for PPD, and the runner's)."""
    cls = algorithm_class(method)
    keys: set[str] = set()
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters
        keys |= {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            break
    return frozenset((keys - _RESERVED) | RUNNER_KEYS)


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


@functools.lru_cache(maxsize=1)
def _shipped_config() -> dict[str, Any]:
    text = resources.files("ppdistill").joinpath("configs/distill.yml").read_text()
    return coerce_numbers(yaml.safe_load(text) or {})


def _read_yaml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return copy.deepcopy(_shipped_config())
    else:
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        text, where = path.read_text(), str(path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {one_line(exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must map env ids (and 'default') to per-method settings")
    return coerce_numbers(data)


def hyperparameters(env_id: str, method: str, config: Path | None = None) -> dict[str, Any]:
    """Merged hyperparameters of ``method`` on ``env_id``: default, then the env's entry.

    :param env_id: environment id
    :param method: one of :data:`METHODS`
    :param config: a YAML file to use instead of the shipped ``distill.yml``
    """
    data = _read_yaml(config)
    merged: dict[str, Any] = {}
    for key in ("default", env_id):
        section = data.get(key) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"entry {key!r} of the config must map method names to settings")
        values = section.get(method) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"entry {key}.{method} of the config must be a mapping")
        merged.update(values)
    check_keys(method, merged, "the config")
    return merged


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["lr=1e-3", "policy_kwargs={net_arch: [8]}"]`` → a dict, values parsed as YAML.

    :param items: ``key=value`` strings
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--hp expects key=value, got {item!r}")
        try:
            out[key.strip()] = coerce_numbers(yaml.safe_load(raw))
        except yaml.YAMLError as exc:
            raise ConfigError(f"--hp {key}: cannot parse {raw!r} as a value") from exc
    return out


def check_keys(method: str, values: dict[str, Any], where: str) -> None:
    """Raise :class:`ConfigError` naming the first unknown key."""
    for key in values:
        if key in NOT_HYPERPARAMETERS:
            raise ConfigError(
                f"{key!r} in {where} is not a hyperparameter of a run: {NOT_HYPERPARAMETERS[key]}"
            )
    allowed = valid_keys(method)
    unknown = sorted(set(values) - allowed)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(
            f"unknown hyperparameter {unknown[0]!r} for {method} in {where}{hint}; "
            f"valid keys: {', '.join(sorted(allowed))}"
        )


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 0:
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
    if finetune and method not in PIPELINE_METHODS:
        hint = " (PPD: lambda_schedule 'distill-then-finetune:FRACTION')" if method == "ppd" else ""
        raise ConfigError(f"then_finetune applies to {' and '.join(PIPELINE_METHODS)}, not {method}{hint}")
    for key in PIPELINE_KEYS[1:]:
        if hp.get(key) and not finetune:
            raise ConfigError(f"{key} needs then_finetune (the env steps of PPO fine-tuning)")
    warmup = _count(hp.get("critic_warmup") or 0, "critic_warmup")
    if warmup > finetune:
        raise ConfigError(f"critic_warmup ({warmup}) exceeds then_finetune ({finetune})")
    extra = hp.get("finetune_hp")
    if extra is not None:
        if not isinstance(extra, dict):
            raise ConfigError(f"finetune_hp must map PPO hyperparameters to values, got {extra!r}")
        check_keys("ppo", extra, "finetune_hp")


def run_hyperparameters(
    env_id: str, method: str, overrides: dict[str, Any] | None = None, config: Path | None = None
) -> dict[str, Any]:
    """A run's hyperparameters: the config's section for ``method`` on ``env_id``, then ``overrides``.

    A distill-then-fine-tune pipeline (``then_finetune`` > 0) also gets ``finetune_hp``
    completed: the config's ``ppo`` section for the env, then the ``finetune_hp`` given. Its
    ``gamma`` and ``gae_lambda`` become the distillation phase's too (where they shape the
    critic's value target), unless ``overrides`` set them: the critic learned while
    distilling is then the one PPO needs.

    :param env_id: environment id
    :param method: one of :data:`METHODS`
    :param overrides: values replacing the config's (``--hp``, a suite's ``hp``)
    :param config: a YAML file to use instead of the shipped ``distill.yml``
    """
    overrides = dict(overrides or {})
    hp = hyperparameters(env_id, method, config)
    if overrides.get("then_finetune", hp.get("then_finetune")):
        finetune = hyperparameters(env_id, "ppo", config)
        finetune.update(hp.get("finetune_hp") or {})
        finetune.update(overrides.get("finetune_hp") or {})
        hp.update({k: finetune[k] for k in ("gamma", "gae_lambda") if k in finetune})
        hp.update(overrides)
        hp["finetune_hp"] = finetune
    else:
        hp.update(overrides)
    return hp
