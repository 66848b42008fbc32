"""TQC, CrossQ, DDPG and ARS teachers (issue 15, item 2): each test trains its own artefact.

Every kind: saved by its algorithm, read back by ``load_teacher`` (through the allow-list
reader), it acts as the original model does on 1,000 observations, and loading it for an
environment of other spaces names both spaces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th

from ppdistill import PPD, load_teacher
from ppdistill.core.distributions import params_from_distribution
from ppdistill.core.errors import SpaceMismatchError
from ppdistill.core.losses import distillation_kl
from ppdistill.teachers.offpolicy import ArgmaxTeacher, DeterministicTeacher, SquashedGaussianTeacher

N_OBS = 1000


def _train(kind: str) -> tuple[Any, str]:
    """A small model of ``kind``, trained a few hundred steps, and its environment id."""
    from sb3_contrib import ARS, TQC, CrossQ
    from stable_baselines3 import DDPG, TD3

    def net() -> dict:
        return {"net_arch": [16, 16]}

    common = {"seed": 0, "device": "cpu"}
    off = {"learning_starts": 200, "batch_size": 32, **common}
    # ARS starts from zero weights by default: its outputs would all be 0
    ars = {"n_delta": 2, "zero_policy": False, **common}
    pendulum, cartpole = "Pendulum-v1", "CartPole-v1"
    models = {
        "tqc": lambda: (TQC("MlpPolicy", pendulum, policy_kwargs=net(), **off), pendulum),
        "crossq": lambda: (CrossQ("MlpPolicy", pendulum, policy_kwargs=net(), **off), pendulum),
        "ddpg": lambda: (DDPG("MlpPolicy", pendulum, policy_kwargs=net(), **off), pendulum),
        "td3": lambda: (TD3("MlpPolicy", pendulum, policy_kwargs=net(), **off), pendulum),
        "ars-mlp": lambda: (ARS("MlpPolicy", pendulum, policy_kwargs=net(), **ars), pendulum),
        "ars-linear": lambda: (ARS("LinearPolicy", pendulum, **ars), pendulum),
        # the zoo's ARS CartPole is linear (an MLP here happened to push every observation to one action)
        "ars-discrete": lambda: (ARS("LinearPolicy", cartpole, **ars), cartpole),
    }
    model, env_id = models[kind]()
    model.learn(300)
    return model, env_id


# kind → (teacher class, info["kind"], an environment of other spaces)
KINDS = {
    "tqc": (SquashedGaussianTeacher, "tqc", "MountainCarContinuous-v0"),
    "crossq": (SquashedGaussianTeacher, "crossq", "MountainCarContinuous-v0"),
    "ddpg": (DeterministicTeacher, "ddpg", "MountainCarContinuous-v0"),
    "td3": (DeterministicTeacher, "td3", "MountainCarContinuous-v0"),
    "ars-mlp": (DeterministicTeacher, "ars", "MountainCarContinuous-v0"),
    "ars-linear": (DeterministicTeacher, "ars", "MountainCarContinuous-v0"),
    "ars-discrete": (ArgmaxTeacher, "ars", "Acrobot-v1"),
}


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    """kind → (model, its saved zip, env id); each trained once, on first use."""
    folder = tmp_path_factory.mktemp("offpolicy-kinds")
    made: dict[str, tuple[Any, Path, str]] = {}

    def get(kind: str) -> tuple[Any, Path, str]:
        if kind not in made:
            model, env_id = _train(kind)
            path = folder / f"{kind}.zip"
            model.save(path)
            made[kind] = (model, path, env_id)
        return made[kind]

    return get


def observations(env_id: str, n: int = N_OBS) -> np.ndarray:
    space = gym.make(env_id).observation_space
    space.seed(0)
    return np.stack([space.sample() for _ in range(n)]).astype(np.float32)


@pytest.mark.parametrize("kind", list(KINDS))
def test_teacher_acts_as_the_saved_model_on_a_thousand_observations(artefacts, kind):
    model, path, env_id = artefacts(kind)
    cls, name, _ = KINDS[kind]
    teacher = load_teacher(path, env_id=env_id)
    assert isinstance(teacher, cls) and teacher.info["kind"] == name
    obs = observations(env_id)
    want, _ = model.predict(obs, deterministic=True)
    got, _ = teacher.predict(obs, deterministic=True)
    assert got.shape == want.shape
    if kind == "ars-discrete":
        np.testing.assert_array_equal(got, want)
        assert set(np.unique(want)) == {0, 1}  # both actions taken: not a constant policy
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        assert np.unique(np.round(want, 4)).size > 100  # a policy whose action depends on the state
    if kind == "ars-linear":  # unsquashed: the output is clipped to the bounds, as ARS does
        assert np.any(np.abs(want) == 2.0) and np.any(np.abs(want) < 2.0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_teacher_for_another_environment_names_both_spaces(artefacts, kind):
    _, path, env_id = artefacts(kind)
    other = KINDS[kind][2]
    with pytest.raises(SpaceMismatchError) as info:
        load_teacher(path, env_id=other)
    ours, theirs = gym.make(env_id).observation_space, gym.make(other).observation_space
    msg = str(info.value)
    assert str(ours.shape) in msg and str(theirs.shape) in msg and "\n" not in msg, msg


def test_squashed_kinds_target_the_moment_matched_gaussian_of_their_actor(artefacts):
    """TQC and CrossQ: the target is SAC's (mean and std of the squashed, rescaled actions)."""
    for kind in ("tqc", "crossq"):
        model, path, env_id = artefacts(kind)
        teacher = load_teacher(path, env_id=env_id)
        obs = th.as_tensor(observations(env_id, 16))
        target = teacher(obs).params
        mean, log_std, _ = model.policy.actor.get_action_dist_params(obs)
        g = th.Generator().manual_seed(0)
        samples = 2.0 * th.tanh(mean + log_std.exp() * th.randn((100_000, *mean.shape), generator=g))
        assert th.allclose(target[:, :1], samples.mean(0), atol=2e-2), kind
        assert th.allclose(target[:, 1:].exp(), samples.std(0), atol=2e-2), kind


