"""Evaluation episodes each from their own seed: the same episodes, in the same order, for
every agent scored with one seed (what the benchmark's paired statistics rest on)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from ppdistill.envs.episode_seeds import EpisodeSeeds, episode_seed
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
    # episode_seed(100, k, j), and the returns are listed copy by copy
    seeds = [episode_seed(100, k, j) for k, j in [(0, 0), (1, 0), (2, 0), (2, 1), (3, 0), (3, 1)]]
    for action in (0, 1):
        result = evaluate(Constant(action), "CartPole-v1", n_episodes=6, seed=100)
        assert result.paired
        assert list(result.returns) == [played_alone(action, s) for s in seeds]


def test_an_episode_starts_the_same_whatever_was_played_before():
    # LunarLander draws from its generator while stepping: without a seed per episode, the
    # second episode's start would depend on the first one's actions
    starts = []
    for steps in (1, 50):
        env = EpisodeSeeds(gym.make("LunarLander-v3"))
        env.reset(seed=7)
        for _ in range(steps):
            env.step(env.action_space.sample())
        starts.append(env.reset()[0])
    np.testing.assert_array_equal(*starts)


def test_without_a_seed_nothing_is_paired():
    assert not evaluate(Constant(0), "CartPole-v1", n_episodes=2).paired


def test_evaluation_seeds_one_apart_share_no_episode():
    # the final evaluations of training seeds 100-104 (SeedPlan: seed + 20000), 50 episodes on
    # one copy or on 8: 250 different starts, and the same ones every time
    for copies in (1, 8):
        per_copy = -(-50 // copies)
        seeds = [
            episode_seed(20_000 + s, k, j)
            for s in range(100, 105)
            for k in range(copies)
            for j in range(per_copy)
        ]
        assert len(set(seeds)) == len(seeds)
    assert episode_seed(20_100, 0, 1) == episode_seed(20_100, 0, 1)
    assert episode_seed(20_100, 0, 1) not in {episode_seed(20_101, 0, 0), episode_seed(20_100, 1, 0)}


def test_two_training_seeds_teachers_play_different_episodes():
    teacher_a = evaluate(Constant(0), "CartPole-v1", n_episodes=20, seed=20_100)
    teacher_b = evaluate(Constant(0), "CartPole-v1", n_episodes=20, seed=20_101)
    # a constant agent's return follows from the start alone: equal returns would mean equal starts
    assert list(teacher_a.returns) != list(teacher_b.returns)
    assert list(teacher_a.returns) == list(
        evaluate(Constant(0), "CartPole-v1", n_episodes=20, seed=20_100).returns
    )


def test_a_copys_index_is_read_from_its_seed():
    env = EpisodeSeeds(gym.make("CartPole-v1"), base=50)
    first = env.reset(seed=53)[0]  # copy 3 of a VecEnv seeded with 50
    alone = gym.make("CartPole-v1")
    np.testing.assert_array_equal(first, alone.reset(seed=episode_seed(50, 3, 0))[0])
    np.testing.assert_array_equal(env.reset()[0], alone.reset(seed=episode_seed(50, 3, 1))[0])
