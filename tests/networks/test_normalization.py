"""Observation normalization inside a network: VecNormalize's transform, frozen or running."""

from __future__ import annotations

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from ppdistill.networks.normalization import (
    NormalizedFlattenExtractor,
    ObsNormalizer,
    RunningNormalizedFlattenExtractor,
)

from ..toy import ACTION_SPACES, ToyEnv


def test_frozen_normalizer_is_vecnormalize_with_training_off():
    env = VecNormalize(DummyVecEnv([lambda: ToyEnv(ACTION_SPACES["discrete"], obs_offset=3.0)]), clip_obs=2.0)
    rng = np.random.default_rng(0)
    env.obs_rms.update(rng.normal(3.0, 4.0, size=(50, 4)))
    env.training = False
    obs = rng.normal(3.0, 10.0, size=(32, 4)).astype(np.float32)  # far out: the clipping is hit
    normalizer = ObsNormalizer(env.obs_rms.mean, env.obs_rms.var, clip_obs=2.0, epsilon=env.epsilon)
    got = normalizer(th.as_tensor(obs)).numpy()
    np.testing.assert_allclose(got, env.normalize_obs(obs), rtol=1e-5, atol=1e-6)
    assert np.abs(got).max() == 2.0
    stats = normalizer.stats()
    np.testing.assert_allclose(stats["var"], env.obs_rms.var, rtol=1e-4)


def test_frozen_normalizer_on_dict_observations_normalizes_each_key():
    mean = {"a": np.array([1.0, 2.0]), "b": np.array([-1.0])}
    var = {"a": np.array([4.0, 9.0]), "b": np.array([0.25])}
    out = ObsNormalizer(mean, var)({"a": th.tensor([[3.0, 5.0]]), "b": th.tensor([[0.0]])})
    assert isinstance(out, dict)
    np.testing.assert_allclose(out["a"].numpy(), [[1.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(out["b"].numpy(), [[2.0]], rtol=1e-6)


def test_running_extractor_with_given_statistics_equals_the_frozen_one():
    space = spaces.Box(-np.inf, np.inf, (3,))
    running = RunningNormalizedFlattenExtractor(space, clip_obs=5.0)
    running.update(np.random.default_rng(1).normal(10.0, 3.0, size=(64, 3)))
    frozen = NormalizedFlattenExtractor(space, running.mean.numpy(), running.var.numpy(), clip_obs=5.0)
    obs = th.as_tensor(np.random.default_rng(2).normal(10.0, 20.0, size=(16, 3)), dtype=th.float32)
    th.testing.assert_close(running(obs), frozen(obs))


def test_running_statistics_merge_batches_as_one():
    extractor = RunningNormalizedFlattenExtractor(spaces.Box(-np.inf, np.inf, (3,)))
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=50.0, scale=s, size=(n, 3)) for s, n in ((1.0, 7), (5.0, 40), (0.1, 3))]
    for batch in batches:
        extractor.update(batch)
    whole = np.concatenate(batches)
    # SB3's RunningMeanStd (VecNormalize's), fed the same batches, from the same start
    reference = RunningMeanStd(shape=(3,))
    for batch in batches:
        reference.update(batch)
    np.testing.assert_allclose(extractor.mean.numpy(), reference.mean, rtol=1e-6)
    np.testing.assert_allclose(extractor.var.numpy(), reference.var, rtol=1e-6)
    # and only that start (a count of 1e-4 at mean 0, variance 1) separates it from the whole batch
    np.testing.assert_allclose(extractor.mean.numpy(), whole.mean(0), rtol=1e-5)
    np.testing.assert_allclose(extractor.var.numpy(), whole.var(0), rtol=1e-3)
    obs = th.as_tensor(whole[:4], dtype=th.float32)
    expected = (whole[:4] - reference.mean) / np.sqrt(reference.var + 1e-8)
    np.testing.assert_allclose(extractor(obs).numpy(), expected, rtol=1e-3, atol=1e-4)
