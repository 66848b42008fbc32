"""Recurrent students (RecurrentPPO's LSTM policy): PPD, student-distill and teacher-distill over
RecurrentPPO's padded sequences, the teacher's outputs lined up with them, states reset at
episode starts; λ = 0 is RecurrentPPO bit for bit."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.env_util import make_vec_env

from ppdistill import evaluate
from ppdistill.algorithms import (
    RecurrentPPD,
    RecurrentStudentDistill,
    RecurrentTeacherDistill,
    StudentDistill,
)
from ppdistill.algorithms.buffers import DistillRecurrentRolloutBuffer
from ppdistill.core.errors import PPDistillError
from ppdistill.envs.memory import CueMemory
from ppdistill.envs.views import split_observations
from ppdistill.networks.forward import recurrent_actor_critic_forward
from ppdistill.teachers.callable import CallableTeacher

from ..toy import ACTION_SPACES, ToyEnv, toy_teacher

LSTM = {"lstm_hidden_size": 8, "net_arch": [8]}
# 20-step episodes cut by 32-step rollouts and 16-sample minibatches: sequences of many lengths, padded
SMALL = {"n_steps": 32, "batch_size": 16, "n_epochs": 2, "seed": 3, "device": "cpu", "policy_kwargs": LSTM}


def toy_env(space: str, dict_obs: bool = False, seed: int = 4):
    return make_vec_env(lambda: ToyEnv(ACTION_SPACES[space], dict_obs=dict_obs), n_envs=2, seed=seed)


@pytest.mark.parametrize(
    ("space", "dict_obs"), [("discrete", False), ("box", False), ("multidiscrete", True)]
)
def test_lambda_zero_recurrent_ppd_reproduces_recurrent_ppo_exactly(space, dict_obs):
    policy = "MultiInputLstmPolicy" if dict_obs else "MlpLstmPolicy"
    teacher = toy_teacher(ACTION_SPACES[space], dict_obs=dict_obs)
    ppo = RecurrentPPO(policy, toy_env(space, dict_obs), **SMALL).learn(256)
    ppd = RecurrentPPD(policy, toy_env(space, dict_obs), teacher=teacher, distill_lambda=0.0, **SMALL).learn(
        256
    )
    theirs, ours = ppo.policy.state_dict(), ppd.policy.state_dict()
    assert theirs.keys() == ours.keys()
    for name in theirs:
        assert th.equal(theirs[name], ours[name]), name
    assert teacher.n_calls == 0  # λ = 0: the teacher is not run
    # and λ > 0 does change the update
    other = RecurrentPPD(
        policy, toy_env(space, dict_obs), teacher=teacher, distill_lambda=1.0, **SMALL
    ).learn(256)
    assert not th.equal(other.policy.action_net.weight, ppo.policy.action_net.weight)


@pytest.mark.parametrize("cls", [RecurrentPPD, RecurrentStudentDistill])
def test_the_teachers_outputs_line_up_with_the_padded_sequences_of_each_minibatch(cls):
    teacher = toy_teacher(ACTION_SPACES["box"])
    student = cls("MlpLstmPolicy", toy_env("box"), teacher=teacher, **SMALL)
    calls = teacher.n_calls
    student.learn(64)  # one rollout
    assert teacher.n_calls - calls == 1  # once per rollout
    padded_any = False
    for batch in student.rollout_buffer.get(16):
        mask = batch.mask > 1e-8
        padded_any |= bool((~mask).any())
        # the teacher is a function of the observation: its stored outputs are those of the
        # observations at the same padded positions, and zeros where the steps are padding
        expected = teacher(batch.observations).params
        th.testing.assert_close(batch.teacher_params[mask], expected[mask])
        assert bool((batch.teacher_params[~mask] == 0).all())
        assert batch.teacher_params.shape[0] == batch.observations.shape[0]
    assert padded_any, "no minibatch was padded: the test would not see a misalignment"


@pytest.mark.parametrize("cls", [RecurrentPPD, RecurrentStudentDistill])
def test_padded_steps_do_not_count_in_the_distillation_term(cls, monkeypatch):
    """Garbage teacher targets on the padded steps leave the update unchanged, bit for bit."""
    teacher = toy_teacher(ACTION_SPACES["discrete"])

    def trained():
        return cls("MlpLstmPolicy", toy_env("discrete"), teacher=teacher, **SMALL).learn(128)

    clean = trained()
    original = DistillRecurrentRolloutBuffer._with_padded_teacher

    def garbage_on_padding(self, base, batch_inds):
        samples = original(self, base, batch_inds)
        params = samples.teacher_params.clone()
        params[samples.mask <= 1e-8] = 100.0
        return samples._replace(teacher_params=params)

    monkeypatch.setattr(DistillRecurrentRolloutBuffer, "_with_padded_teacher", garbage_on_padding)
    dirty = trained()
    for name, tensor in clean.policy.state_dict().items():
        assert th.equal(tensor, dirty.policy.state_dict()[name]), name


def test_states_reset_at_episode_starts():
    teacher = toy_teacher(ACTION_SPACES["discrete"])
    student = RecurrentPPD("MlpLstmPolicy", toy_env("discrete"), teacher=teacher, **SMALL)
    obs = th.randn(4, 4)
    random_state = RNNStates(*[(th.randn(1, 4, 8), th.randn(1, 4, 8)) for _ in range(2)])

    def step(state, starts):
        with th.no_grad():
            dist, values, after = recurrent_actor_critic_forward(student.policy, obs, state, starts)
        return dist.distribution.logits, values, after.pi[0]

    fresh = step(student.initial_lstm_states(4), th.ones(4))
    reset = step(random_state, th.ones(4))
    carried = step(random_state, th.zeros(4))
    for ours, theirs in zip(reset, fresh):
        th.testing.assert_close(ours, theirs)
    assert not th.allclose(carried[2], fresh[2]) and not th.allclose(carried[1], fresh[1])


def test_teacher_distill_runs_the_students_lstm_along_the_teachers_steps():
    """The states it records are the student's own LSTM run step by step over the observations
    the teacher acted on, reset where episodes start: what RecurrentPPO's minibatches start from."""
    teacher = toy_teacher(ACTION_SPACES["discrete"])
    student = RecurrentTeacherDistill("MlpLstmPolicy", toy_env("discrete"), teacher=teacher,
                                      **{**SMALL, "n_epochs": 1, "learning_rate": 0.0})  # fmt: skip
    student.learn(64)  # one rollout of 32 steps x 2 envs; lr 0: the student is the one that acted
    buffer = student.rollout_buffer
    obs = th.as_tensor(buffer.observations).reshape(2, 32, 4)  # env-major after training
    starts = th.as_tensor(buffer.episode_starts).reshape(2, 32)
    recorded = th.as_tensor(buffer.hidden_states_pi).reshape(2, 32, 1, 8)
    assert bool(starts[:, 0].all()) and bool(starts[:, 20].all())  # 20-step episodes
    state = student.initial_lstm_states(2)
    with th.no_grad():
        for t in range(32):
            th.testing.assert_close(recorded[:, t, 0], state.pi[0][0])
            _, _, state = recurrent_actor_critic_forward(student.policy, obs[:, t], state, starts[:, t])
    assert student.teacher_ep_info_buffer is not None


