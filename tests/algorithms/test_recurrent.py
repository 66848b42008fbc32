"""Recurrent students (RecurrentPPO's LSTM policy): PPD, student-distill and teacher-distill over
RecurrentPPO's padded sequences, the teacher's outputs lined up with them, states reset at
episode starts; λ = 0 is RecurrentPPO bit for bit."""

from __future__ import annotations

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
