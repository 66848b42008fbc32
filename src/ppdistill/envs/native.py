"""What the natively vectorized backends (Procgen, envpool) share as SB3 VecEnvs: episode
statistics in ``info["episode"]`` and no per-env objects to reach into."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices


class NativeVecEnv(VecEnv):
    """A VecEnv over one batched environment object (not a list of gymnasium envs).

    Subclasses call :meth:`_count` with each step's rewards and :meth:`_episode_info` for
    every finished environment, and set :attr:`backend` for messages.
    """

    backend = "native"

    def _reset_statistics(self) -> None:
        self._returns = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)

    def _count(self, rewards: np.ndarray) -> None:
        self._returns += rewards
        self._lengths += 1

    def _episode_info(self, i: int) -> dict[str, float]:
        """The finished episode of env ``i`` as SB3's Monitor reports it; its counters restart."""
        info = {"r": float(self._returns[i]), "l": int(self._lengths[i]), "t": 0.0}
        self._returns[i] = 0
        self._lengths[i] = 0
        return info

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        raise AttributeError(f"{self.backend} environments have no per-env method {method_name!r}")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