def test_a_recurrent_student_saves_and_resumes_with_its_teacher(tmp_path):
    teacher = toy_teacher(ACTION_SPACES["discrete"])
    student = RecurrentPPD("MlpLstmPolicy", toy_env("discrete"), teacher=teacher, **SMALL).learn(64)
    student.save(tmp_path / "student.zip")
    loaded = RecurrentPPD.load(
        tmp_path / "student.zip", env=toy_env("discrete"), teacher=teacher, device="cpu"
    )
    for name, tensor in student.policy.state_dict().items():
        assert th.equal(tensor, loaded.policy.state_dict()[name]), name
    loaded.learn(64, reset_num_timesteps=False)
    assert loaded.num_timesteps == 128 and loaded.teacher_info == {"kind": "callable"}


def cue_teacher() -> CallableTeacher:
    """A perfect privileged teacher of the memory task: it reads the cue at every step."""
    space = CueMemory().observation_space
    return CallableTeacher(lambda obs: 6 * obs["privileged"] - 3, space, spaces.Discrete(2),
                           info={"kind": "callable"}).freeze()  # fmt: skip


def cue_env(seed: int = 0):
    env = make_vec_env(CueMemory, n_envs=4, seed=seed)
    return split_observations(env, student_keys=["policy"], teacher_keys=["policy", "privileged"])


