"""envpool as an optional fast backend for Atari and MuJoCo (``make_vec_env(..., backend="envpool")``).

The adapter gives envpool's batched C++ environments SB3's VecEnv semantics:

- envpool resets a finished environment on the *next* step; SB3 expects the reset
  observation at once, with the last one in ``info["terminal_observation"]``. The adapter
  resets finished environments immediately.
- Atari is configured like the gymnasium path (noop reset 30, frame skip 4, 84×84 gray,
  4-frame stack, no sticky actions, life loss ending and reward clipping for training only);
  frames come channels-first, as SB3's policies see them. ``info["episode"]`` reports whole
  games with unclipped rewards (envpool's ``info["reward"]`` and ``info["terminated"]``).
- MuJoCo ids map to envpool's implementation of the same version.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvObs, VecEnvStepReturn

from ppdistill.core.errors import PPDistillError
from ppdistill.core.extras import require_extra
from ppdistill.envs.ids import canonical_env_id, env_family
from ppdistill.envs.native import NativeVecEnv


def _envpool_task(env_id: str) -> tuple[str, dict[str, Any]]:
    family = env_family(env_id)
    if family == "atari":
        game = env_id.split("/")[-1].split("NoFrameskip")[0].split("-")[0]
        return f"{game}-v5", {
            "repeat_action_probability": 0.0,
            "noop_max": 30,
            "frame_skip": 4,
            "stack_num": 4,
        }
    if family == "mujoco":
        return env_id, {}
    raise PPDistillError(f"the envpool backend runs Atari and MuJoCo, not {env_id}; use backend='gymnasium'")


class EnvpoolVecEnv(NativeVecEnv):
    """SB3 VecEnv over an envpool gymnasium-style environment (see the module docstring).

    :param env_id: our id (``PongNoFrameskip-v4``, ``HalfCheetah-v5``)
    :param num_envs: number of environments
    :param seed: seed
    :param training: Atari: life loss ends episodes and rewards are clipped
    """

    backend = "envpool"

    def __init__(self, env_id: str, num_envs: int, seed: int | None = None, training: bool = True) -> None:
        envpool = require_extra("envpool", "envpool", "the envpool backend")
        env_id = canonical_env_id(env_id)
        self.atari = env_family(env_id) == "atari"
        task, options = _envpool_task(env_id)
        if self.atari:
            options.update(episodic_life=training, reward_clip=training)
        self._make = lambda s: envpool.make(
            task, env_type="gymnasium", num_envs=num_envs, seed=0 if s is None else int(s), **options
        )
        self._env = self._make(seed)
        obs_space = self._env.observation_space
        act_space = self._env.action_space
        if isinstance(act_space, spaces.Box):
            act_space = spaces.Box(act_space.low, act_space.high, act_space.shape, np.float32)
        self.render_mode = None
        super().__init__(num_envs, obs_space, act_space)
        self._actions: np.ndarray = np.zeros(0)
        self._reset_statistics()

    def reset(self) -> VecEnvObs:
        if self._seeds[0] is not None:
            self._env = self._make(self._seeds[0])
            self._reset_seeds()
        obs, _ = self._env.reset()
        self._reset_statistics()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, info = self._env.step(self._actions)
        dones = np.logical_or(terminated, truncated)
        raw = np.asarray(info.get("reward", rewards), dtype=np.float64)
        self._count(raw)
        game_over = np.asarray(info["terminated"], dtype=bool) | truncated if self.atari else dones
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        done_ids = np.flatnonzero(dones)
        if done_ids.size:
            obs = obs.copy()
            reset_obs, _ = self._env.reset(np.asarray(done_ids, dtype=np.int32))
            for j, i in enumerate(done_ids):
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                obs[i] = reset_obs[j]
        for i in np.flatnonzero(game_over):
            infos[i]["episode"] = self._episode_info(int(i))
        return obs, np.asarray(rewards, dtype=np.float32), dones, infos

    def close(self) -> None:
        self._env.close()


def make_envpool(env_id: str, n_envs: int, seed: int | None = None, training: bool = True) -> VecEnv:
    """An :class:`EnvpoolVecEnv` (requires the ``[envpool]`` extra)."""
    return EnvpoolVecEnv(env_id, n_envs, seed=seed, training=training)
