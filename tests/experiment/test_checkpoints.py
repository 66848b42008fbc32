"""Checkpoints and resume: bit-identical continuation on CPU, atomic files, the --out rules."""

from __future__ import annotations

import json
import os

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from ppdistill import PPD, TeacherDistill, load_teacher
from ppdistill.core.errors import PPDistillError
from ppdistill.experiment.checkpoints import (
    CHECKPOINT_NAME,
    CheckpointError,
    EpisodeRecorder,
    PeriodicCheckpoint,
    load_into,
    read_checkpoint,
    write_checkpoint,
)
from ppdistill.experiment.config import algorithm_class, hyperparameters
from ppdistill.experiment.runner import CHECKPOINT_DIR, RUN_FILE, resume, run
from ppdistill.experiment.spec import RunSpec

from ..conftest import zoo_path
from ..helpers import Interrupt, assert_same_tensors, interrupt_after, weights

CARTPOLE = "ppo/CartPole-v1_1"


def small_spec(method, timesteps=2048, **hp):
    settings = hyperparameters("CartPole-v1", method)
    settings.update(n_envs=2, **hp)
    return RunSpec(
        env_id="CartPole-v1",
        method=method,
        teacher=str(zoo_path(CARTPOLE)),
        timesteps=timesteps,
        seed=5,
        hp=settings,
        eval_freq=512,
        eval_episodes=2,
        final_episodes=3,
    )


@pytest.mark.parametrize(
    ("method", "hp", "stop_after"),
    [
        ("ppd", {"n_steps": 64, "batch_size": 64}, 7),  # 128-step rollouts: fails at step 896
        ("teacher-distill", {}, 40),  # 16-step rollouts: fails at step 640
        # the student's own running statistics move between rollouts: a checkpoint carries them
        ("student-distill", {"student_obs_norm": "running"}, 40),
    ],
)
def test_interrupted_then_resumed_run_is_bit_identical(tmp_path, method, hp, stop_after):
    spec = small_spec(method, **hp)
    whole = run(spec, out=tmp_path / "whole", checkpoint_freq=300)
    with pytest.raises(Interrupt):
        run(spec, out=tmp_path / "cut", checkpoint_freq=300, on_model=interrupt_after(stop_after))
    # the interrupted run left its spec and a complete checkpoint, and no final outputs
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == [CHECKPOINT_DIR]
    saved = read_checkpoint(tmp_path / "cut" / CHECKPOINT_DIR / CHECKPOINT_NAME)
    assert 300 <= saved.num_timesteps < 1024

    resumed = resume(tmp_path / "cut")
    assert resumed["resumed"] == [{"from_step": saved.num_timesteps, "exact": True}]
    assert not (tmp_path / "cut" / CHECKPOINT_DIR).exists()
    assert_same_tensors(
        weights(tmp_path / "whole" / "student.zip"), weights(tmp_path / "cut" / "student.zip")
    )
    for key in ("returns", "score", "agreement", "env_steps"):
        assert resumed[key] == whole[key], key
    # the evaluation history continues where it stopped (wall times aside)
    strip = [{k: v for k, v in row.items() if k != "wall_time_s"} for row in whole["curve"]]
    assert [{k: v for k, v in row.items() if k != "wall_time_s"} for row in resumed["curve"]] == strip
    assert len(strip) == 5  # steps 0, 512, 1024, 1536, 2048


def test_same_seed_gives_the_same_evaluation_numbers():
    spec = small_spec("ppd", timesteps=1024, n_steps=64, batch_size=64)
    first, second = run(spec), run(spec)
    for key in ("returns", "score", "score_std", "agreement", "teacher_score"):
        assert first[key] == second[key], key
    assert [(r["timesteps"], r["mean"], r["std"]) for r in first["curve"]] == [
        (r["timesteps"], r["mean"], r["std"]) for r in second["curve"]
    ]


# ---- library level: VecNormalize and gSDE -------------------------------------------------


def _cartpole_vecnormalize():
    venv = make_vec_env("CartPole-v1", n_envs=2, seed=1, wrapper_class=EpisodeRecorder)
    model = PPD(
        "MlpPolicy",
        VecNormalize(venv, norm_reward=True),
        teacher=load_teacher(zoo_path(CARTPOLE)),
        n_steps=64,
        batch_size=64,
        seed=1,
        device="cpu",
    )
    return model


def _pendulum_sde():
    venv = make_vec_env("Pendulum-v1", n_envs=2, seed=2, wrapper_class=EpisodeRecorder)
    return PPD(
        "MlpPolicy",
        venv,
        teacher=load_teacher(zoo_path("ppo/Pendulum-v1_1")),
        n_steps=64,
        batch_size=64,
        use_sde=True,
        sde_sample_freq=4,
        distill_lambda=0.5,
        seed=2,
        device="cpu",
    )


