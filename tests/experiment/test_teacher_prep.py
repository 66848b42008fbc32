"""Corrupting teachers to a target score (the imperfect-teacher suites use it)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from ppdistill.core.errors import PPDistillError
from ppdistill.experiment.teacher_prep import calibrate_sigma

CARTPOLE = Path(str(resources.files("ppdistill").joinpath("assets", "cartpole-teacher.zip")))


def test_calibrate_sigma_finds_a_noise_level_that_halves_the_score():
    found = calibrate_sigma(CARTPOLE, "CartPole-v1", target_fraction=0.5, episodes=5, tolerance=0.15)
    assert found["teacher_score"] > 400
    assert abs(found["fraction"] - 0.5) <= 0.15, found["tried"]
    # more noise than the smallest σ tried that kept nearly everything
    sigmas = [s for s, _ in found["tried"]]
    assert len(sigmas) <= 10 and found["sigma"] in sigmas


def test_calibrate_sigma_refuses_a_bad_target():
    with pytest.raises(PPDistillError, match="target fraction"):
        calibrate_sigma(CARTPOLE, "CartPole-v1", target_fraction=1.5)
