"""Every evaluation episode from its own seed, so that two agents play the same episodes.

Seeding a VecEnv seeds each copy's *first* reset only; later episodes start from the env's
random generator as the previous episode left it, and some environments draw from it while
stepping (LunarLander's engine dispersion), so the second episode on a copy depends on how
the first one was played. :class:`EpisodeSeeds` gives every episode of a copy its own seed:
copy ``k`` of ``n`` plays its ``j``-th episode from seed ``seed + k + j * n``, whatever the
agent does, and episode ``(k, j)`` is the same start for every agent scored with that seed.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym


class EpisodeSeeds(gym.Wrapper):
    """Reseed each reset that comes without a seed with the next seed of this copy.

    :param env: one copy of a VecEnv
    :param stride: the number of copies (the step between two seeds of one copy)
    """

    def __init__(self, env: gym.Env, stride: int) -> None:
        super().__init__(env)
        self.stride = int(stride)
        self._next: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        if seed is not None:  # the VecEnv's seed for this copy: the first episode's
            self._next = int(seed)
        if self._next is not None:
            seed, self._next = self._next, self._next + self.stride
        return self.env.reset(seed=seed, options=options)
