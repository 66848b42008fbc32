"""Every evaluation episode from its own seed, so that two agents play the same episodes.

Seeding a VecEnv seeds each copy's *first* reset only; later episodes start from the env's
random generator as the previous episode left it, and some environments draw from it while
stepping (LunarLander's engine dispersion), so the second episode on a copy depends on how
the first one was played. :class:`EpisodeSeeds` gives every episode of a copy its own seed:
copy ``k`` plays its ``j``-th episode from :func:`episode_seed` ``(seed, k, j)``, whatever the
agent does, so episode ``(k, j)`` is the same start for every agent scored with that seed.

The episode's seed is drawn by numpy's ``SeedSequence`` from ``(seed, k, j)``, not counted
up from ``seed``: with ``seed + k + j`` two evaluation seeds one apart (the final evaluations
of training seeds 100 and 101) would share all but one of their episodes, and a benchmark
that treats its seeds' episodes as independent draws would understate the teacher's own
spread. Drawn seeds differ for every evaluation seed, copy and episode.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

SCHEME = "SeedSequence(seed, copy, episode)"
"""The episode seeding in use, recorded with references taken under it (folders made before it
counted seeds up: ``seed + copy + episode * copies``)."""


def episode_seed(seed: int, copy: int, episode: int) -> int:
    """The seed of the ``episode``-th episode (from 0) of copy ``copy`` under evaluation seed ``seed``.

    :param seed: the evaluation's seed (a VecEnv's: copy ``k`` is first reset with ``seed + k``)
    :param copy: the copy's index in its VecEnv
    :param episode: the episode's index on that copy
    """
    entropy = [int(seed) % 2**63, int(copy), int(episode)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])


class EpisodeSeeds(gym.Wrapper):
    """Reseed each reset with the seed :func:`episode_seed` gives this copy's next episode.

    A reset given a seed (a VecEnv's ``seed(s)`` gives copy ``k`` the seed ``s + k``) starts
    the copy's sequence again from episode 0; resets without one continue it.

    :param env: one copy of a VecEnv
    :param base: the VecEnv's seed, from which a copy's index is read (``given seed - base``);
        None: the first seed given is the base and this copy is copy 0 (a single environment)
    """

    def __init__(self, env: gym.Env, base: int | None = None) -> None:
        super().__init__(env)
        self.base = None if base is None else int(base)
        self._copy = 0
        self._episode: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        if seed is not None:  # the VecEnv's seed for this copy: its first episode
            base = int(seed) if self.base is None else self.base
            self._base, self._copy, self._episode = base, int(seed) - base, 0
        if self._episode is not None:
            seed = episode_seed(self._base, self._copy, self._episode)
            self._episode += 1
        return self.env.reset(seed=seed, options=options)
