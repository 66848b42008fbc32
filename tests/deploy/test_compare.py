"""Teacher against student: parameter counts, file sizes, latency arithmetic, returns."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch as th

from ppdistill.core.errors import ModelLoadError, SpaceMismatchError, TeacherLoadError
from ppdistill.deploy import compare as compare_module
from ppdistill.deploy.compare import COLUMNS, compare, measure_latency, table_rows
from ppdistill.networks.presets import mlp_param_count

from ..conftest import zoo_path


def test_compare_cartpole_teacher_and_student(saved_students, monkeypatch):
    """Sizes, returns and the table; latency only as arithmetic (how fast is for the benchmarks)."""
    calls = []
    real_measure = compare_module.measure_latency

    def spy(forward, observations, repeats=200, warmup=20):
        value = real_measure(forward, observations, repeats=repeats, warmup=warmup)
        calls.append((tuple(observations.shape), observations.dtype, repeats, value))
        return value

    monkeypatch.setattr(compare_module, "measure_latency", spy)
    student = saved_students("CartPole-v1")
    teacher, row = compare(zoo_path("ppo/CartPole-v1_1"), student, "CartPole-v1", episodes=3, repeats=20)
    assert (teacher.role, row.role) == ("teacher", "student")
    # actors only: the zoo teacher's (64, 64), the student's (32, 16); critics are not counted
    assert teacher.actor_params == mlp_param_count(4, [64, 64], 2)
    assert row.actor_params == mlp_param_count(4, [32, 16], 2)
    assert row.file_bytes == student.stat().st_size
    assert teacher.file_bytes == (zoo_path("ppo/CartPole-v1_1") / "CartPole-v1.zip").stat().st_size
    # batch 1 timed `repeats` times, batch 256 a quarter as often (at least 5), teacher then student,
    # on float32 observations of CartPole's shape; each row keeps what was measured for it
    assert [(shape, dtype, n) for shape, dtype, n, _ in calls] == [
        ((1, 4), th.float32, 20),
        ((256, 4), th.float32, 5),
    ] * 2
    for i, s in enumerate((teacher, row)):
        assert s.latency_us == {1: calls[2 * i][3], 256: calls[2 * i + 1][3]}
        assert all(v >= 0 and math.isfinite(v) for v in s.latency_us.values())  # a monotonic clock
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
    teacher, student = stats
    normalized = (student.returns.mean - student.random_return) / (
        teacher.returns.mean - teacher.random_return
    )
    # no ratio of negative returns; the score normalized against a random policy on the same episodes
    assert table_rows(stats)[2][-1] == f"{normalized:.2f} normalized"


class FakeClock:
    """perf_counter that moves only inside ``forward``, by the next of the given durations (s)."""

    def __init__(self, durations):
        self.now = 0.0
        self.durations = iter(durations)
        self.calls: list[th.Tensor] = []

    def perf_counter(self):
        return self.now

    def forward(self, obs):
        assert not th.is_grad_enabled()  # timed under no_grad
        self.calls.append(obs)
        self.now += next(self.durations)


@pytest.mark.parametrize("batch", [1, 256])
def test_latency_is_the_median_per_observation(monkeypatch, batch):
    # two warm-up calls of 1000 s, then 5 timed ones: median 3 ms (mean 12 ms, min 1 ms);
    # were the warm-up calls timed, the median of all 7 would be 4 ms
    clock = FakeClock([1000.0, 1000.0, 0.004, 0.001, 0.003, 0.050, 0.002])
    monkeypatch.setattr(compare_module, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    obs = th.zeros(batch, 3)
    got = measure_latency(clock.forward, obs, repeats=5, warmup=2)
    assert got == pytest.approx(3000.0 / batch, rel=1e-9)  # µs per observation
    assert len(clock.calls) == 7 and all(c is obs for c in clock.calls)


def test_latency_median_of_an_even_number_of_calls_is_the_middle_pair_mean(monkeypatch):
    clock = FakeClock([0.001, 0.004, 0.100, 0.002])  # median 3 ms; mean 26.75 ms
    monkeypatch.setattr(compare_module, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    assert measure_latency(clock.forward, th.zeros(8, 3), repeats=4, warmup=0) == pytest.approx(
        375.0, rel=1e-9
    )


def test_bad_inputs(saved_students, tmp_path):
    with pytest.raises(ModelLoadError, match=r"student file .* does not exist") as exc_info:
        compare(zoo_path("ppo/CartPole-v1_1"), tmp_path / "nope.zip", "CartPole-v1")
    assert not isinstance(exc_info.value, TeacherLoadError)  # a missing student is not the teacher's fault
    with pytest.raises(SpaceMismatchError):
        compare(zoo_path("ppo/CartPole-v1_1"), saved_students("Pendulum-v1"), "CartPole-v1")
