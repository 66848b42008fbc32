"""One place that builds environments for the library, the CLI, the benchmarks and the tests."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from ppdistill.errors import MissingExtraError, PPDistillError

# Ids under which the RL Baselines3 Zoo published agents, mapped to the gymnasium ids of
# today. Spaces are checked when a teacher is loaded, so a mapping that changed an
# observation layout is caught there.
LEGACY_ENV_IDS: dict[str, str] = {
    "LunarLander-v2": "LunarLander-v3",
    "LunarLanderContinuous-v2": "LunarLanderContinuous-v3",
    "BipedalWalker-v3": "BipedalWalker-v3",
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


class UnknownEnvError(PPDistillError, ValueError):
    """The environment id is not registered."""


def canonical_env_id(env_id: str) -> str:
    """Map a legacy id (e.g. ``LunarLander-v2``) to the one gymnasium registers today.

    :param env_id: any id
    :return: the id to pass to ``gym.make``
    """
    # Checked before the registry: gymnasium still registers HalfCheetah-v3 & co., but only
    # to raise an error that points at mujoco-py.
    return LEGACY_ENV_IDS.get(env_id, env_id)


def _check_registered(env_id: str) -> None:
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry.keys()), n=3)
    hint = (
        f"; did you mean {', '.join(close)}?"
        if close
        else "; `python -c 'import gymnasium; gymnasium.pprint_registry()'` lists them"
    )
    raise UnknownEnvError(f"unknown environment id {env_id!r}{hint}")


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` with legacy ids mapped and missing extras named.

    :param env_id: a gymnasium id (legacy zoo ids are accepted)
    :param kwargs: passed to ``gym.make``
    :return: the environment
    """
    env_id = canonical_env_id(env_id)
    _check_registered(env_id)
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        if any(env_id.startswith(n) for n in _MUJOCO_NAMES):
            raise MissingExtraError("mujoco", f"environment {env_id}", "mujoco") from exc
        raise PPDistillError(f"environment {env_id} cannot start: {exc}") from exc


def env_factory(env_id: str, **kwargs: Any) -> Callable[[], gym.Env]:
    """A picklable-by-closure constructor, as SB3's VecEnvs want.

    :param env_id: environment id
    :param kwargs: passed to ``gym.make``
    """

    def _make() -> gym.Env:
        return make_env(env_id, **kwargs)

    return _make


def make_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    subprocess: bool = False,
    env_kwargs: dict[str, Any] | None = None,
    wrapper_class: Callable[[gym.Env], gym.Env] | None = None,
) -> VecEnv:
    """A Monitor-wrapped VecEnv of ``n_envs`` copies of ``env_id``.

    :param env_id: environment id (legacy zoo ids are mapped)
    :param n_envs: number of parallel copies
    :param seed: seed of the first copy (the others get ``seed + i``)
    :param subprocess: one process per copy (SubprocVecEnv) instead of in-process
    :param env_kwargs: passed to ``gym.make``
    :param wrapper_class: wraps each copy, outside its Monitor (e.g.
        :class:`ppdistill.checkpoints.EpisodeRecorder`)
    :return: the vectorized environment
    """
    if n_envs < 1:
        raise PPDistillError(f"n_envs must be at least 1, got {n_envs}")
    make = env_factory(env_id, **(env_kwargs or {}))
    make().close()  # fail here, in the caller's process, with our message, not inside a worker
    return sb3_make_vec_env(
        make,
        n_envs=n_envs,
        seed=seed,
        vec_env_cls=SubprocVecEnv if subprocess else DummyVecEnv,
        wrapper_class=wrapper_class,
    )
