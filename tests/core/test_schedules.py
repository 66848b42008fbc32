"""λ schedules: values, pickling, and what PPD does with them."""

from __future__ import annotations

import pickle

import pytest

from ppdistill.core.schedules import (
    Constant,
    DistillThenFinetune,
    Fading,
    Linear,
    PerformanceBased,
    Phase,
    as_schedule,
)


def test_constant_linear_and_distill_then_finetune():
    assert Constant(2.0)(0.3) == 2.0
    assert Linear(2.0, 0.5)(1.0) == 2.0 and Linear(2.0, 0.5)(0.0) == 0.5 and Linear(2.0)(0.5) == 1.0
    dtf = DistillThenFinetune(1.5, fraction=0.25)
    assert dtf(1.0) == 1.5 and dtf(0.76) == 1.5 and dtf(0.75) == 0.0 and dtf(0.0) == 0.0
    with pytest.raises(ValueError, match="fraction"):
        DistillThenFinetune(1.0, fraction=0.0)
    assert as_schedule(0.5) == Constant(0.5)
    with pytest.raises(ValueError, match="distill_lambda"):
        as_schedule(-1)


def test_fading_holds_then_falls_linearly_to_zero():
    fading = Fading(2.0, begin=0.25, end=0.75)  # shares of the budget spent
    values = [fading(1.0 - spent) for spent in (0.0, 0.25, 0.5, 0.7, 0.75, 1.0)]
    assert values == pytest.approx([2.0, 2.0, 1.0, 0.2, 0.0, 0.0])
    assert pickle.loads(pickle.dumps(fading)) == fading
    step = Fading(2.0, begin=0.5, end=0.5)
    assert [step(1.0 - spent) for spent in (0.5, 0.51)] == [2.0, 0.0]
    for begin, end in ((0.6, 0.5), (-0.1, 0.5), (0.2, 1.2)):
        with pytest.raises(ValueError, match="begin <= end"):
            Fading(1.0, begin, end)
    with pytest.raises(ValueError, match=">= 0"):
        Fading(-1.0, 0.0, 1.0)


def test_performance_based_follows_the_students_returns():
    s = PerformanceBased(teacher_return=200.0, random_return=-100.0)
    assert s(1.0) == 1.0  # nothing observed yet
    s.observe([-100.0])
    assert s(0.9) == 1.0
    s.observe([50.0, 50.0])  # half way from random to the teacher
    assert s(0.5) == pytest.approx(0.5)
    s.observe([250.0])  # better than the teacher
    assert s(0.1) == 0.0
    s.observe([])  # no new episodes: unchanged
    assert s(0.0) == 0.0
    restored = pickle.loads(pickle.dumps(s))
    assert restored(0.0) == 0.0 and restored == s


def test_a_phase_runs_its_schedule_over_its_share_of_the_budget():
    phase = Phase(Linear(1e-3), share=0.25)  # the last quarter of the run
    values = [phase(1.0 - spent) for spent in (0.0, 0.75, 0.875, 1.0)]
    assert values == pytest.approx([1e-3, 1e-3, 5e-4, 0.0])  # full at the switch, 0 at the end
    assert Phase(Linear(2.0), share=1.0)(0.5) == Linear(2.0)(0.5)
    for share in (0.0, 1.5):
        with pytest.raises(ValueError, match="share"):
            Phase(Linear(1.0), share)


@pytest.mark.parametrize(
    "schedule",
    [
        Constant(1.0),
        Linear(1.0),
        DistillThenFinetune(1.0, 0.5),
        PerformanceBased(1.0),
        Fading(1.0, 0.2, 0.6),
        Phase(Linear(1.0), 0.5),
    ],
)
def test_schedules_pickle(schedule):
    assert pickle.loads(pickle.dumps(schedule)) == schedule
