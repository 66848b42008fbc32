"""Student-distill and teacher-distill: value targets, the paper's setting, honest logging."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th

from ppdistill import StudentDistill, TeacherDistill
from ppdistill.core.errors import PPDistillError

from ..toy import ACTION_SPACES, SMALL, ToyEnv, recording_logger, toy_teacher


@pytest.mark.parametrize("algo", [StudentDistill, TeacherDistill], ids=lambda a: a.__name__)
def test_value_target_teacher_regresses_on_teacher_values(algo):
    space = ACTION_SPACES["discrete"]
    teacher = toy_teacher(space, value_fn=lambda obs: th.full((obs.shape[0],), 7.0))
    model = algo(
        "MlpPolicy", ToyEnv(space), teacher=teacher, value_target="teacher", learning_rate=3e-3, **SMALL
    )
    model.learn(2048)
    with th.no_grad():
        v = model.policy.predict_values(th.randn(32, 4))
    assert v.mean().item() == pytest.approx(7.0, abs=1.0)


def test_value_target_none_leaves_the_critic_alone():
    space = ACTION_SPACES["discrete"]
    model = StudentDistill(
        "MlpPolicy", ToyEnv(space), teacher=toy_teacher(space), value_target="none", **SMALL
    )
    before = model.policy.value_net.weight.clone()
    model.learn(256)
    assert th.equal(before, model.policy.value_net.weight)


def test_value_target_returns_learns_the_rollout_returns():
    # ToyEnv pays 1 per step when the action is 0: returns are positive, the critic must follow
    space = ACTION_SPACES["discrete"]
    model = StudentDistill(
        "MlpPolicy", ToyEnv(space), teacher=toy_teacher(space), learning_rate=3e-3, **SMALL
    )
    model.learn(2048)
    returns = model.rollout_buffer.returns.mean()
    with th.no_grad():
        v = model.policy.predict_values(th.randn(64, 4)).mean().item()
    assert returns > 0.5 and v == pytest.approx(returns, rel=0.5)


def test_value_target_teacher_needs_a_teacher_with_values():
    space = ACTION_SPACES["discrete"]
    with pytest.raises(PPDistillError, match="value function"):
        StudentDistill("MlpPolicy", ToyEnv(space), teacher=toy_teacher(space), value_target="teacher")


def test_unknown_value_target_is_refused():
    space = ACTION_SPACES["discrete"]
    with pytest.raises(ValueError, match="value_target"):
        StudentDistill("MlpPolicy", ToyEnv(space), teacher=toy_teacher(space), value_target="q")


def test_papers_setting_one_full_batch_step_per_five_step_rollout():
    space = ACTION_SPACES["discrete"]
    model = StudentDistill(
        "MlpPolicy", ToyEnv(space), teacher=toy_teacher(space), n_steps=5, batch_size=None, n_epochs=1, seed=0
    )
    steps = []
    original = model.policy.optimizer.step

    def counting_step(*args, **kwargs):
        steps.append(1)
        return original(*args, **kwargs)

    model.policy.optimizer.step = counting_step
    model.learn(50)
    assert len(steps) == 10  # 10 rollouts of 5 steps, one gradient step each


def test_teacher_distill_never_logs_teacher_returns_as_the_students(cartpole_teacher):
    model = TeacherDistill("MlpPolicy", "CartPole-v1", teacher=cartpole_teacher, **SMALL)
    logger, rec = recording_logger()
    model.set_logger(logger)
    model.learn(64 * 20)
    assert rec.values("rollout/teacher_ep_rew_mean"), "teacher episodes should be reported"
    assert np.mean(rec.values("rollout/teacher_ep_rew_mean")) > 100  # the zoo teacher balances the pole
    assert rec.values("rollout/ep_rew_mean") == []
    assert len(model.ep_info_buffer) == 0
