"""Teacher against student: parameter counts, file sizes, latency arithmetic, returns."""

from __future__ import annotations

import math
import time

import pytest
import torch as th

from ppdistill.core.errors import SpaceMismatchError, TeacherLoadError
from ppdistill.deploy.compare import COLUMNS, compare, measure_latency, table_rows
from ppdistill.networks.presets import mlp_param_count

from ..conftest import zoo_path


def test_compare_cartpole_teacher_and_student(saved_students):
    student = saved_students("CartPole-v1")
    teacher, row = compare(zoo_path("ppo/CartPole-v1_1"), student, "CartPole-v1", episodes=3, repeats=20)
    assert (teacher.role, row.role) == ("teacher", "student")
    # actors only: the zoo teacher's (64, 64), the student's (32, 16); critics are not counted
    assert teacher.actor_params == mlp_param_count(4, [64, 64], 2)
    assert row.actor_params == mlp_param_count(4, [32, 16], 2)
    assert row.file_bytes == student.stat().st_size
    assert teacher.file_bytes == (zoo_path("ppo/CartPole-v1_1") / "CartPole-v1.zip").stat().st_size
    for s in (teacher, row):
        assert set(s.latency_us) == {1, 256}
        assert all(0 < v < 1e5 and math.isfinite(v) for v in s.latency_us.values())
        # per observation, a batch of 256 costs less than 256 single calls
        assert s.latency_us[256] < s.latency_us[1]
        assert s.returns.n_episodes == 3
    assert teacher.returns.mean == 500.0  # the zoo's CartPole teacher is perfect
    rows = table_rows([teacher, row])
    assert len(rows) == 3 and all(len(r) == len(COLUMNS) for r in rows)
    assert rows[2][0] == "student/teacher" and rows[2][1] == f"{row.actor_params / teacher.actor_params:.2f}x"
    assert row.as_dict()["latency_us"].keys() == {"1", "256"}


def test_value_based_teacher_counts_its_q_network_once(saved_students):
    teacher, _ = compare(zoo_path("dqn/CartPole-v1_1"), saved_students("CartPole-v1"), "CartPole-v1",
                         episodes=1, repeats=5)  # fmt: skip
    assert teacher.actor_params == mlp_param_count(4, [256, 256], 2)  # q_net, not its target copy


def test_negative_returns_have_no_ratio(saved_students):
    stats = compare(zoo_path("ppo/Pendulum-v1_1"), saved_students("Pendulum-v1"), "Pendulum-v1",
                    episodes=1, repeats=5)  # fmt: skip
    assert stats[0].returns.mean < 0
    assert table_rows(stats)[2][-1] == "-"


def test_latency_is_the_median_per_observation():
    def slow(obs):
        time.sleep(0.002)

    batch1 = measure_latency(slow, th.zeros(1, 3), repeats=15, warmup=1)
    batch256 = measure_latency(slow, th.zeros(256, 3), repeats=15, warmup=1)
    assert 2000 <= batch1 < 20_000  # sleep never returns early; µs, not ms or s
    assert batch256 == pytest.approx(batch1 / 256, rel=0.5)


def test_bad_inputs(saved_students, tmp_path):
    with pytest.raises(TeacherLoadError, match=r"student file .* does not exist"):
        compare(zoo_path("ppo/CartPole-v1_1"), tmp_path / "nope.zip", "CartPole-v1")
    with pytest.raises(SpaceMismatchError):
        compare(zoo_path("ppo/CartPole-v1_1"), saved_students("Pendulum-v1"), "CartPole-v1")
