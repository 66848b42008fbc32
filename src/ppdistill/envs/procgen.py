"""Procgen as an SB3 VecEnv, on procgen's own vectorized environment (gym3 API).

Install: ``make install-procgen``. The original ``procgen`` has no build for Python 3.11;
``procgen2`` has, but its pins pull numpy below 2, and it imports the old ``gym`` package,
which stable-baselines3 would then import (and patch around) on every start. So
``procgen2``, ``gym3``, ``gym`` and ``gym-notices`` are installed with ``--no-deps`` into a
folder of their own, ``<venv>/procgen`` (or ``$PPDISTILL_PROCGEN_PATH``), which is put on
``sys.path`` only when a Procgen environment is built; ``cffi``, ``moderngl`` and
``glcontext`` (the ``[procgen]`` extra) go into the environment as usual.

Training uses ``num_levels=200`` easy levels from ``start_level=0`` (the paper's setting);
evaluation draws from the full level distribution (``num_levels=0``), i.e. unseen levels.
gym3 resets finished episodes itself and does not return the last observation, so
``terminal_observation`` is absent from infos: SB3 then treats every episode end as a
termination (procgen's own time limits included).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from ppdistill.core.extras import require_extra
from ppdistill.envs.ids import PROCGEN_GAMES, PROCGEN_TRAIN_LEVELS, UnknownEnvError
from ppdistill.envs.native import NativeVecEnv


def _import_procgen(game: str) -> Any:
    """Import procgen from its own folder, silencing the old gym's deprecation banner."""
    folder = Path(os.environ.get("PPDISTILL_PROCGEN_PATH", Path(sys.prefix) / "procgen"))
    if folder.is_dir() and str(folder) not in sys.path:
        sys.path.append(str(folder))
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        return require_extra("procgen", "procgen", f"environment procgen/{game}", "make install-procgen")


class ProcgenVecEnv(NativeVecEnv):
    """``num_envs`` Procgen games stepped together, with episode statistics in ``info["episode"]``.

    :param game: e.g. "coinrun"
    :param num_envs: parallel environments
    :param seed: seed of procgen's level sampler (set at the next reset; ``VecEnv.seed`` too)
    :param training: the 200 training levels (True) or unseen levels (False)
    :param distribution_mode: "easy" (the paper's) or "hard"
    :param num_levels: override the number of levels (0: unlimited)
    :param start_level: first level
    """

    backend = "Procgen"

    def __init__(
        self,
        game: str,
        num_envs: int,
        seed: int | None = None,
        training: bool = True,
        distribution_mode: str = "easy",
        num_levels: int | None = None,
        start_level: int = 0,
    ) -> None:
        if game not in PROCGEN_GAMES:
            raise UnknownEnvError(f"unknown Procgen game {game!r}; choose one of {', '.join(PROCGEN_GAMES)}")
        self._procgen = _import_procgen(game)
        self.game = game
        self.distribution_mode = distribution_mode
        self.num_levels = num_levels if num_levels is not None else (PROCGEN_TRAIN_LEVELS if training else 0)
        self.start_level = start_level
        obs_space = spaces.Box(0, 255, (64, 64, 3), np.uint8)
        self.render_mode = None
        super().__init__(num_envs, obs_space, spaces.Discrete(15))
        if seed is not None:
            self.seed(seed)
        self._env: Any = None
        self._actions = np.zeros(num_envs, dtype=np.int32)
        self._reset_statistics()

    def _build(self) -> None:
        seed = self._seeds[0]
        if seed is None:
            seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        self._env = self._procgen.ProcgenGym3Env(
            num=self.num_envs,
            env_name=self.game,
            num_levels=self.num_levels,
            start_level=self.start_level,
            distribution_mode=self.distribution_mode,
            rand_seed=int(seed) & 0x7FFFFFFF,
        )
        self._reset_seeds()

    def reset(self) -> VecEnvObs:
        # gym3 has no reset: a fresh env starts every game anew (and applies a new seed)
        self._build()
        self._reset_statistics()
        _, obs, _ = self._env.observe()
        return obs["rgb"].copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.int32).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        self._env.act(self._actions)
        rewards, obs, first = self._env.observe()
        self._count(rewards)
        dones = np.asarray(first, dtype=bool).copy()
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            infos[i]["episode"] = self._episode_info(int(i))
        return obs["rgb"].copy(), np.asarray(rewards, dtype=np.float32), dones, infos

    def close(self) -> None:
        self._env = None