@pytest.mark.parametrize("build", [_cartpole_vecnormalize, _pendulum_sde], ids=["vecnormalize", "gsde"])
def test_library_resume_restores_vecnormalize_and_sde_noise(tmp_path, build):
    path = tmp_path / CHECKPOINT_NAME
    whole = build()
    whole.learn(768, callback=PeriodicCheckpoint(tmp_path / "unused.zip", 10_000))

    first = build()
    first.learn(768, callback=PeriodicCheckpoint(path, 384))
    saved = read_checkpoint(path)  # taken at step 384, the start of the 4th rollout
    assert saved.num_timesteps == 384

    again = build()
    assert load_into(again, saved, seed=0) is True
    again.learn(768 - 384, callback=PeriodicCheckpoint(path, 10_000, restore_rng=saved.state["rng"]),
                reset_num_timesteps=False)  # fmt: skip
    assert again.num_timesteps == whole.num_timesteps == 768
    assert_same_tensors(whole.policy.state_dict(), again.policy.state_dict())
    assert_same_tensors(whole.policy.optimizer.state_dict(), again.policy.optimizer.state_dict())
    vecnorm, vecnorm_again = whole.get_vec_normalize_env(), again.get_vec_normalize_env()
    if vecnorm is not None:
        assert np.array_equal(vecnorm.obs_rms.mean, vecnorm_again.obs_rms.mean)
        assert np.array_equal(vecnorm.returns, vecnorm_again.returns)


class Unreplayable(gym.Wrapper):
    """Observations that no seed or action sequence reproduces."""

    def _noisy(self, obs):
        noise = np.random.default_rng(int.from_bytes(os.urandom(4), "little")).normal(size=obs.shape)
        return (obs + 1e-3 * noise).astype(np.float32)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._noisy(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._noisy(obs), reward, terminated, truncated, info


def test_environment_that_cannot_be_replayed_resumes_inexactly_and_says_so(tmp_path):
    def build():
        venv = make_vec_env(
            lambda: Unreplayable(gym.make("CartPole-v1")), n_envs=2, seed=0, wrapper_class=EpisodeRecorder
        )
        return PPD("MlpPolicy", venv, teacher=load_teacher(zoo_path(CARTPOLE)), n_steps=32, batch_size=64,
                   seed=0, device="cpu")  # fmt: skip

    build().learn(128, callback=PeriodicCheckpoint(tmp_path / CHECKPOINT_NAME, 64))
    saved = read_checkpoint(tmp_path / CHECKPOINT_NAME)
    model = build()
    with pytest.warns(UserWarning, match="cannot be rebuilt exactly"):
        assert load_into(model, saved, seed=0) is False
    model.learn(64, reset_num_timesteps=False)  # it trains on, from fresh episodes
    assert model.num_timesteps == saved.num_timesteps + 64


def test_teacher_distill_checkpoint_keeps_the_teachers_episode_statistics(tmp_path):
    teacher = load_teacher(zoo_path(CARTPOLE))
    model = TeacherDistill("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), teacher=teacher,
                           n_steps=64, seed=0, device="cpu")  # fmt: skip
    model.learn(1024)
    assert len(model.teacher_ep_info_buffer) > 0
    write_checkpoint(tmp_path / CHECKPOINT_NAME, model)
    fresh = TeacherDistill("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), teacher=teacher,
                           n_steps=64, seed=0, device="cpu")  # fmt: skip
    with pytest.warns(UserWarning, match="cannot be rebuilt exactly"):  # no EpisodeRecorder here
        load_into(fresh, read_checkpoint(tmp_path / CHECKPOINT_NAME), seed=0)
    assert list(fresh.teacher_ep_info_buffer) == list(model.teacher_ep_info_buffer)
    assert fresh.num_timesteps == 1024 and fresh._n_updates == model._n_updates


# ---- files and folders ----------------------------------------------------------------


def test_checkpoint_replacement_is_atomic(tmp_path, monkeypatch):
    model = PPD(
        "MlpPolicy", "CartPole-v1", teacher=load_teacher(zoo_path(CARTPOLE)), n_steps=32, device="cpu"
    )
    path = tmp_path / CHECKPOINT_NAME
    write_checkpoint(path, model)
    before = path.read_bytes()
    model.num_timesteps = 999

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(path, model)
    assert path.read_bytes() == before  # the old checkpoint is whole
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]  # no temporary left


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(path)


def test_new_run_refuses_a_folder_with_an_unfinished_run(tmp_path):
    spec = small_spec("ppd", timesteps=512, n_steps=64, batch_size=64)
    with pytest.raises(Interrupt):
        run(spec, out=tmp_path / "out", checkpoint_freq=128, on_model=interrupt_after(1))
    assert (tmp_path / "out" / CHECKPOINT_DIR / RUN_FILE).is_file()
    record = json.loads((tmp_path / "out" / CHECKPOINT_DIR / RUN_FILE).read_text())
    assert record["spec"]["timesteps"] == 512 and record["checkpoint_freq"] == 128
    with pytest.raises(PPDistillError, match=r"unfinished run.*--resume"):
        run(spec, out=tmp_path / "out")


