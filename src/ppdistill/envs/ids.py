"""Environment ids: legacy zoo ids mapped to today's, families, registration checks."""

from __future__ import annotations

import difflib
import importlib
from typing import Literal

import gymnasium as gym

from ppdistill.core.errors import PPDistillError

# Ids under which the RL Baselines3 Zoo published agents, mapped to the gymnasium ids of
# today. Spaces are checked when a teacher is loaded, so a mapping that changed an
# observation layout is caught there.
LEGACY_ENV_IDS: dict[str, str] = {
    "LunarLander-v2": "LunarLander-v3",
    "LunarLanderContinuous-v2": "LunarLanderContinuous-v3",
    "HalfCheetah-v3": "HalfCheetah-v5",
    "Hopper-v3": "Hopper-v5",
    "Walker2d-v3": "Walker2d-v5",
    "Ant-v3": "Ant-v5",
    "Humanoid-v3": "Humanoid-v5",
    "Swimmer-v3": "Swimmer-v5",
    "HalfCheetah-v4": "HalfCheetah-v5",
    "Hopper-v4": "Hopper-v5",
    "Walker2d-v4": "Walker2d-v5",
    "Ant-v4": "Ant-v5",
    "Humanoid-v4": "Humanoid-v5",
}


_MUJOCO_NAMES = (
    "HalfCheetah",
    "Hopper",
    "Walker2d",
    "Ant",
    "Humanoid",
    "Swimmer",
    "Reacher",
    "InvertedPendulum",
)


PROCGEN_GAMES = (
    "bigfish", "bossfight", "caveflyer", "chaser", "climber", "coinrun", "dodgeball", "fruitbot",
    "heist", "jumper", "leaper", "maze", "miner", "ninja", "plunder", "starpilot",
)  # fmt: skip


PROCGEN_TRAIN_LEVELS = 200


Family = Literal["atari", "minatar", "procgen", "mujoco", "other"]


Backend = Literal["gymnasium", "envpool"]


class UnknownEnvError(PPDistillError, ValueError):
    """The environment id is not registered."""


def canonical_env_id(env_id: str) -> str:
    """The id to build: a legacy id (e.g. ``LunarLander-v2``) mapped to the one gymnasium
    registers today, and ``module:EnvId-v0`` (gymnasium's syntax for an environment of one's
    own) reduced to ``EnvId-v0`` once ``module``, which registers it, is imported.

    :param env_id: any id
    :return: the id to build
    """
    if ":" in env_id:
        module, _, env_id = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UnknownEnvError(
                f"--env {module}:{env_id}: module {module!r} cannot be imported ({exc}); "
                "install it or put it on PYTHONPATH"
            ) from exc
    # Checked before the registry: gymnasium still registers HalfCheetah-v3 & co., but only
    # to raise an error that points at mujoco-py.
    return LEGACY_ENV_IDS.get(env_id, env_id)


def env_family(env_id: str) -> Family:
    """Which family an id belongs to (see the module docstring)."""
    env_id = canonical_env_id(env_id)
    if env_id.startswith("procgen/"):
        return "procgen"
    if env_id.startswith("MinAtar/"):
        return "minatar"
    if "NoFrameskip" in env_id or env_id.startswith("ALE/"):
        return "atari"
    if env_id.split("-")[0] in _MUJOCO_NAMES:
        return "mujoco"
    return "other"


def check_registered(env_id: str) -> None:
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry.keys()), n=3)
    hint = (
        f"; did you mean {', '.join(close)}?"
        if close
        else "; `python -c 'import gymnasium; gymnasium.pprint_registry()'` lists them, and "
        "--env MODULE:ID builds an environment that MODULE registers"
    )
    raise UnknownEnvError(f"unknown environment id {env_id!r}{hint}")
