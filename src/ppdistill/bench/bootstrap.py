"""Paired, hierarchical bootstrap of a suite's scores: envs as strata, then teachers, then
seeds, then episodes.

A run is scored on the final evaluation's episodes, and the teacher (the uncorrupted one in
an imperfect suite) and a random policy are scored on the very same episodes (same seeds,
same order: :class:`ppdistill.envs.episode_seeds.EpisodeSeeds`). Its normalized score
``(S̄ − R̄) / (T̄ − R̄)`` therefore carries three sample means; resampling the episode indices
jointly for student, teacher and random policy carries the teacher's own uncertainty into
the score, and, jointly for two methods of the same seed, pairs their difference.

One bootstrap replicate, per env (a stratum: every env counts in every replicate):

1. draw the env's teachers with replacement (several corrupted teachers of one env);
2. within each drawn teacher, draw its seeds with replacement;
3. within each drawn seed, draw the episode indices with replacement, the same for every
   method (they played the same episodes).

A *unit* is one (env, teacher, seed): the runs of the methods compared on it. Statistics
are computed on the units drawn. Intervals are the estimate ± t·SE, with SE the standard deviation of
the bootstrap replicates, widened by √(n/(n−1)) and taken with Student's t quantile at df
degrees of freedom, where n is the number of independent units at the top resampled level of
each env (its teachers when it has several, else its seeds; the smallest over envs) and df
the sum over envs of n − 1. A percentile interval cannot do this with a handful of seeds: it
never reaches past the values observed, so five seeds that all favour one method (one
time in sixteen under no difference at all) would always read "ahead"; with 5 seeds of one
env, a plain percentile interval read "ahead" under no difference about one time in five.
With one unit per env there is nothing to resample: the interval is undefined.
Records made before the references' episodes were kept (no ``reference_returns``) are
resampled over teachers and seeds only.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ppdistill.bench.stats import Interval, task_of
from ppdistill.core.errors import PPDistillError

FRACTION = 0.9
"""The level that "held" refers to: 90% of the teacher (normalized 0.9)."""

FLOOR = -1.0
"""Differences count a normalized score below this as this: worse than a random policy by the
teacher's whole margin over it is a failed run, and how deep it failed should not outweigh
every other run in a mean (aggregates are IQMs, which need no floor)."""


@dataclass
class Unit:
    """One (env, teacher, seed) and, per method, what its run scored.

    :param env: env id (the stratum)
    :param teacher: the teacher's name (an env may have several)
    :param seed: training seed
    :param reference: the teacher's returns on the final episodes (the uncorrupted teacher's
        in an imperfect suite); one mean where the episodes were not kept
    :param random: a random policy's returns on the same episodes
    :param final: per method, the student's final returns on those episodes
    :param auc: per method, the mean return over training: the area under the evaluation
        curve (trapezoids over env steps) divided by the env steps it spans
    :param held: per method, the first evaluated env step from which the normalized score
        stays at or above 0.9 to the end (None: it does not)
    """

    env: str
    teacher: str
    seed: int
    reference: np.ndarray
    random: np.ndarray
    final: dict[str, np.ndarray]
    auc: dict[str, float]
    held: dict[str, int | None]

    @property
    def paired(self) -> bool:
        """Whether episodes can be resampled jointly (every array of the same length > 1)."""
        n = len(self.reference)
        return n > 1 and len(self.random) == n and all(len(v) == n for v in self.final.values())


def curve_auc(curve: Sequence[dict[str, float]]) -> float:
    """Mean return over training: the trapezoid area under (env steps, mean return) divided by
    the env steps it spans.

    :param curve: periodic evaluations, ``timesteps`` and ``mean``, in order
    """
    x = np.array([c["timesteps"] for c in curve], dtype=float)
    y = np.array([c["mean"] for c in curve], dtype=float)
    if len(x) < 2 or x[-1] <= x[0]:
        return float(y[-1])
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def held_from(curve: Sequence[dict[str, float]], teacher: float, random: float) -> int | None:
    """First evaluated env step from which the normalized score stays ≥ 0.9 through the last
    evaluation (None: the last one is below).

    :param curve: periodic evaluations, ``timesteps`` and ``mean``
    :param teacher: the teacher's mean return
    :param random: a random policy's mean return
    """
    if teacher <= random:
        return None
    held: int | None = None
    for row in curve:
        above = (row["mean"] - random) / (teacher - random) >= FRACTION
        if above and held is None:
            held = int(row["timesteps"])
        elif not above:
            held = None
    return held


def units_from(records: list[dict[str, Any]], label_of: Callable[[dict[str, Any]], str]) -> list[Unit]:
    """Group finished runs into units (env, teacher, seed), one run per method each.

    :param records: finished runs of one suite and student size
    :param label_of: a record's method label
    """
    grouped: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        grouped[(task_of(r), str(r["spec"]["teacher"]), int(r["spec"]["seed"]))].append(r)
    units = []
    for (env, teacher, seed), runs in sorted(grouped.items()):
        first = runs[0]
        reference = first.get("reference_returns") or [first["reference_score"]]
        random = first.get("random_returns") or [first["random_score"]]
        # a unit's runs are paired on one set of references; runs normalized otherwise (another
        # way of playing, references taken again) or a method twice would be paired wrongly
        for r in runs[1:]:
            if (r.get("reference_returns") or [r["reference_score"]]) != reference or (
                r.get("random_returns") or [r["random_score"]]
            ) != random:
                raise PPDistillError(
                    f"{env}, seed {seed}: runs {first['id']} and {r['id']} were scored against other "
                    "references of one teacher; they cannot be paired (run them into separate folders)"
                )
        labels = [label_of(r) for r in runs]
        if len(set(labels)) != len(labels):
            twice = next(label for label in labels if labels.count(label) > 1)
            raise PPDistillError(
                f"{env}, seed {seed}: two runs of {twice} for one teacher; they cannot be paired"
            )
        t, z = float(np.mean(reference)), float(np.mean(random))
        units.append(
            Unit(
                env=env,
                teacher=teacher,
                seed=seed,
                reference=np.asarray(reference, dtype=float),
                random=np.asarray(random, dtype=float),
                final={label_of(r): np.asarray(r.get("returns") or [r["score"]], dtype=float) for r in runs},
                auc={label_of(r): curve_auc(r["curve"]) for r in runs},
                held={label_of(r): held_from(r["curve"], t, z) for r in runs},
            )
        )
    return units


def _normalized(value: np.ndarray, reference: np.ndarray, random: np.ndarray) -> np.ndarray:
    scale = reference - random
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(scale > 0, (value - random) / np.where(scale > 0, scale, 1.0), np.nan)


class Bootstrap:
    """Replicates of per-unit normalized scores, drawn once and shared by every statistic of
    a cell, so that differences between methods are paired replicate by replicate.

    :param units: the cell's units (every method of interest present in each)
    :param reps: replicates
    :param seed: seed of the resampling
    """

    def __init__(self, units: list[Unit], reps: int = 2000, seed: int = 0) -> None:
        self.units = units
        self.reps = reps
        rng = np.random.default_rng(seed)
        # per unit: the episode indices of each replicate (all methods share them)
        self._episodes = [
            rng.integers(0, len(u.reference), size=(reps, len(u.reference))) if u.paired else None
            for u in units
        ]
        # per replicate: which units are drawn (teachers within envs, then seeds within teachers)
        by_env: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for i, u in enumerate(units):
            by_env[u.env][u.teacher].append(i)
        columns, self._column_env = [], []
        for env, teachers in by_env.items():
            names = sorted(teachers)
            picked = rng.integers(0, len(names), size=(reps, len(names)))
            for slot in range(len(names)):
                # the seeds of the teacher drawn into this slot (teachers of an env have the same
                # number of seeds in a complete grid; a ragged one draws within its own)
                for k in range(max(len(teachers[n]) for n in names)):
                    col = np.empty(reps, dtype=np.int64)
                    for b in range(reps):
                        members = teachers[names[picked[b, slot]]]
                        col[b] = members[rng.integers(0, len(members))] if k < len(members) else -1
                    columns.append(col)
                    self._column_env.append(env)
        self._draws = np.stack(columns, axis=1) if columns else np.zeros((reps, 0), dtype=np.int64)
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        # independent units at the top resampled level of each env: its teachers, or its seeds
        tops = [len(t) if len(t) > 1 else sum(len(m) for m in t.values()) for t in by_env.values()]
        self.stretch = interval_stretch(min(tops) if tops else 0, sum(n - 1 for n in tops))

    def _per_unit(self, label: str, what: str) -> np.ndarray:
        """(reps, units): each unit's normalized ``what`` ("final" or "auc") in each replicate."""
        key = (label, what)
        if key in self._cache:
            return self._cache[key]
        out = np.empty((self.reps, len(self.units)))
        for j, (u, idx) in enumerate(zip(self.units, self._episodes, strict=True)):
            if idx is None:
                ref, rnd = np.full(self.reps, u.reference.mean()), np.full(self.reps, u.random.mean())
                value = np.full(self.reps, u.final[label].mean() if what == "final" else u.auc[label])
            else:
                ref, rnd = u.reference[idx].mean(1), u.random[idx].mean(1)
                value = u.final[label][idx].mean(1) if what == "final" else np.full(self.reps, u.auc[label])
            out[:, j] = _normalized(value, ref, rnd)
        self._cache[key] = out
        return out

    def restricted(self, *labels: str) -> Bootstrap | None:
        """The bootstrap over the units where ``labels`` ran: this one where they ran on every
        unit; over the teachers they ran with where a suite gives labels to some teachers only
        (a corrupted teacher's variants); None where one is missing from a seed of a teacher it
        ran with (incomplete).

        :param labels: the methods that must have run on each unit kept
        """
        if self.units and all(all(label in u.final for label in labels) for u in self.units):
            return self
        teachers: dict[tuple[str, str], list[Unit]] = defaultdict(list)
        for u in self.units:
            teachers[(u.env, u.teacher)].append(u)
        chosen: list[Unit] = []
        for members in teachers.values():
            ran = [all(label in u.final for label in labels) for u in members]
            if any(ran) and not all(ran):
                return None
            chosen += members if all(ran) else []
        return Bootstrap(chosen, self.reps) if chosen else None

    def point(self, label: str, what: str = "final") -> np.ndarray:
        """Each unit's normalized ``what`` on the data as observed (no resampling)."""
        values = []
        for u in self.units:
            value = u.final[label].mean() if what == "final" else u.auc[label]
            values.append(
                _normalized(np.array(value), np.array(u.reference.mean()), np.array(u.random.mean()))
            )
        return np.array(values, dtype=float)

    def _drawn(self, per_unit: np.ndarray) -> np.ndarray:
        """(reps, drawn units) values of the units each replicate drew (NaN for empty slots)."""
        rows = np.arange(self.reps)[:, None]
        safe = np.where(self._draws >= 0, self._draws, 0)
        values = per_unit[rows, safe]
        return np.where(self._draws >= 0, values, np.nan)

    def iqm(self, label: str, what: str = "final") -> Interval:
        """Interquartile mean over the units, with its interval.

        :param label: the method
        :param what: "final" (the final score) or "auc" (the mean score over training)
        """
        point = _iqm(self.point(label, what)[None, :])[0]
        reps = _iqm(self._drawn(self._per_unit(label, what)))
        return _interval(point, reps, self.stretch)

    def difference(self, a: str, b: str, what: str = "final") -> Interval:
        """Paired difference ``a − b``: the mean over envs of the mean over each env's units,
        with its interval (every env weighs the same, whatever its number of teachers or seeds);
        scores below :data:`FLOOR` count as it.

        :param a: a method
        :param b: the method it is compared with
        :param what: "final" or "auc"
        """
        # a run far below the random policy (PPO at -21 on LunarLander) would decide a mean alone:
        # below FLOOR a score counts as FLOOR, a failure whose depth says nothing more
        diff_point = np.maximum(self.point(a, what), FLOOR) - np.maximum(self.point(b, what), FLOOR)
        diff_reps = self._drawn(
            np.maximum(self._per_unit(a, what), FLOOR) - np.maximum(self._per_unit(b, what), FLOOR)
        )
        envs = [u.env for u in self.units]
        point = float(
            np.nanmean([np.nanmean(diff_point[[e == env for e in envs]]) for env in dict.fromkeys(envs)])
        )
        column_env = np.array(self._column_env)
        per_env = [np.nanmean(diff_reps[:, column_env == env], axis=1) for env in dict.fromkeys(envs)]
        return _interval(point, np.nanmean(np.stack(per_env, axis=1), axis=1), self.stretch)


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean of ``values`` (their middle 50%; non-finite ones left out).

    :param values: e.g. the normalized scores of a method's runs
    """
    return float(_iqm(np.asarray([values], dtype=float))[0])


def _iqm(values: np.ndarray) -> np.ndarray:
    """Row-wise interquartile mean (the middle 50% of each row's finite values)."""
    out = np.empty(len(values))
    for i, row in enumerate(values):
        row = np.sort(row[np.isfinite(row)])
        if not len(row):
            out[i] = np.nan
            continue
        cut = int(np.floor(0.25 * len(row)))
        middle = row[cut : len(row) - cut] if len(row) - 2 * cut > 0 else row
        out[i] = middle.mean()
    return out


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile: exact for 1 and 2 degrees of freedom, Cornish-Fisher from 3
    (within 0.5% of the exact value at 3, closer above; no scipy needed)."""
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = statistics.NormalDist().inv_cdf(p)
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * df**4)
    )


def interval_stretch(n: int, df: int, level: float = 0.95) -> float:
    """How many bootstrap standard errors an interval reaches on each side (see the module
    docstring): ``√(n/(n−1)) · t((1 + level)/2, df)``.

    :param n: independent units at the top resampled level (per env; the smallest)
    :param df: degrees of freedom, the sum over envs of their units − 1
    :param level: the coverage
    :returns: the multiplier (NaN: too few units for an interval)
    """
    if n < 2 or df < 1:
        return float("nan")
    return math.sqrt(n / (n - 1)) * t_quantile(1 - (1 - level) / 2, df)


def _interval(point: float, replicates: np.ndarray, stretch: float) -> Interval:
    finite = replicates[np.isfinite(replicates)]
    if len(finite) < 2 or not np.isfinite(stretch) or not np.isfinite(point):
        return float(point), float("nan"), float("nan")
    half = stretch * float(np.std(finite, ddof=1))
    return float(point), float(point - half), float(point + half)


def verdict(interval: Interval, a: str, b: str) -> str:
    """``a ahead``, ``b ahead``, or ``tie`` where the interval of ``a − b`` covers 0."""
    _, low, high = interval
    if not (np.isfinite(low) and np.isfinite(high)):
        return "undefined"
    if low > 0:
        return f"{a} ahead"
    if high < 0:
        return f"{b} ahead"
    return "tie"