def test_an_lstm_student_of_a_privileged_teacher_remembers_the_cue_a_memoryless_one_cannot():
    """The memory task's cue is in the student's view at the first step only: an LSTM student
    learns to keep it; an MLP student on the same view stays near its bound (0.5625)."""
    common = {
        "n_steps": 32,
        "batch_size": 64,
        "n_epochs": 4,
        "learning_rate": 3e-3,
        "seed": 0,
        "device": "cpu",
    }
    memory = {"lstm_hidden_size": 16, "net_arch": [16]}
    lstm = RecurrentStudentDistill(
        "MlpLstmPolicy", cue_env(), teacher=cue_teacher(), policy_kwargs=memory, **common
    )
    lstm.learn(1536)
    mlp = StudentDistill("MlpPolicy", cue_env(), teacher=cue_teacher(), policy_kwargs={"net_arch": [16, 16]},
                         **common)  # fmt: skip
    mlp.learn(1536)
    remembering = evaluate(lstm, cue_env(seed=9), n_episodes=20, seed=1).mean
    memoryless = evaluate(mlp, cue_env(seed=9), n_episodes=20, seed=1).mean
    assert remembering >= 0.95
    assert memoryless <= 0.7


# ---- privileged prediction: the student's memory predicts the teacher's observation ----------

PREDICTING = {**SMALL, "policy_kwargs": LSTM, "n_steps": 16, "batch_size": 16}


def test_the_privileged_targets_line_up_with_the_padded_sequences_and_the_loss_is_their_masked_mse():
    """The targets are the teacher's observation (groups in key order), standardized over the
    rollout: their ``policy`` columns are the student's own observations at the same padded
    positions; the loss is the coefficient times the mean squared error over the steps that count."""
    student = RecurrentPPD("MlpLstmPolicy", cue_env(), teacher=cue_teacher(), privileged_prediction=2.0,
                           **PREDICTING)  # fmt: skip
    student.learn(64)  # one rollout of 16 steps x 4 envs, 8-step episodes cut across it
    buffer = student.rollout_buffer
    observations = th.as_tensor(buffer.observations).reshape(-1, 3)
    mean, std = observations.mean(dim=0), observations.std(dim=0, unbiased=False)
    padded_any = False
    for batch in buffer.get(16):
        mask = batch.mask > 1e-8
        padded_any |= bool((~mask).any())
        assert batch.privileged_targets.shape == (batch.observations.shape[0], 5)
        expected = (batch.observations - mean) / std
        th.testing.assert_close(batch.privileged_targets[mask][:, :3], expected[mask])
        assert bool((batch.privileged_targets[~mask] == 0).all())
        # the loss, by hand, on the same forward pass
        _, _, forward_mask = student._minibatch_forward(batch, True)
        memory = student._memory
        loss, mse = student._auxiliary_loss(batch, forward_mask)
        errors = ((student.privileged_head(memory) - batch.privileged_targets) ** 2).mean(dim=1)
        th.testing.assert_close(mse, errors[mask].mean())
        th.testing.assert_close(loss, 2.0 * errors[mask].mean())
    assert padded_any, "no minibatch was padded: the test would not see a misalignment"


