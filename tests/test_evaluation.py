"""evaluate(): a model trained inside VecNormalize is scored with its own statistics."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

from ppdistill import evaluate
from ppdistill.envs import make_vec_env
from ppdistill.envs.episode_seeds import EpisodeSeeds


@pytest.fixture(scope="module")
def normalized_model():
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=0), norm_reward=False)
    model = PPO("MlpPolicy", env, n_steps=256, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(512)
    # statistics far from the identity, so that raw and normalized inputs act differently
    assert np.abs(env.obs_rms.var - 1).max() > 0.1 or np.abs(env.obs_rms.mean).max() > 0.1
    return model


def test_an_env_id_evaluates_through_the_models_frozen_statistics(normalized_model):
    ours = evaluate(normalized_model, "Pendulum-v1", n_episodes=4, seed=7)
    seeded = functools.partial(EpisodeSeeds, base=7)  # every episode from its own seed, as evaluate does
    frozen = VecNormalize(
        make_vec_env("Pendulum-v1", n_envs=4, training=False, wrapper_class=seeded),
        training=False,
        norm_reward=False,
    )
    frozen.obs_rms = normalized_model.get_vec_normalize_env().obs_rms
    frozen.seed(7)
    by_hand, _ = evaluate_policy(normalized_model, frozen, n_eval_episodes=4, return_episode_rewards=True)
    assert list(ours.returns) == pytest.approx(by_hand)
    raw = make_vec_env("Pendulum-v1", n_envs=4, training=False)
    with pytest.warns(UserWarning, match="trained inside VecNormalize"):
        without = evaluate(normalized_model, raw, n_episodes=4, seed=7)
    assert list(without.returns) != pytest.approx(by_hand)  # what was silently reported before


def test_the_returns_spread_is_the_sample_standard_deviation():
    from ppdistill.evaluation import EvalResult

    assert EvalResult(np.array([1.0, 3.0])).std == pytest.approx(np.sqrt(2.0))  # not 1.0 (ddof 0)
    assert EvalResult(np.array([5.0])).std == 0.0


def test_sampled_actions_are_seeded_by_the_seed_and_leave_torchs_generator_as_it_was(normalized_model):
    import torch as th

    th.manual_seed(123)
    first = evaluate(normalized_model, "Pendulum-v1", n_episodes=2, deterministic=False, seed=7)
    after = th.rand(1)
    th.manual_seed(999)  # another state before: the same samples
    again = evaluate(normalized_model, "Pendulum-v1", n_episodes=2, deterministic=False, seed=7)
    assert list(first.returns) == list(again.returns)
    th.manual_seed(123)
    assert th.equal(th.rand(1), after)  # the evaluation drew nothing from the caller's generator
