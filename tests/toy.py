"""Tiny environments and teachers for fast, exact tests."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.logger import KVWriter, Logger

from ppdistill.core.distributions import param_dim, params_from_distribution
from ppdistill.core.losses import distillation_kl
from ppdistill.teachers.callable import CallableTeacher


class ToyEnv(gym.Env):
    """Random observations, any action space, reward 1 when the action is all zeros; 20-step episodes.

    :param action_space: the action space to expose
    :param obs_offset: added to every observation (makes normalization visible)
    :param dict_obs: observations as a Dict {"a": Box(2), "b": Box(3)}
    """

    def __init__(self, action_space: spaces.Space, obs_offset: float = 0.0, dict_obs: bool = False):
        self.action_space = action_space
        self.dict_obs = dict_obs
        self.obs_offset = obs_offset
        if dict_obs:
            self.observation_space = spaces.Dict(
                {
                    "a": spaces.Box(-np.inf, np.inf, (2,), np.float32),
                    "b": spaces.Box(-np.inf, np.inf, (3,), np.float32),
                }
            )
        else:
            self.observation_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
        self._t = 0

    def _obs(self):
        if self.dict_obs:
            return {
                "a": self.np_random.normal(size=2).astype(np.float32) + self.obs_offset,
                "b": self.np_random.normal(size=3).astype(np.float32) + self.obs_offset,
            }
        return self.np_random.normal(size=4).astype(np.float32) + self.obs_offset

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        self._t += 1
        reward = (
            float(np.all(np.asarray(action) == 0))
            if not isinstance(self.action_space, spaces.Box)
            else -float(np.sum(np.square(action)))
        )
        return self._obs(), reward, False, self._t >= 20, {}


ACTION_SPACES = {
    "discrete": spaces.Discrete(3),
    "multidiscrete": spaces.MultiDiscrete([2, 3]),
    "multibinary": spaces.MultiBinary(3),
    "box": spaces.Box(-1.0, 1.0, (2,), np.float32),
}


class LinearTeacherNet(th.nn.Module):
    """A fixed random linear map from (flattened) observations to distribution parameters."""

    def __init__(self, obs_dim: int, action_space: spaces.Space, seed: int = 0):
        super().__init__()
        g = th.Generator().manual_seed(seed)
        self.weight = th.nn.Parameter(th.randn(obs_dim, param_dim(action_space), generator=g) * 2)
        self.box = isinstance(action_space, spaces.Box)

    def forward(self, obs):
        if isinstance(obs, dict):
            obs = th.cat([obs[k] for k in sorted(obs)], dim=1)
        out = obs.float() @ self.weight
        if self.box:  # log-stds around log(0.3)
            d = out.shape[1] // 2
            out = th.cat([th.tanh(out[:, :d]), -1.2 + 0.1 * th.tanh(out[:, d:])], dim=1)
        return out


class Recorder(KVWriter):
    """Collects every logged key/value dump."""

    def __init__(self):
        self.dumps: list[dict] = []

    def write(self, key_values, key_excluded, step=0):
        self.dumps.append(dict(key_values))

    def values(self, key):
        return [d[key] for d in self.dumps if key in d]


def recording_logger() -> tuple[Logger, Recorder]:
    rec = Recorder()
    return Logger(folder=None, output_formats=[rec]), rec


SMALL = {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "seed": 0, "device": "cpu"}


def toy_teacher(action_space, dict_obs=False, value_fn=None):
    net = LinearTeacherNet(5 if dict_obs else 4, action_space)
    obs_space = ToyEnv(action_space, dict_obs=dict_obs).observation_space
    return CallableTeacher(
        net, obs_space, action_space, value_fn=value_fn, info={"kind": "callable"}
    ).freeze()


def mean_kl(model, teacher, n=256):
    env = ToyEnv(model.action_space, dict_obs=isinstance(model.observation_space, spaces.Dict))
    env.reset(seed=123)
    obs = [env._obs() for _ in range(n)]
    if isinstance(obs[0], dict):
        batch = {k: th.as_tensor(np.stack([o[k] for o in obs])) for k in obs[0]}
    else:
        batch = th.as_tensor(np.stack(obs))
    with th.no_grad():
        dist, _ = model._student_forward(batch, with_values=False)
        return (
            distillation_kl(model.action_space, teacher(batch).params, params_from_distribution(dist))
            .mean()
            .item()
        )
