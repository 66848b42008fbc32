"""One env factory for the library, the CLI, the benchmarks and the tests.

Families, recognised from the id:

==========  =====================================  ===================================================
family      ids                                    what is built
==========  =====================================  ===================================================
atari       ``PongNoFrameskip-v4``, ``ALE/Pong-v5``  ale-py (ROMs in its wheel) + SB3's AtariWrapper: noop
                                                   reset, frame skip 4, 84×84 gray, then a 4-frame
                                                   stack; life loss ends *training* episodes, not
                                                   evaluation ones; rewards clipped for training only
minatar     ``MinAtar/Breakout-v1``                MinAtar's 10×10×C boolean grids as uint8 {0, 255}
                                                   images (CPU-sized stand-in for Atari)
procgen     ``procgen/coinrun``                    Procgen's own vectorized env, easy mode; training on
                                                   ``num_levels=200`` levels, evaluation on unseen ones
mujoco      ``HalfCheetah-v5``, ``Hopper-v5``, ...   gymnasium[mujoco]
other       anything gymnasium registers           ``gym.make``
==========  =====================================  ===================================================

Optional families need their extra (``[atari]``, ``[minatar]``, ``[procgen]``, ``[mujoco]``)
and raise :class:`~ppdistill.core.errors.MissingExtraError` naming it when absent.
``backend="envpool"`` runs Atari and MuJoCo through envpool where it is installed.
"""

from __future__ import annotations

import copy
import importlib
import logging
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.atari_wrappers import AtariWrapper
from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnv,
    VecFrameStack,
    VecTransposeImage,
)

from ppdistill.core.errors import MissingExtraError, PPDistillError
from ppdistill.core.extras import require_extra
from ppdistill.envs.envpool import make_envpool
from ppdistill.envs.ids import Backend, Family, canonical_env_id, check_registered, env_family
from ppdistill.envs.procgen import ProcgenVecEnv


def _register(family: Family, env_id: str) -> None:
    if family == "atari":
        ale_py = require_extra("ale_py", "atari", f"environment {env_id}")
        require_extra("cv2", "atari", f"environment {env_id}")
        gym.register_envs(ale_py)
    elif family == "minatar":
        require_extra("minatar", "minatar", f"environment {env_id}")
        minatar_gym = importlib.import_module("minatar.gym")
        if env_id not in gym.registry:
            minatar_gym.register_envs()
    elif family == "mujoco":
        _route_mujoco_warnings()


_mujoco_log = logging.getLogger("ppdistill.mujoco")


def _route_mujoco_warnings() -> None:
    """MuJoCo's default warning handler prints each warning and appends it to MUJOCO_LOG.TXT in
    the working folder (a model's deprecated attribute, at every env built). Send them to the
    ``ppdistill.mujoco`` logger instead (debug level: ``logging`` shows them when asked)."""
    try:
        import mujoco
    except ImportError:  # building the env reports the missing extra
        return
    mujoco.set_mju_user_warning(lambda message: _mujoco_log.debug("MuJoCo: %s", message))


