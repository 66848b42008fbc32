"""Comparing a student's return with its teacher's: numbers that mean something.

A plain quotient of returns is a fraction of the teacher's reward only when both returns are
non-negative and the teacher's is positive: a Pendulum student at −832 against a teacher at
−126 is not "6.6 times the teacher". Everywhere (``distill``, ``quickstart``, ``compare``,
``results.json``, the benchmark) the comparison is the score normalized against a random
policy on the same episodes, 0 for the random policy and 1 for the teacher; the ratio is
given besides it only where it is defined.
"""

from __future__ import annotations

import math

# Below this gap between the teacher's and the random policy's returns, normalizing divides
# by noise: the score is undefined.
MIN_SPAN = 1e-9


def normalized_score(score: float, teacher: float, random: float) -> float | None:
    """``(score − random) / (teacher − random)``: 1 is the teacher, 0 a random policy.

    :param score: the student's mean return
    :param teacher: the teacher's mean return on the same episodes
    :param random: a random policy's mean return on the same episodes
    :return: None when undefined (a teacher no better than a random policy, or a non-finite return)
    """
    if not all(math.isfinite(x) for x in (score, teacher, random)) or teacher - random <= MIN_SPAN:
        return None
    return float((score - random) / (teacher - random))


def return_ratio(score: float, teacher: float) -> float | None:
    """``score / teacher`` where it is a fraction of the teacher's reward: both returns
    non-negative and the teacher's positive; None otherwise.

    :param score: the student's mean return
    :param teacher: the teacher's mean return
    """
    if not (math.isfinite(score) and math.isfinite(teacher)) or teacher <= 0 or score < 0:
        return None
    return float(score / teacher)


def format_score(value: float | None, digits: int = 2) -> str:
    """A score for a table: ``-`` where it is undefined."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"
