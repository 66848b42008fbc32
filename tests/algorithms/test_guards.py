"""NaN and infinities stop training with one line that says what and where; the last good checkpoint stays."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from ppdistill import PPD, StudentDistill, TeacherDistill, load_teacher
from ppdistill.algorithms import baselines, proximal
from ppdistill.core.errors import NonFiniteError
from ppdistill.experiment.checkpoints import CHECKPOINT_NAME, read_checkpoint
from ppdistill.experiment.runner import CHECKPOINT_DIR, run
from ppdistill.experiment.spec import RunSpec

from ..conftest import zoo_path

ALGORITHMS = {"ppd": PPD, "student-distill": StudentDistill, "teacher-distill": TeacherDistill}


def flaky_teacher(good_calls: int, value: float = float("nan")):
    """A CartPole teacher (the zoo's) whose outputs turn to ``value`` after ``good_calls`` calls."""
    real = load_teacher(zoo_path("ppo/CartPole-v1_1"))
    calls = [0]

    def params(obs):
        calls[0] += 1
        out = real(obs).params
        return out if calls[0] <= good_calls else th.full_like(out, value)

    return load_teacher(params, env_id="CartPole-v1")


class Poison(gym.Wrapper):
    """CartPole whose reward or observation becomes ``value`` at the ``at``-th step."""

    def __init__(self, env, what: str, at: int, value: float = float("nan")):
        super().__init__(env)
        self.what, self.at, self.value, self.t = what, at, value, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.t == self.at:
            if self.what == "reward":
                reward = self.value
            else:
                obs = np.full_like(obs, self.value)
        return obs, reward, terminated, truncated, info


def model(method, env="CartPole-v1", teacher=None, **kwargs):
    teacher = teacher or load_teacher(zoo_path("ppo/CartPole-v1_1"))
    extra = {"batch_size": 64} if method == "ppd" else {}
    return ALGORITHMS[method]("MlpPolicy", env, teacher=teacher, n_steps=32, seed=0, device="cpu",
                              **extra, **kwargs)  # fmt: skip


def one_line(exc_info):
    message = str(exc_info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("method", list(ALGORITHMS))
@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_teacher_output(method, value):
    algo = model(
        method, teacher=flaky_teacher(good_calls=3 if method != "teacher-distill" else 70, value=value)
    )
    with pytest.raises(NonFiniteError) as exc_info:
        algo.learn(10_000)
    kind = "NaN" if value != value else "infinite"
    assert f"the teacher's output is {kind} at env step" in one_line(exc_info)
    assert algo.num_timesteps < 10_000
    assert all(th.isfinite(p).all() for p in algo.policy.parameters())


@pytest.mark.parametrize("method", list(ALGORITHMS))
@pytest.mark.parametrize("what", ["reward", "observation"])
def test_environment_output(method, what):
    env = make_vec_env(lambda: Poison(gym.make("CartPole-v1"), what, at=50), n_envs=1, seed=0)
    algo = model(method, env=env)
    with pytest.raises(NonFiniteError) as exc_info:
        algo.learn(10_000)
    message = one_line(exc_info)
    assert f"{'a reward' if what == 'reward' else 'an observation'} is NaN" in message
    assert "env step" in message and "environment" in message
    assert algo.num_timesteps <= 64  # stopped within the rollout that met it, or the next one
    assert all(th.isfinite(p).all() for p in algo.policy.parameters())


@pytest.mark.parametrize("method", list(ALGORITHMS))
def test_loss(method, monkeypatch):
    module = proximal if method == "ppd" else baselines  # where each loss is computed
    real_kl, calls = module.distillation_kl, [0]

    def kl(*args, **kwargs):
        calls[0] += 1
        out = real_kl(*args, **kwargs)
        return out if calls[0] <= 5 else out * float("nan")

    monkeypatch.setattr(module, "distillation_kl", kl)
    algo = model(method)
    with pytest.raises(NonFiniteError) as exc_info:
        algo.learn(10_000)
    assert "loss is NaN or infinite in update" in one_line(exc_info)
    # raised before the optimizer step: the weights are still finite
    assert all(th.isfinite(p).all() for p in algo.policy.parameters())


def test_a_run_that_meets_a_nan_keeps_its_last_good_checkpoint(tmp_path):
    spec = RunSpec(
        env_id="CartPole-v1",
        method="ppd",
        teacher=str(zoo_path("ppo/CartPole-v1_1")),
        timesteps=4096,
        hp={"n_envs": 2, "n_steps": 64, "batch_size": 64},
        eval_episodes=1,
        final_episodes=1,
    )
    # one teacher call per 128-step rollout (and one per final-evaluation batch): NaN from step 640
    with pytest.raises(NonFiniteError, match="teacher's output is NaN at env step 640"):
        run(spec, out=tmp_path / "out", teacher=flaky_teacher(good_calls=4), checkpoint_freq=256)
    kept = read_checkpoint(tmp_path / "out" / CHECKPOINT_DIR / CHECKPOINT_NAME)
    assert kept.num_timesteps == 512  # written at 0, 256, 512; the rollout to 640 failed
    assert not (tmp_path / "out" / "student.zip").exists()


@pytest.mark.parametrize("what", ["reward", "observation"])
def test_ppo_from_scratch_in_a_run_is_checked_too(tmp_path, what):
    env_id = f"PoisonedCartPole-{what}-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=lambda: Poison(gym.make("CartPole-v1"), what, at=300))
    spec = RunSpec(
        env_id=env_id,
        method="ppo",
        teacher=str(zoo_path("ppo/CartPole-v1_1")),
        timesteps=1024,
        hp={"n_envs": 1, "n_steps": 64, "batch_size": 64},
        eval_freq=4096,  # one evaluation, at the start (too short an episode to meet the poison)
        eval_episodes=1,
    )
    with pytest.raises(
        NonFiniteError, match=f"{'a reward' if what == 'reward' else 'an observation'} is NaN"
    ):
        run(spec, out=tmp_path / "out", checkpoint_freq=32)
    assert read_checkpoint(tmp_path / "out" / CHECKPOINT_DIR / CHECKPOINT_NAME).num_timesteps == 256


def test_evaluation_on_an_environment_that_returns_nan():
    from ppdistill import evaluate

    student = model("ppd")
    with pytest.raises(NonFiniteError, match="NaN or infinite during evaluation"):
        evaluate(student, Poison(gym.make("CartPole-v1"), "observation", at=3), n_episodes=1)
