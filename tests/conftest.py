"""Shared fixtures: the RL Baselines3 Zoo teachers in ../shared, and small toy problems."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def zoo_dir() -> Path:
    """Where the zoo teachers are: $PPDISTILL_ZOO_DIR, else ../shared/teachers/rl-zoo beside the clone."""
    env = os.environ.get("PPDISTILL_ZOO_DIR")
    return Path(env) if env else REPO.parent / "shared" / "teachers" / "rl-zoo"


def zoo_path(relative: str) -> Path:
    """Path of one zoo run folder (e.g. ``ppo/CartPole-v1_1``), or skip when the zoo is absent.

    CI sets PPDISTILL_REQUIRE_ZOO=1, which turns the skip into a failure.
    """
    path = zoo_dir() / relative
    if not path.exists():
        reason = (
            f"zoo teacher {relative} not found under {zoo_dir()} "
            "(set PPDISTILL_ZOO_DIR to the rl-zoo folder to run these tests)"
        )
        if os.environ.get("PPDISTILL_REQUIRE_ZOO") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def cartpole_teacher():
    from ppdistill import load_teacher

    return load_teacher(zoo_path("ppo/CartPole-v1_1"))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # The networks in these tests are tiny: one thread is faster, and CI has two cores.
    import torch as th

    th.set_num_threads(1)
