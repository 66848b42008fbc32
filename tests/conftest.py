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


# ---- small saved students (export, compare, deploy CLI) -------------------------------

STUDENT_TEACHERS = {
    "CartPole-v1": "ppo/CartPole-v1_1",  # Discrete
    "Pendulum-v1": "ppo/Pendulum-v1_1",  # Box
    "Hopper-v5": "ppo/Hopper-v3_1",  # Box, teacher with VecNormalize: the student inherits it
}


@pytest.fixture(scope="session")
def saved_students(tmp_path_factory):
    """Builds (once per session) and returns ``path_of(env_id)``: a PPD student trained a few
    hundred steps from the zoo teacher and saved as a zip."""
    from ppdistill import PPD, load_teacher

    folder = tmp_path_factory.mktemp("students")
    paths: dict[str, Path] = {}

    def path_of(env_id: str) -> Path:
        if env_id not in paths:
            teacher = load_teacher(zoo_path(STUDENT_TEACHERS[env_id]))
            steps = 64 if env_id == "Hopper-v5" else 256
            model = PPD("MlpPolicy", env_id, teacher=teacher, n_steps=64, batch_size=64, n_epochs=2,
                        seed=0, policy_kwargs={"net_arch": [32, 16]})  # fmt: skip
            model.learn(steps)
            paths[env_id] = folder / f"{env_id}.zip"
            model.save(paths[env_id])
        return paths[env_id]

    return path_of