class MinAtarImage(gym.ObservationWrapper):
    """MinAtar's boolean ``(10, 10, C)`` grids as uint8 images with values 0 / 255.

    SB3 then treats them like any image: channels moved first, divided by 255.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        shape = env.observation_space.shape
        assert shape is not None
        self.observation_space = spaces.Box(0, 255, shape, np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation.astype(np.uint8) * 255


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """One raw environment (not for Procgen, which is vectorized natively).

    Atari comes without its preprocessing (AtariWrapper, frame stack), which
    :func:`make_vec_env` adds; use that to get what policies see.

    :param env_id: environment id (legacy zoo ids are accepted)
    :param kwargs: passed to ``gym.make``
    :return: the environment
    """
    env_id = canonical_env_id(env_id)
    family = env_family(env_id)
    if family == "procgen":
        raise PPDistillError(f"{env_id} is vectorized natively; build it with make_vec_env")
    _register(family, env_id)
    check_registered(env_id)
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        if family == "mujoco":
            raise MissingExtraError("mujoco", f"environment {env_id}", "mujoco") from exc
        raise PPDistillError(f"environment {env_id} cannot start: {exc}") from exc
    if family == "minatar":
        env = MinAtarImage(env)
    return env


def env_factory(env_id: str, **kwargs: Any) -> Callable[[], gym.Env]:
    """A constructor for SB3's VecEnvs (picklable by cloudpickle for subprocesses).

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
    training: bool = True,
    backend: Backend = "gymnasium",
    env_kwargs: dict[str, Any] | None = None,
    wrapper_class: Callable[[gym.Env], gym.Env] | None = None,
) -> VecEnv:
    """A VecEnv of ``n_envs`` copies of ``env_id`` whose episodes are recorded for statistics.

    :param env_id: environment id (legacy zoo ids are mapped)
    :param n_envs: number of parallel copies
    :param seed: seed of the first copy (the others get ``seed + i``)
    :param subprocess: one process per copy (SubprocVecEnv) instead of in-process
    :param training: training or evaluation variant (Atari: life loss and reward clipping;
        Procgen: the 200 training levels or unseen levels)
    :param backend: "gymnasium", or "envpool" for Atari and MuJoCo where envpool is installed
    :param env_kwargs: passed to ``gym.make`` (Procgen: to ProcgenGym3Env)
    :param wrapper_class: wraps each copy, outside its Monitor (and Atari's wrapper), e.g.
        :class:`ppdistill.experiment.checkpoints.EpisodeRecorder`
    :return: the vectorized environment
    """
    if n_envs < 1:
        raise PPDistillError(f"n_envs must be at least 1, got {n_envs}")
    env_id = canonical_env_id(env_id)
    family = env_family(env_id)
    kwargs = dict(env_kwargs or {})
    if family == "procgen":
        return ProcgenVecEnv(env_id.split("/", 1)[1], n_envs, seed=seed, training=training, **kwargs)
    if backend == "envpool":
        return make_envpool(env_id, n_envs, seed=seed, training=training)
    if backend != "gymnasium":
        raise PPDistillError(f"unknown env backend {backend!r}; use gymnasium or envpool")
    make = env_factory(env_id, **kwargs)
    make().close()  # fail here, in the caller's process, with our message, not inside a worker
    wrap: Callable[[gym.Env], gym.Env] | None = wrapper_class
    if family == "atari":
        outer = wrapper_class

        # SB3 puts the Monitor inside this wrapper: episode returns are the game's, unclipped,
        # over all lives, whatever ends a training episode.
        def wrap(env: gym.Env) -> gym.Env:
            env = AtariWrapper(env, terminal_on_life_loss=training, clip_reward=training)
            return outer(env) if outer is not None else env

    vec_env = sb3_make_vec_env(
        make,
        n_envs=n_envs,
        seed=seed,
        vec_env_cls=SubprocVecEnv if subprocess else DummyVecEnv,
        wrapper_class=wrap,
    )
    if family == "atari":
        vec_env = VecFrameStack(vec_env, n_stack=4)
    return vec_env


def policy_observation_space(space: spaces.Space) -> spaces.Space:
    """The observation space an SB3 policy sees for env observations ``space`` (channels first)."""
    if isinstance(space, spaces.Box) and is_image_space(space) and not is_image_space_channels_first(space):
        return VecTransposeImage.transpose_space(space)
    if isinstance(space, spaces.Dict):
        return spaces.Dict({k: policy_observation_space(s) for k, s in space.spaces.items()})
    return space


_SPACES: dict[str, tuple[spaces.Space, spaces.Space]] = {}


def env_spaces(env_id: str) -> tuple[spaces.Space, spaces.Space]:
    """Observation and action spaces of ``env_id`` as a policy sees them (after our wrappers).

    The spaces are read once per process from a real environment (the wrappers decide them:
    Atari's frame stack, MinAtar's images) and copied for each caller, whose space RNGs then
    stay its own.

    :param env_id: environment id (legacy zoo ids are mapped)
    """
    key = canonical_env_id(env_id)
    if key not in _SPACES:
        vec_env = make_vec_env(key, n_envs=1, training=False)
        try:
            _SPACES[key] = (policy_observation_space(vec_env.observation_space), vec_env.action_space)
        finally:
            vec_env.close()
    obs_space, act_space = _SPACES[key]
    return copy.deepcopy(obs_space), copy.deepcopy(act_space)
