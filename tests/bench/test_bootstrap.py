"""The paired, hierarchical bootstrap behind the reports' intervals, on hand-made units."""

from __future__ import annotations

import numpy as np
import pytest

from ppdistill.bench.bootstrap import (
    Bootstrap,
    Unit,
    curve_auc,
    held_from,
    interval_stretch,
    t_quantile,
    units_from,
    verdict,
)
from ppdistill.core.errors import PPDistillError


def unit(final, reference, random, env="E", teacher="t", seed=0, auc=None):
    final = {k: np.asarray(v, float) for k, v in final.items()}
    return Unit(
        env=env, teacher=teacher, seed=seed, reference=np.asarray(reference, float),
        random=np.asarray(random, float), final=final,
        auc=auc or {k: float(v.mean()) for k, v in final.items()}, held={k: None for k in final},
    )  # fmt: skip


def test_curve_auc_is_the_mean_return_over_training_and_held_needs_the_end():
    curve = [{"timesteps": 0, "mean": 0.0}, {"timesteps": 10, "mean": 10.0}, {"timesteps": 20, "mean": 10.0}]
    assert curve_auc(curve) == pytest.approx((5 * 10 + 10 * 10) / 20)
    assert held_from(curve, teacher=10.0, random=0.0) == 10
    dips = [*curve, {"timesteps": 30, "mean": 5.0}, {"timesteps": 40, "mean": 9.5}]
    assert held_from(dips, teacher=10.0, random=0.0) == 40  # held again only from the last one
    assert held_from([*curve, {"timesteps": 30, "mean": 5.0}], teacher=10.0, random=0.0) is None


def test_a_student_equal_to_its_teacher_episode_by_episode_is_exactly_one():
    rng = np.random.default_rng(0)
    units = []
    for seed in range(3):
        teacher = 100 + 30 * rng.standard_normal(50)
        units.append(unit({"a": teacher}, teacher, np.zeros(50), seed=seed))
    assert Bootstrap(units, reps=500).iqm("a") == pytest.approx((1.0, 1.0, 1.0))


def test_the_teachers_own_uncertainty_widens_the_interval():
    rng = np.random.default_rng(0)
    units = []
    for seed in range(5):
        teacher = 100 + 30 * rng.standard_normal(50)
        steady = np.full(50, teacher.mean())  # a student that always scores this seed's teacher mean
        units.append(unit({"a": steady}, teacher, np.zeros(50), seed=seed))
    point, low, high = Bootstrap(units, reps=2000).iqm("a")
    assert point == pytest.approx(1.0)
    # the teacher's mean has a standard error of about 30/sqrt(50)/100 = 0.042 of the scale
    assert 0.05 < high - low < 0.3 and low < 1.0 < high


def test_one_seed_gives_no_interval_and_no_verdict():
    one = Bootstrap([unit({"a": [0.51] * 20, "b": [0.50] * 20}, [1.0] * 20, [0.0] * 20)], reps=200)
    interval = one.difference("a", "b")
    assert interval[0] == pytest.approx(0.01) and np.isnan(interval[1]) and np.isnan(interval[2])
    assert verdict(interval, "a", "b") == "undefined"


def test_the_interval_is_widened_for_few_units_and_not_for_many():
    assert interval_stretch(5, 4) == pytest.approx(2.776 * (5 / 4) ** 0.5, rel=1e-3)  # one env, 5 seeds
    assert interval_stretch(5, 20) == pytest.approx(2.086 * (5 / 4) ** 0.5, rel=1e-3)  # 5 envs of 5 seeds
    assert interval_stretch(10_000, 100_000) == pytest.approx(1.96, abs=1e-3)
    assert np.isnan(interval_stretch(1, 0))
    assert t_quantile(0.975, 1) == pytest.approx(12.706, abs=1e-3)
    assert t_quantile(0.975, 3) == pytest.approx(3.182, abs=0.01)
    assert t_quantile(0.975, 10) == pytest.approx(2.228, abs=1e-3)


def test_no_difference_reads_ahead_at_most_about_one_time_in_twenty():
    """Calibration under the null: two methods of the same quality, 5 seeds of one env, paired
    episodes. A plain percentile interval said "ahead" about one time in five here (and an
    expanded percentile one 14 times in 150: five seeds of one sign always read "ahead")."""
    rng = np.random.default_rng(7)
    ahead = 0
    trials = 150
    for _ in range(trials):
        units = []
        for seed in range(5):
            start = 20 * rng.standard_normal(20)
            units.append(
                unit(
                    {"a": start + 80 + 10 * rng.normal(), "b": start + 80 + 10 * rng.normal()},
                    start + 100, start, seed=seed,
                )
            )  # fmt: skip
        ahead += verdict(Bootstrap(units, reps=400, seed=1).difference("a", "b"), "a", "b") != "tie"
    assert ahead / trials <= 0.08


