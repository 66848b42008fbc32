"""RecurrentPPO teachers: the LSTM run over each rollout in time order, once per rollout, its
state carried between rollouts and reset at episode starts."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.env_util import make_vec_env

from ppdistill import PPD, TeacherDistill, load_teacher
from ppdistill.core.errors import SpaceMismatchError
from ppdistill.teachers.recurrent import RecurrentTeacher

SMALL = {"n_steps": 32, "batch_size": 64, "n_epochs": 1, "seed": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def recurrent_zip(tmp_path_factory):
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    kwargs = {"lstm_hidden_size": 8, "net_arch": [16], "n_lstm_layers": 1}
    model = RecurrentPPO("MlpLstmPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0,
                         device="cpu", policy_kwargs=kwargs)  # fmt: skip
    model.learn(256)
    path = tmp_path_factory.mktemp("recurrent") / "rppo.zip"
    model.save(path)
    return path, model


def test_a_recurrent_teacher_acts_as_the_model_did_step_by_step_on_a_thousand_observations(recurrent_zip):
    path, model = recurrent_zip
    teacher = load_teacher(path, env_id="CartPole-v1")
    assert isinstance(teacher, RecurrentTeacher) and teacher.info["kind"] == "recurrent"
    env = make_vec_env("CartPole-v1", n_envs=8, seed=5)
    obs = env.reset()
    theirs_state = ours_state = None
    starts = np.ones(8, dtype=bool)
    steps = 0
    for _ in range(125):
        theirs, theirs_state = model.predict(obs, theirs_state, starts, deterministic=True)
        ours, ours_state = teacher.predict(obs, ours_state, starts, deterministic=True)
        np.testing.assert_array_equal(ours, theirs)
        obs, _, starts, _ = env.step(
            np.random.default_rng(steps).integers(0, 2, size=8)
        )  # not its own actions
        steps += 8
    assert steps == 1000


def test_a_recurrent_teacher_of_another_environment_names_both_spaces(recurrent_zip):
    path, _ = recurrent_zip
    with pytest.raises(SpaceMismatchError, match=r"\(4,\).*\(6,\)"):
        load_teacher(path, env_id="Acrobot-v1")


def test_the_teacher_runs_once_per_rollout_in_order_with_its_state_carried(recurrent_zip):
    """Its rollout outputs equal those of stepping it one observation at a time through the
    same rollouts, state carried across rollouts and reset where episodes start."""
    path, _ = recurrent_zip
    teacher = load_teacher(path, env_id="CartPole-v1")
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    student = PPD("MlpPolicy", env, teacher=teacher, **SMALL)
    rollouts = []
    original = student._store_teacher_outputs

    def keep(buffer):
        original(buffer)
        rollouts.append((buffer.teacher_inputs().copy(), buffer.episode_starts_flat().copy(),
                         buffer.teacher_params.clone()))  # fmt: skip

    student._store_teacher_outputs = keep  # type: ignore[method-assign]
    calls_before = teacher.n_calls
    student.learn(128)  # 2 rollouts of 32 steps x 2 envs
    assert len(rollouts) == 2 and teacher.n_calls - calls_before == 2  # one pass per rollout
    state = teacher.initial_state(2)
    for inputs, starts, params in rollouts:
        obs, st = inputs.reshape(2, 32, -1), starts.reshape(2, 32)  # env-major
        for step in range(32):
            out, state = teacher.sequence(th.as_tensor(obs[:, step]), th.as_tensor(st[:, step]), state)
            np.testing.assert_allclose(
                out.params.numpy(), params.reshape(2, 32, -1)[:, step].numpy(), atol=1e-5
            )


def test_teacher_distill_acts_with_a_recurrent_teacher(recurrent_zip):
    path, _ = recurrent_zip
    teacher = load_teacher(path, env_id="CartPole-v1")
    student = TeacherDistill("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), teacher=teacher,
                             n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")  # fmt: skip
    student.learn(64)
    assert student.teacher_ep_info_buffer is not None and student._teacher_state is not None


def test_a_run_with_a_recurrent_teacher_resumes_bit_for_bit(recurrent_zip, tmp_path):
    """The teacher's LSTM state is part of the checkpoint: without it the resumed teacher would
    start its episodes' memory afresh and teach other targets."""
    from ppdistill.experiment.config import hyperparameters
    from ppdistill.experiment.runner import resume, run
    from ppdistill.experiment.spec import RunSpec

    from ..helpers import Interrupt, assert_same_tensors, interrupt_after, weights

    path, _ = recurrent_zip
    hp = {**hyperparameters("CartPole-v1", "ppd"), "n_envs": 2, "n_steps": 32, "batch_size": 64}
    spec = RunSpec("CartPole-v1", "ppd", str(path), 512, student="8,8", seed=1, hp=hp,
                   eval_episodes=1, final_episodes=2)  # fmt: skip
    run(spec, out=tmp_path / "whole", checkpoint_freq=128)
    with pytest.raises(Interrupt):
        run(spec, out=tmp_path / "cut", checkpoint_freq=128, on_model=interrupt_after(5))
    result = resume(tmp_path / "cut")
    assert all(r["exact"] for r in result["resumed"])
    assert_same_tensors(
        weights(tmp_path / "cut" / "student.zip"), weights(tmp_path / "whole" / "student.zip")
    )
