"""Corrupting teachers to a target score (the imperfect-teacher suites use it)."""

from __future__ import annotations

import math
import zipfile
from importlib import resources
from pathlib import Path

import pytest
import torch as th

from ppdistill.core.errors import PPDistillError
from ppdistill.evaluation import random_policy_score
from ppdistill.experiment.teacher_prep import calibrate_sigma, corrupt_teacher
from ppdistill.teachers.loading import load_teacher
from ppdistill.teachers.sb3_zip import read_sb3_zip

CARTPOLE = Path(str(resources.files("ppdistill").joinpath("assets", "cartpole-teacher.zip")))


def weights(path: Path) -> dict[str, th.Tensor]:
    return read_sb3_zip(path).policy_state


def test_corrupt_teacher_adds_independent_gaussian_noise_of_std_sigma(tmp_path):
    sigma = 0.05
    summary = corrupt_teacher(CARTPOLE, tmp_path / "c.zip", sigma=sigma, seed=1)
    before, after = weights(CARTPOLE), weights(tmp_path / "c.zip")
    assert after.keys() == before.keys()
    floats = [k for k, v in before.items() if v.is_floating_point()]
    for k in before.keys() - set(floats):
        assert th.equal(after[k], before[k]), k
    noise = th.cat([(after[k] - before[k]).double().flatten() for k in floats])
    n = noise.numel()
    assert (summary["tensors"], summary["weights"]) == (len(floats), n)
    assert n > 5000
    # N(0, σ²) samples: the sample std is σ ± σ/√(2n), the mean 0 ± σ/√n; five standard errors
    assert abs(float(noise.std()) - sigma) < 5 * sigma / math.sqrt(2 * n)
    assert abs(float(noise.mean())) < 5 * sigma / math.sqrt(n)
    # Gaussian, not merely the right std: 68.3% within one σ (a uniform noise has 57.7%)
    within = float((noise.abs() < sigma).double().mean())
    assert abs(within - 0.6827) < 5 * math.sqrt(0.6827 * 0.3173 / n)
    # every tensor perturbed, each with its own draws (not one noise vector reused)
    for k in floats:
        assert not th.equal(after[k], before[k]), k
    pairs = [
        (j, k) for i, j in enumerate(floats) for k in floats[i + 1 :] if before[j].shape == before[k].shape
    ]
    assert pairs
    for j, k in pairs:
        assert not th.equal(after[j] - before[j], after[k] - before[k]), (j, k)


def test_corrupt_teacher_noise_is_set_by_its_seed_alone(tmp_path):
    corrupt_teacher(CARTPOLE, tmp_path / "a.zip", sigma=0.1, seed=7)
    corrupt_teacher(CARTPOLE, tmp_path / "b.zip", sigma=0.1, seed=7)
    corrupt_teacher(CARTPOLE, tmp_path / "c.zip", sigma=0.1, seed=8)
    a, b, c, original = (
        weights(p) for p in (tmp_path / "a.zip", tmp_path / "b.zip", tmp_path / "c.zip", CARTPOLE)
    )
    for k, v in original.items():
        assert th.equal(a[k], b[k]), k  # same seed: the same teacher
        if v.is_floating_point():
            assert not th.equal(a[k], c[k]), k  # another seed: other noise in every tensor
    # the rest of the file is the source's, less the optimizer state (it belonged to other weights)
    with zipfile.ZipFile(CARTPOLE) as src, zipfile.ZipFile(tmp_path / "a.zip") as out:
        kept = set(src.namelist()) - {"policy.pth", "policy.optimizer.pth"}
        assert set(out.namelist()) == kept | {"policy.pth"}
        for name in kept:
            assert out.read(name) == src.read(name), name


def test_corrupt_teacher_with_zero_sigma_keeps_the_weights_and_refuses_a_negative_one(tmp_path):
    corrupt_teacher(CARTPOLE, tmp_path / "z.zip", sigma=0.0, seed=3)
    original, kept = weights(CARTPOLE), weights(tmp_path / "z.zip")
    assert kept.keys() == original.keys()
    for k in original:
        assert th.equal(kept[k], original[k]), k
    with pytest.raises(PPDistillError, match="sigma"):
        corrupt_teacher(CARTPOLE, tmp_path / "n.zip", sigma=-0.1)


def test_calibrate_sigma_finds_a_noise_level_that_halves_the_score(tmp_path, monkeypatch):
    import ppdistill.experiment.teacher_prep as prep

    episode_seeds = []
    real_evaluate = prep.evaluate

    def spy(*args, **kwargs):
        episode_seeds.append(kwargs["seed"])
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(prep, "evaluate", spy)
    target, tolerance, episodes = 0.5, 0.15, 5
    found = calibrate_sigma(CARTPOLE, "CartPole-v1", target_fraction=target, episodes=episodes,
                            tolerance=tolerance, seed=0)  # fmt: skip
    assert found["teacher_score"] > 400
    tried = found["tried"]
    assert 1 <= len(tried) <= 10
    # the teacher and every candidate are scored on the same seeded episodes
    assert len(episode_seeds) == 1 + len(tried) and len(set(episode_seeds)) == 1
    # it stops at the first σ within tolerance, and returns that σ with its fraction
    assert all(abs(f - target) > tolerance for _, f in tried[:-1]), tried
    assert (found["sigma"], found["fraction"]) == tried[-1]
    assert abs(found["fraction"] - target) <= tolerance, tried
    # the search: from 0.05, doubled while the score stays above target, halved while below,
    # then bisected in log scale once the target is bracketed
    lo = hi = None
    expected = 0.05
    for sigma, f in tried:
        assert sigma == pytest.approx(expected, rel=1e-12), tried
        lo, hi = (sigma, hi) if f > target else (lo, sigma)
        expected = math.sqrt(lo * hi) if lo and hi else (sigma * 2 if hi is None else sigma / 2)
    # the fraction reported is that σ's: the corrupted teacher, scored again independently
    corrupt_teacher(CARTPOLE, tmp_path / "t.zip", sigma=found["sigma"], seed=0)
    teacher = load_teacher(tmp_path / "t.zip", env_id="CartPole-v1")
    score = real_evaluate(teacher, "CartPole-v1", episodes, True, seed=episode_seeds[0]).mean
    random_score = random_policy_score("CartPole-v1", episodes, seed=episode_seeds[0])
    assert found["random_score"] == random_score
    want = (score - random_score) / (found["teacher_score"] - random_score)
    assert found["fraction"] == pytest.approx(want, rel=1e-9)


def test_calibrate_sigma_refuses_a_bad_target():
    with pytest.raises(PPDistillError, match="target fraction"):
        calibrate_sigma(CARTPOLE, "CartPole-v1", target_fraction=1.5)