def test_resume_needs_an_unfinished_run(tmp_path):
    with pytest.raises(CheckpointError, match="no unfinished run"):
        resume(tmp_path)


def test_a_gaussian_student_resumes_bit_for_bit_without_taking_its_teachers_std_again(tmp_path):
    """PPD starts a Gaussian student's log-std at its teacher's on the first rollout; a resumed
    run used to do it again over the trained one (a Box-only bug: CartPole cannot show it)."""
    settings = hyperparameters("Pendulum-v1", "ppd")
    settings.update(n_envs=2, n_steps=32, batch_size=64, use_sde=False)
    teacher = str(zoo_path("ppo/Pendulum-v1_1"))
    spec = RunSpec(env_id="Pendulum-v1", method="ppd", teacher=teacher, timesteps=512, student="8,8", seed=2,
                   hp=settings, eval_episodes=1, final_episodes=1)  # fmt: skip
    run(spec, out=tmp_path / "whole", checkpoint_freq=128)
    with pytest.raises(Interrupt):
        run(spec, out=tmp_path / "cut", checkpoint_freq=128, on_model=interrupt_after(5))
    result = resume(tmp_path / "cut")
    assert [r["exact"] for r in result["resumed"]] == [True]
    assert_same_tensors(
        weights(tmp_path / "cut" / "student.zip"), weights(tmp_path / "whole" / "student.zip")
    )


@pytest.mark.parametrize(
    ("method", "privileged", "student_obs"),
    [
        ("ppd", 0.0, "positions"),
        ("student-distill", 0.0, "positions"),
        ("teacher-distill", 0.0, "positions"),
        ("ppo", None, "positions"),
        ("ppd", 1.0, "positions"),
        ("ppd", 1.0, "positions-change"),
    ],
)
def test_an_lstm_student_on_positions_only_resumes_bit_for_bit(
    tmp_path, monkeypatch, method, privileged, student_obs
):
    """The student's LSTM states at the rollout boundary are part of the checkpoint: without
    them the resumed student would act from a blank memory mid-episode. The student sees
    CartPole's positions only (its velocities masked), the zoo teacher the whole state. With a
    privileged prediction, its head and the head's optimizer state are in the checkpoint too.
    Seeing the positions' change since the step before, the first step after the resume has
    the same change as the run never stopped."""
    settings = hyperparameters("CartPole-v1", method)
    settings.update(n_envs=2, n_steps=32, batch_size=32, student_policy="lstm")
    if privileged:
        settings["privileged_prediction"] = privileged
    spec = RunSpec(env_id="CartPole-v1", method=method, teacher=str(zoo_path(CARTPOLE)), timesteps=512,
                   student="8,8", seed=4, hp=settings, eval_episodes=1, final_episodes=2,
                   student_obs=student_obs)  # fmt: skip
    whole = run(spec, out=tmp_path / "whole", checkpoint_freq=128)
    view = {"entries": [0, 2], "name": "positions"}
    if student_obs == "positions-change":
        view["change"] = True
    assert whole["env"]["student"]["student_view"] == view
    assert whole["student_policy"] == "lstm" and whole["agreement"] is None
    cls = algorithm_class(method, "lstm")
    train, calls = cls.train, [0]

    def failing_train(self):  # on the class: a model holding a view's wrapper is not picklable
        calls[0] += 1
        if calls[0] > 5:
            raise Interrupt
        train(self)

    monkeypatch.setattr(cls, "train", failing_train)
    with pytest.raises(Interrupt):
        run(spec, out=tmp_path / "cut", checkpoint_freq=128)
    monkeypatch.setattr(cls, "train", train)
    saved = read_checkpoint(tmp_path / "cut" / CHECKPOINT_DIR / CHECKPOINT_NAME)
    states = saved.state["lstm_states"]
    assert set(states) == {"pi_h", "pi_c", "vf_h", "vf_c"} and states["pi_h"].shape == (1, 2, 8)
    assert np.abs(states["pi_h"]).sum() > 0  # a memory mid-episode, not a fresh one
    result = resume(tmp_path / "cut")
    assert [r["exact"] for r in result["resumed"]] == [True]
    assert_same_tensors(
        weights(tmp_path / "cut" / "student.zip"), weights(tmp_path / "whole" / "student.zip")
    )
    assert result["returns"] == whole["returns"]
    if privileged:
        assert_same_tensors(
            weights(tmp_path / "cut" / "student.zip", "privileged_head.pth"),
            weights(tmp_path / "whole" / "student.zip", "privileged_head.pth"),
        )