@pytest.mark.parametrize("cls", [RecurrentPPD, RecurrentStudentDistill, RecurrentTeacherDistill])
def test_the_privileged_loss_moves_the_lstm_and_leaves_the_policy_without_a_head(cls):
    """Two students built alike, head included (its initialization draws from torch's
    generator); one with the coefficient set to 0 afterwards, whose loss term is then 0 × mse:
    only the loss's gradient can set their LSTMs apart."""

    def trained(coef):
        kwargs = {"distill_lambda": 0.0} if cls is RecurrentPPD else {}
        student = cls("MlpLstmPolicy", cue_env(), teacher=cue_teacher(), privileged_prediction=1.0,
                      **kwargs, **PREDICTING)  # fmt: skip
        student.privileged_prediction = coef
        return student.learn(64)

    without, with_loss = trained(0.0), trained(1.0)
    assert (
        with_loss.policy.state_dict().keys()
        == RecurrentPPO("MlpLstmPolicy", cue_env(), **PREDICTING).policy.state_dict().keys()
    )  # the head is not in the policy
    assert not th.equal(without.policy.lstm_actor.weight_hh_l0, with_loss.policy.lstm_actor.weight_hh_l0)


def test_a_student_with_a_privileged_head_saves_and_resumes_it(tmp_path):
    student = RecurrentPPD("MlpLstmPolicy", cue_env(), teacher=cue_teacher(), privileged_prediction=1.0,
                           **PREDICTING).learn(64)  # fmt: skip
    student.save(tmp_path / "student.zip")
    alone = RecurrentPPD.load(tmp_path / "student.zip", device="cpu")  # no env: the head's size was saved
    assert alone.privileged_head is not None
    for name, tensor in student.privileged_head.state_dict().items():
        assert th.equal(tensor, alone.privileged_head.state_dict()[name]), name

    # with the student's own environment, which has no teacher view: evaluation, say
    def policy_group():
        return gym.wrappers.FlattenObservation(gym.wrappers.FilterObservation(CueMemory(), ["policy"]))

    plain = make_vec_env(policy_group, n_envs=1, seed=5)
    assert RecurrentPPD.load(tmp_path / "student.zip", env=plain, device="cpu").privileged_head is not None
    loaded = RecurrentPPD.load(tmp_path / "student.zip", env=cue_env(), teacher=cue_teacher(), device="cpu")
    before = loaded.privileged_head.weight.clone()
    loaded.learn(64, reset_num_timesteps=False)
    assert not th.equal(before, loaded.privileged_head.weight)  # the optimizer still holds the head


def test_privileged_prediction_without_a_view_or_with_a_bad_value_is_refused():
    teacher = toy_teacher(ACTION_SPACES["discrete"])
    with pytest.raises(PPDistillError, match="needs a teacher that reads more than the student"):
        RecurrentPPD(
            "MlpLstmPolicy", toy_env("discrete"), teacher=teacher, privileged_prediction=1.0, **SMALL
        )
    for bad in (-1.0, float("nan"), True, "1"):
        with pytest.raises(ValueError, match="privileged_prediction must be a finite number >= 0"):
            RecurrentStudentDistill(
                "MlpLstmPolicy", cue_env(), teacher=cue_teacher(), privileged_prediction=bad, **PREDICTING
            )


def test_the_students_memory_learns_to_predict_the_cue_it_saw_once():
    """The cue is in the student's view at the first step only; the privileged group shows it at
    every step. Trained with the prediction, the head's error on the privileged columns falls
    far below what a memoryless predictor can reach: the cue is known at 1 step of 8, so at
    best 7/8 of the variance stays (0.875; a standardized column's variance is 1)."""
    student = RecurrentStudentDistill(
        "MlpLstmPolicy", cue_env(), teacher=cue_teacher(), privileged_prediction=1.0,
        policy_kwargs={"lstm_hidden_size": 16, "net_arch": [16]},
        n_steps=32, batch_size=64, n_epochs=4, learning_rate=3e-3, seed=0, device="cpu",
    )  # fmt: skip
    student.learn(1536)
    errors = []
    for batch in student.rollout_buffer.get(64):
        mask = batch.mask > 1e-8
        with th.no_grad():
            student._minibatch_forward(batch, False)
            predicted = student.privileged_head(student._memory)
        errors.append(((predicted - batch.privileged_targets)[mask][:, 3:] ** 2).mean())
    assert float(th.stack(errors).mean()) < 0.2  # 0.07 measured
