"""The numbers of one run of a benchmark: its normalized score, its steps to 90% of the
teacher, its curve on a common grid (the statistics over runs are in
:mod:`ppdistill.bench.bootstrap`).

Scores are normalized per env: ``(R - R_random) / (R_teacher - R_random)``, so 1 is the
teacher (the *uncorrupted* teacher in an imperfect suite) and 0 a random policy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ppdistill.core.scores import normalized_score


def task_of(record: dict[str, Any]) -> str:
    """What a run's statistics group it under: its env, and the name its suite gave its
    teacher where an env has several (``Hopper-v5 [sac]``).

    :param record: a bench record
    """
    return str(record.get("task") or record["spec"]["env_id"])


Interval = tuple[float, float, float]
"""A point estimate with the low and high ends of its 95% confidence interval."""


def normalized(score: float, teacher: float, random: float) -> float:
    """(R - R_random) / (R_teacher - R_random): 1 is the teacher, 0 a random policy (NaN where
    undefined, so that it drops out of statistics; see :func:`ppdistill.core.scores.normalized_score`).

    :param score: the return to normalize
    :param teacher: the teacher's return on the same episodes
    :param random: a random policy's return on the same episodes
    """
    value = normalized_score(score, teacher, random)
    return float("nan") if value is None else value


def steps_to_fraction(
    curve: list[dict[str, float]], teacher: float, random: float, fraction: float = 0.9
) -> int | None:
    """First evaluated env step where the normalized score reaches ``fraction`` (None: never).

    :param curve: periodic evaluations (``timesteps``, ``mean``)
    :param teacher: the teacher's return
    :param random: a random policy's return
    :param fraction: the level to reach
    """
    for row in curve:
        if normalized(row["mean"], teacher, random) >= fraction:
            return int(row["timesteps"])
    return None


def curve_grid(
    records: list[dict[str, Any]], n: int = 25
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Mean and sample std over runs of the normalized curve on a common grid of env steps.

    :param records: finished runs of one method, env and student size
    :param n: grid points
    """
    curves = []
    for r in records:
        x = np.array([c["timesteps"] for c in r["curve"]], dtype=float)
        y = np.array(
            [(c["mean"] - r["random_score"]) / (r["reference_score"] - r["random_score"]) for c in r["curve"]]
        )
        curves.append((x, y))
    if not curves:
        return None
    end = min(x[-1] for x, _ in curves)
    grid = np.linspace(0, end, n)
    ys = np.array([np.interp(grid, x, y) for x, y in curves])
    return grid, ys.mean(0), ys.std(0, ddof=1) if len(ys) > 1 else np.zeros_like(grid)
