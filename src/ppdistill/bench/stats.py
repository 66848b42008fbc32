"""The numbers of a benchmark: normalized scores, steps to 90% of the teacher, IQM with
bootstrap confidence intervals, curves on a common grid.

Scores are normalized per env: ``(R - R_random) / (R_teacher - R_random)``, so 1 is the
teacher (the *uncorrupted* teacher in an imperfect suite) and 0 a random policy.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ppdistill.core.extras import require_extra
from ppdistill.core.scores import normalized_score

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


def iqm_with_ci(scores: np.ndarray, reps: int, seed: int = 0) -> Interval:
    """IQM of a (runs, tasks) matrix with a 95% stratified bootstrap CI (rliable).

    :param scores: normalized scores, one row per seed, one column per env
    :param reps: bootstrap resamples
    :param seed: seed of the resampling
    """
    rly = require_extra("rliable.library", "bench", "bench report")
    metrics = require_extra("rliable.metrics", "bench", "bench report")

    def iqm(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x)])

    np.random.seed(seed)  # rliable draws from numpy's global generator
    point, interval = rly.get_interval_estimates({"m": scores}, iqm, reps=reps)
    return float(point["m"][0]), float(interval["m"][0][0]), float(interval["m"][1][0])


def score_matrix(records: list[dict[str, Any]]) -> np.ndarray | None:
    """(seeds, envs) normalized scores; None when the grid is incomplete.

    :param records: finished runs of one method and student size
    """
    by_env: dict[str, dict[int, float]] = defaultdict(dict)
    for r in records:
        by_env[r["spec"]["env_id"]][r["spec"]["seed"]] = r["normalized_score"]
    seeds = sorted({s for v in by_env.values() for s in v})
    if not by_env or any(set(v) != set(seeds) for v in by_env.values()):
        return None
    return np.array([[by_env[e][s] for e in sorted(by_env)] for s in seeds])


def curve_grid(
    records: list[dict[str, Any]], n: int = 25
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Mean and std over seeds of the normalized curve on a common grid of env steps.

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
    return grid, ys.mean(0), ys.std(0)


def median_steps_to_90(records: list[dict[str, Any]]) -> float:
    """Median over seeds of the env steps to 90% of the teacher; a run that never got there counts as ∞.

    :param records: finished runs of one method, env and student size (one per seed)
    """
    return float(np.median([np.inf if r["steps_to_90"] is None else r["steps_to_90"] for r in records]))
