"""Student against teacher: a ratio only where it is one, the normalized score everywhere."""

from __future__ import annotations

import math

import pytest

from ppdistill.core.scores import format_score, normalized_score, return_ratio


@pytest.mark.parametrize(
    ("score", "teacher", "random", "normalized", "ratio"),
    [
        (250.0, 500.0, 20.0, 230 / 480, 0.5),  # CartPole: both positive, the ratio is a fraction
        (-832.0, -126.0, -1200.0, (1200 - 832) / (1200 - 126), None),  # Pendulum: no "6.62"
        (-150.0, -90.0, -500.0, 350 / 410, None),  # Acrobot: a worse student is not "1.66"
        (-10.0, 100.0, -50.0, 40 / 150, None),  # a negative student against a positive teacher
        (50.0, 10.0, 10.0, None, 5.0),  # a teacher no better than random: no normalization
        (50.0, 5.0, 10.0, None, 10.0),
        (math.nan, 100.0, 0.0, None, None),
    ],
)
def test_scores_are_given_only_where_they_mean_something(score, teacher, random, normalized, ratio):
    assert normalized_score(score, teacher, random) == (pytest.approx(normalized) if normalized else None)
    assert return_ratio(score, teacher) == (pytest.approx(ratio) if ratio else None)


def test_undefined_scores_print_as_a_dash():
    assert format_score(None) == "-" and format_score(math.inf) == "-" and format_score(0.456) == "0.46"
