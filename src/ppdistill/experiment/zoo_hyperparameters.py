"""The RL Baselines3 Zoo's tuned PPO hyperparameters, as a run's ``hp``.

An rl-zoo run folder keeps, in ``config.yml``, the hyperparameters rl_zoo3 tuned for its env
and trained that very agent with. PPO from scratch is a fair baseline only with such values:
the distillation settings (γ 0.999, GAE 0.9, no entropy bonus) are chosen for distilling,
not for learning from the reward. :func:`zoo_ppo_hyperparameters` turns such a file into the
``hp`` of a ``ppo`` run:

- the algorithm's keys are taken as they are (``lin_X`` schedules included);
- ``normalize`` becomes ``normalize_reward`` (its reward part; observations are normalized
  inside the network, with the teacher's statistics, as for every student);
- ``policy_kwargs`` (rl_zoo3 writes them as Python, ``dict(log_std_init=-2, ...)``) are read
  without running them; ``net_arch`` is dropped, since the student's size is the run's;
- the budget (``n_timesteps``), the policy's class and the environment's keys (which the
  teacher's recipe already applies) are dropped.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from ppdistill.experiment.config import ACTIVATIONS, POLICY_KWARGS, ConfigError, valid_keys

# keys of a zoo config.yml that are not the algorithm's: the budget, the policy class, and
# what shapes the environment (the teacher's own recipe rebuilds it)
_DROPPED = {
    "n_timesteps",
    "policy",
    "env_wrapper",
    "frame_stack",
    "env_kwargs",
    "callback",
    "vec_env_wrapper",
}


def _activation(node: ast.expr) -> str:
    """``nn.ReLU`` / ``th.nn.Tanh`` → the name :data:`ACTIVATIONS` knows it by."""
    if isinstance(node, ast.Attribute) and node.attr.lower() in ACTIVATIONS:
        return node.attr.lower()
    if isinstance(node, ast.Attribute) and node.attr == "LeakyReLU":
        return "leaky_relu"
    raise ConfigError(f"activation_fn {ast.unparse(node)} is not one of {', '.join(ACTIVATIONS)}")


def _policy_kwargs(value: Any, where: str) -> dict[str, Any]:
    """rl_zoo3's ``policy_kwargs`` (a mapping, or Python text ``dict(...)``), without net_arch."""
    if isinstance(value, str):
        try:
            call = ast.parse(value.strip(), mode="eval").body
        except SyntaxError as exc:
            raise ConfigError(f"{where}: policy_kwargs {value!r} is not readable") from exc
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "dict"):
            raise ConfigError(f"{where}: policy_kwargs must be dict(...), got {value!r}")
        parsed: dict[str, Any] = {}
        for keyword in call.keywords:
            if keyword.arg is None:
                raise ConfigError(f"{where}: policy_kwargs {value!r} unpacks a mapping; give its keys")
            if keyword.arg == "net_arch":  # the student's size decides (and rl_zoo3 writes it with dict())
                continue
            if keyword.arg == "activation_fn":
                parsed[keyword.arg] = _activation(keyword.value)
                continue
            try:
                parsed[keyword.arg] = ast.literal_eval(keyword.value)
            except ValueError as exc:
                raise ConfigError(
                    f"{where}: policy_kwargs {keyword.arg}={ast.unparse(keyword.value)} is not a plain value"
                ) from exc
        value = parsed
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: policy_kwargs must be a mapping, got {value!r}")
    kwargs = {k: v for k, v in value.items() if k != "net_arch"}  # the student's size decides
    unknown = sorted(set(kwargs) - POLICY_KWARGS)
    if unknown:
        raise ConfigError(f"{where}: policy_kwargs {unknown[0]!r} is not an argument of SB3's PPO policy")
    return kwargs


def _normalize_reward(value: Any) -> bool:
    """rl_zoo3's ``normalize``: true, false, or Python text ``dict(norm_obs=..., norm_reward=...)``."""
    if isinstance(value, str):
        call = ast.parse(value.strip(), mode="eval").body
        if isinstance(call, ast.Call):
            flags = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
            return bool(flags.get("norm_reward", True))
        return bool(ast.literal_eval(call))
    return bool(value)


def zoo_ppo_hyperparameters(config: Mapping[str, Any], where: str = "the zoo's config.yml") -> dict[str, Any]:
    """A PPO run's ``hp`` from an rl-zoo run's ``config.yml``.

    :param config: the file's contents (:attr:`ppdistill.teachers.zoo_folder.Located.config`)
    :param where: the file, for messages
    :raises ConfigError: a key that PPO does not take, or a value that cannot be read safely
    """
    if not config:
        raise ConfigError(f"{where} holds no hyperparameters (an rl-zoo run folder has them in config.yml)")
    allowed = valid_keys("ppo")
    hp: dict[str, Any] = {}
    for key, value in config.items():
        if key in _DROPPED:
            continue
        if key == "normalize":
            hp["normalize_reward"] = _normalize_reward(value)
        elif key == "policy_kwargs":
            hp["policy_kwargs"] = _policy_kwargs(value, where)
        elif key in allowed:
            hp[key] = value
        else:
            raise ConfigError(f"{where}: {key!r} is not a hyperparameter of SB3's PPO")
    return hp
