"""Evaluation episodes each from their own seed: the same episodes, in the same order, for
every agent scored with one seed (what the benchmark's paired statistics rest on)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from ppdistill.envs.episode_seeds import EpisodeSeeds
from ppdistill.evaluation import evaluate


class Constant:
    """Always the same action: an agent whose returns follow from the episodes' starts."""

    def __init__(self, action: int) -> None:
        self.action = action

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return np.full(len(observation), self.action), None


def played_alone(action: int, seed: int) -> float:
    env = gym.make("CartPole-v1")
    env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        _, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        done = terminated or truncated
    return total


def test_the_ith_return_is_the_episode_of_the_ith_seed_in_copy_order():
    # 6 episodes on 4 copies: SB3 plays 1, 1, 2, 2 on them; copy k's j-th episode starts from
    # seed 100 + k + 4j, and the returns are listed copy by copy
    seeds = [100, 101, 102, 106, 103, 107]
    for action in (0, 1):
        result = evaluate(Constant(action), "CartPole-v1", n_episodes=6, seed=100)
        assert result.paired
        assert list(result.returns) == [played_alone(action, s) for s in seeds]


def test_an_episode_starts_the_same_whatever_was_played_before():
    # LunarLander draws from its generator while stepping: without a seed per episode, the
    # second episode's start would depend on the first one's actions
    starts = []
    for steps in (1, 50):
        env = EpisodeSeeds(gym.make("LunarLander-v3"), stride=1)
        env.reset(seed=7)
        for _ in range(steps):
            env.step(env.action_space.sample())
        starts.append(env.reset()[0])
    np.testing.assert_array_equal(*starts)


def test_without_a_seed_nothing_is_paired():
    assert not evaluate(Constant(0), "CartPole-v1", n_episodes=2).paired
