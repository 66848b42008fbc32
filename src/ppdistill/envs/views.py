"""Different observations for the teacher and the student, from one environment.

The environment gives the teacher's observation; :class:`StudentView` hands the student a
part of it (``view``) and keeps the whole one, the teacher's, for the distillation algorithm,
which records it with every step of the rollout (the teacher runs once per rollout on what it
reads; the student never receives the rest). Terminal observations in ``infos`` are the
student's too, so that SB3 bootstraps truncated episodes with the student's critic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

View = Callable[[Any], Any]


class StudentView(VecEnvWrapper):
    """The student's part of each observation; the teacher's whole one kept aside.

    :param venv: the environment, whose observations are the teacher's
    :param view: the teacher's observation (a batch) → the student's
    :param observation_space: the student's observation space
    """

    def __init__(self, venv: VecEnv, view: View, observation_space: spaces.Space) -> None:
        super().__init__(venv, observation_space=observation_space)
        self.view = view
        self.teacher_observation_space = venv.observation_space
        self._teacher_obs: Any = None
        self._acted_on: Any = None

    def teacher_observations(self) -> Any:
        """The teacher's observation of the current step (a batch), as the environment gave it."""
        return self._teacher_obs

    def acted_on(self) -> Any:
        """The teacher's observation of the step just taken (the one before the current)."""
        return self._acted_on

    def reset(self) -> VecEnvObs:
        self._teacher_obs = self.venv.reset()
        return self.view(self._teacher_obs)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        self._acted_on, self._teacher_obs = self._teacher_obs, obs
        for info in infos:
            terminal = info.get("terminal_observation")
            if terminal is not None:
                info["terminal_observation"] = _first(self.view(_batch_of_one(terminal)))
        return self.view(obs), rewards, dones, infos


def _batch_of_one(obs: Any) -> Any:
    if isinstance(obs, dict):
        return {k: np.asarray(v)[None] for k, v in obs.items()}
    return np.asarray(obs)[None]


def _first(batch: Any) -> Any:
    return {k: v[0] for k, v in batch.items()} if isinstance(batch, dict) else batch[0]


def find_student_view(env: VecEnv | None) -> StudentView | None:
    """The :class:`StudentView` in a chain of VecEnv wrappers, if there is one.

    :param env: the outermost VecEnv
    """
    while env is not None:
        if isinstance(env, StudentView):
            return env
        env = getattr(env, "venv", None)
    return None