def test_crossq_teacher_uses_its_running_statistics_not_the_batchs(artefacts):
    _, path, env_id = artefacts("crossq")
    teacher = load_teacher(path, env_id=env_id)
    teacher.train()  # a teacher stays in eval mode
    obs = th.as_tensor(observations(env_id, 64))
    whole = teacher(obs).params
    one_by_one = th.cat([teacher(obs[i : i + 1]).params for i in range(len(obs))])
    assert th.allclose(whole, one_by_one, atol=1e-6)


def test_deterministic_targets_are_narrow_gaussians_around_the_action(artefacts):
    for kind in ("ddpg", "ars-linear"):
        model, path, env_id = artefacts(kind)
        teacher = load_teacher(path, env_id=env_id, target_std=0.2)
        obs = observations(env_id, 32)
        params = teacher(th.as_tensor(obs)).params
        want, _ = model.predict(obs, deterministic=True)
        np.testing.assert_allclose(params[:, :1].numpy(), want, atol=1e-5)
        assert th.allclose(params[:, 1:].exp(), th.full((32, 1), 0.2 * 2.0)), kind  # 0.2 x half of [-2, 2]


def test_ars_discrete_target_is_a_softmax_of_its_outputs_at_the_temperature(artefacts):
    model, path, env_id = artefacts("ars-discrete")
    teacher = load_teacher(path, env_id=env_id, temperature=0.5)
    assert teacher.info["temperature"] == 0.5
    obs = th.as_tensor(observations(env_id, 32))
    policy = model.policy
    outputs = policy.action_net(policy.extract_features(obs, policy.features_extractor))
    assert th.allclose(teacher(obs).params, outputs / 0.5)


def test_a_ppd_student_learns_from_a_tqc_teacher(artefacts):
    _, path, env_id = artefacts("tqc")
    teacher = load_teacher(path, env_id=env_id)
    model = PPD(
        "MlpPolicy", env_id, teacher=teacher, n_steps=64, batch_size=32, n_epochs=4, seed=0, device="cpu"
    )
    obs = th.as_tensor(observations(env_id, 256))

    def kl() -> float:
        with th.no_grad():
            dist, _ = model._student_forward(obs, with_values=False)
            student = params_from_distribution(dist)
            return distillation_kl(model.action_space, teacher(obs).params, student).mean().item()

    before = kl()
    model.learn(512)
    assert teacher.n_calls > 0 and model.teacher_info["kind"] == "tqc"
    assert np.isfinite(kl()) and kl() < before