def test_the_aggregate_is_the_interquartile_mean_not_the_mean():
    scores = [0.0, 1.0, 1.0, 1.0, 10.0]  # normalized: reference 1, random 0
    units = [unit({"a": [v, v]}, [1.0, 1.0], [0.0, 0.0], seed=s) for s, v in enumerate(scores)]
    assert Bootstrap(units, reps=100).iqm("a")[0] == pytest.approx(1.0)  # the mean would be 2.6


def test_paired_differences_see_through_episode_noise_shared_by_both_methods():
    rng = np.random.default_rng(1)
    units = []
    for seed in range(5):
        start = 50 * rng.standard_normal(50)  # how hard each episode is, the same for everyone
        luck = 40 * rng.standard_normal()  # how well this seed's training went, for both methods
        units.append(unit({"a": start + luck + 10, "b": start + luck}, start + 100, start - 100, seed=seed))
    boot = Bootstrap(units, reps=1000)
    point, low, high = boot.difference("a", "b")
    assert point == pytest.approx(0.05, abs=0.01) and low > 0.03 and high < 0.07
    assert verdict((point, low, high), "a", "b") == "a ahead"
    # unpaired, the methods' own intervals overlap: only pairing separates them
    a_low, b_high = boot.iqm("a")[1], boot.iqm("b")[2]
    assert a_low < b_high


def test_teachers_are_drawn_before_seeds():
    # a is ahead with one teacher and behind with the other: no verdict
    units = [
        unit({"a": [1.0, 1.0], "b": [0.0, 0.0]}, [1.0, 1.0], [0.0, 0.0], teacher="x", seed=s)
        for s in range(3)
    ] + [
        unit({"a": [0.0, 0.0], "b": [1.0, 1.0]}, [1.0, 1.0], [0.0, 0.0], teacher="y", seed=s)
        for s in range(3)
    ]
    point, low, high = Bootstrap(units, reps=1000).difference("a", "b")
    # two teachers: one degree of freedom at the top level, so the interval is very wide
    assert point == pytest.approx(0.0) and low < -1.0 and high > 1.0
    assert verdict((point, low, high), "a", "b") == "tie"


def test_every_env_weighs_the_same_in_a_difference():
    units = [unit({"a": [1.0], "b": [0.0]}, [1.0], [0.0], env="E", seed=s) for s in range(9)]
    units += [unit({"a": [0.0], "b": [0.0]}, [1.0], [0.0], env="F", seed=0)]
    assert Bootstrap(units, reps=200).difference("a", "b")[0] == pytest.approx(0.5)


def test_units_group_records_by_env_teacher_and_seed():
    def record(method, seed, teacher="t.zip"):
        return {
            "spec": {"env_id": "E", "teacher": teacher, "seed": seed}, "label": method,
            "returns": [1.0, 2.0], "reference_returns": [2.0, 2.0], "random_returns": [0.0, 0.0],
            "reference_score": 2.0, "random_score": 0.0, "score": 1.5,
            "curve": [{"timesteps": 0, "mean": 0.0}, {"timesteps": 4, "mean": 2.0}],
        }  # fmt: skip

    units = units_from([record("a", 0), record("b", 0), record("a", 1, "u.zip")], lambda r: r["label"])
    assert [(u.teacher, u.seed, sorted(u.final)) for u in units] == [
        ("t.zip", 0, ["a", "b"]),
        ("u.zip", 1, ["a"]),
    ]
    assert units[0].paired and units[0].auc["a"] == 1.0 and units[0].held["a"] == 4
    # runs of one unit scored against other references (another way of playing, references
    # taken again) are refused, and so is one method twice: either would be paired wrongly
    other = {**record("b", 0), "id": "b0", "reference_returns": [3.0, 3.0]}
    with pytest.raises(PPDistillError, match="runs a0 and b0 were scored against other references"):
        units_from([{**record("a", 0), "id": "a0"}, other], lambda r: r["label"])
    with pytest.raises(PPDistillError, match="two runs of a for one teacher"):
        units_from([{**record("a", 0), "id": "a0"}, {**record("a", 0), "id": "a1"}], lambda r: r["label"])


def test_a_run_far_below_random_counts_as_a_failure_not_as_its_depth():
    # b fails on one seed at -21 (normalized): without the floor that one run would make the
    # mean difference about 5
    scores_b = [0.2, 0.2, -21.0, 0.2, 0.2]
    units = [
        unit({"a": [1.0, 1.0], "b": [v, v]}, [1.0, 1.0], [0.0, 0.0], seed=s) for s, v in enumerate(scores_b)
    ]
    point = Bootstrap(units, reps=200).difference("a", "b")[0]
    assert point == pytest.approx((0.8 * 4 + 2.0) / 5)
