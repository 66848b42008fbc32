"""A small memory task with a privileged group: the cue is shown to the student only at the
start, and to the teacher at every step.

:class:`CueMemory` is registered as ``ppdistill/CueMemory-v0`` (``gym.make`` and
``ppdistill distill --env ppdistill/CueMemory-v0`` build it). Each episode draws a cue, one of
``n_cues``; each of its ``length`` steps pays ``1 / length`` when the action is the cue, so a
return is the fraction of steps answered right. Its observation is a Dict of two groups:

- ``policy``: the cue as a one-hot vector at the first step (zeros after), and the fraction
  of the episode elapsed;
- ``privileged``: the cue as a one-hot vector, at every step.

A teacher reading both groups answers every step right (return 1). A student reading
``policy`` only must remember the cue: a memoryless one is right at the first step and then
at chance, ``(1 + (length − 1) / n_cues) / length`` at best (0.5625 with the defaults); a
recurrent one can reach 1.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

MEMORY_ENV_ID = "ppdistill/CueMemory-v0"


class CueMemory(gym.Env[dict[str, np.ndarray], np.int64]):
    """See the module docstring.

    :param n_cues: how many cues (and actions) there are (>= 2)
    :param length: steps per episode (>= 1)
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium declares it so)

    def __init__(self, n_cues: int = 2, length: int = 8) -> None:
        if int(n_cues) < 2 or int(length) < 1:
            raise ValueError(f"CueMemory needs n_cues >= 2 and length >= 1, got {n_cues} and {length}")
        self.n_cues, self.length = int(n_cues), int(length)
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {
                "policy": spaces.Box(0.0, 1.0, (self.n_cues + 1,), np.float32),
                "privileged": spaces.Box(0.0, 1.0, (self.n_cues,), np.float32),
            }
        )
        self.action_space = spaces.Discrete(self.n_cues)
        self._cue = 0
        self._t = 0

    def _obs(self) -> dict[str, np.ndarray]:
        cue = np.zeros(self.n_cues, dtype=np.float32)
        cue[self._cue] = 1.0
        policy = np.zeros(self.n_cues + 1, dtype=np.float32)
        if self._t == 0:
            policy[: self.n_cues] = cue
        policy[-1] = self._t / self.length
        return {"policy": policy, "privileged": cue}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self._cue = int(self.np_random.integers(self.n_cues))
        self._t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        reward = (1.0 / self.length) if int(np.asarray(action).reshape(-1)[0]) == self._cue else 0.0
        self._t += 1
        return self._obs(), reward, self._t >= self.length, False, {}


def register() -> None:
    """Register :class:`CueMemory` as :data:`MEMORY_ENV_ID` (once)."""
    if MEMORY_ENV_ID not in gym.registry:
        gym.register(id=MEMORY_ENV_ID, entry_point=f"{__name__}:CueMemory")
