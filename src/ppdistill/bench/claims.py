"""The paper's four claims, each given a verdict from a suite's confidence intervals.

A verdict is ``shown`` (every interval it rests on excludes the opposite), ``not shown``
(an interval covers 0: a tie, or the opposite holds), ``not testable here`` (the
conditions the claim needs are not met at this scale: say why) or ``incomplete`` (runs it
needs are missing: how many). The evidence names every
interval, so a reader checks the verdict against the numbers.

1. *PPD ahead of both baselines*: PPD − student-distill and PPD − teacher-distill, paired,
   in final score and in mean score over training (AUC), per student size.
2. *Larger students surpass the teacher*: PPD's larger students above 1.0, which is only a
   test of size where larger students do better than smaller ones (the paired difference
   larger − smaller excludes 0); otherwise not testable here.
3. *PPD most robust to imperfect teachers*, tested as PPD ahead of both baselines in a suite
   of corrupted teachers (PPD − student-distill and PPD − teacher-distill in final score);
   that it loses the least from a perfect to an imperfect teacher would need the same
   budgets in both suites, and is not what is tested.
4. *Distillation far ahead of PPO from scratch at equal env steps*: each distillation
   method − PPO in final score.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ppdistill.bench.bootstrap import Bootstrap
from ppdistill.bench.stats import Interval

NAMES = {
    "ppd": "PPD",
    "student-distill": "student-distill",
    "teacher-distill": "teacher-distill",
    "ppo": "PPO",
}
DISTILLERS = ("ppd", "student-distill", "teacher-distill")


@dataclass
class Verdict:
    """One claim on one suite."""

    claim: str
    suite: str
    verdict: str
    evidence: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def show(interval: Interval) -> str:
    """``+0.12 [+0.03, +0.20]``; ``+0.12 [no interval]`` where there is nothing to resample."""
    point, low, high = interval
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{point:+.2f} [no interval: one seed]" if math.isfinite(point) else "undefined"
    return f"{point:+.2f} [{low:+.2f}, {high:+.2f}]"


def _ahead(interval: Interval) -> bool:
    return interval[1] > 0


def _label(method: str, size: str) -> str:
    return f"{method}|{size}"


def _has(boot: Bootstrap, *labels: str) -> bool:
    return all(all(label in u.final for u in boot.units) for label in labels)


def _absent(boot: Bootstrap, *labels: str) -> bool:
    """Whether some label was not run at all (the suite's design, not missing runs)."""
    return any(all(label not in u.final for u in boot.units) for label in labels)


def _incomplete(claim: str, suite: str, boot: Bootstrap, *labels: str) -> Verdict:
    """The verdict of a claim whose runs are not all there: which, and how many."""
    missing = [
        f"{NAMES.get(label.split('|')[0], label)} ({label.split('|')[1]}): "
        f"{sum(label not in u.final for u in boot.units)} of {len(boot.units)}"
        for label in labels
        if any(label not in u.final for u in boot.units)
    ]
    return Verdict(claim, suite, "incomplete", "runs missing, " + "; ".join(missing))


def ppd_ahead(boot: Bootstrap, suite: str, sizes: list[str]) -> list[Verdict]:
    """Claim 1, per student size (final score and AUC)."""
    out = []
    for size in sizes:
        ppd, sd, td = (_label(m, size) for m in DISTILLERS)
        claim = f"PPD ahead of both baselines ({size} students)"
        if _absent(boot, ppd, sd, td):
            continue
        if not _has(boot, ppd, sd, td):
            out.append(_incomplete(claim, suite, boot, ppd, sd, td))
            continue
        parts, shown = [], True
        for what, name in (("final", "final score"), ("auc", "mean score over training")):
            for other, label in ((sd, "student-distill"), (td, "teacher-distill")):
                interval = boot.difference(ppd, other, what)
                shown &= _ahead(interval)
                parts.append(f"PPD − {label}, {name}: {show(interval)}")
        out.append(
            Verdict(
                claim,
                suite,
                "shown" if shown else "not shown",
                "; ".join(parts),
            )
        )
    return out


def larger_surpass(boot: Bootstrap, suite: str, sizes: list[str]) -> list[Verdict]:
    """Claim 2: PPD's larger students above the teacher, where size makes a difference."""
    if "larger" not in sizes:
        return []
    larger = _label("ppd", "larger")
    smaller = next((_label("ppd", s) for s in ("same", "smaller") if s in sizes), None)
    if smaller is None or _absent(boot, larger, smaller):
        return []
    if not _has(boot, larger, smaller):
        return [_incomplete("Larger students surpass the teacher", suite, boot, larger, smaller)]
    level = boot.iqm(larger)
    gain = boot.difference(larger, smaller)
    evidence = (
        f"PPD larger students: IQM {level[0]:.2f} [{level[1]:.2f}, {level[2]:.2f}] of the teacher; "
        f"larger − {smaller.split('|')[1]}: {show(gain)}"
    )
    if not _ahead(gain):
        return [
            Verdict(
                "Larger students surpass the teacher",
                suite,
                "not testable here",
                evidence + ": a larger student does no better than a smaller one at this scale, so "
                "what it scores says nothing about size",
            )
        ]
    verdict = "shown" if level[1] > 1.0 else "not shown"
    return [Verdict("Larger students surpass the teacher", suite, verdict, evidence)]


def robust_to_imperfect(boot: Bootstrap, suite: str, sizes: list[str]) -> list[Verdict]:
    """Claim 3 (a suite of corrupted teachers)."""
    out = []
    for size in sizes:
        ppd, sd, td = (_label(m, size) for m in DISTILLERS)
        claim = "PPD most robust to imperfect teachers (tested as: ahead of both baselines)"
        if _absent(boot, ppd, sd, td):
            continue
        if not _has(boot, ppd, sd, td):
            out.append(_incomplete(claim, suite, boot, ppd, sd, td))
            continue
        a, b = boot.difference(ppd, sd), boot.difference(ppd, td)
        out.append(
            Verdict(
                claim,
                suite,
                "shown" if _ahead(a) and _ahead(b) else "not shown",
                f"final score, PPD − student-distill: {show(a)}; PPD − teacher-distill: {show(b)}",
            )
        )
    return out


def ahead_of_ppo(boot: Bootstrap, suite: str, sizes: list[str]) -> list[Verdict]:
    """Claim 4, per student size."""
    out = []
    for size in sizes:
        ppo = _label("ppo", size)
        claim = f"Distillation ahead of PPO from scratch at equal env steps ({size} students)"
        run = [m for m in DISTILLERS if not _absent(boot, _label(m, size))]  # by the suite's design
        labels = [_label(m, size) for m in run]
        if not run or _absent(boot, ppo):
            continue
        if not _has(boot, ppo, *labels):
            out.append(_incomplete(claim, suite, boot, ppo, *labels))
            continue
        intervals = {m: boot.difference(_label(m, size), ppo) for m in run}
        out.append(
            Verdict(
                claim,
                suite,
                "shown" if all(_ahead(i) for i in intervals.values()) else "not shown",
                "; ".join(f"{NAMES[m]} − PPO, final score: {show(i)}" for m, i in intervals.items()),
            )
        )
    return out


def paper_claims(boot: Bootstrap, suite: str, sizes: list[str], imperfect: bool) -> list[Verdict]:
    """Every claim that a suite's runs bear on.

    :param boot: the suite's bootstrap, labels ``method|size``
    :param suite: its name
    :param sizes: its student sizes
    :param imperfect: whether its teachers are corrupted (claim 3 instead of 1 and 2)
    """
    if imperfect:
        return robust_to_imperfect(boot, suite, sizes) + ahead_of_ppo(boot, suite, sizes)
    return (
        ppd_ahead(boot, suite, sizes) + larger_surpass(boot, suite, sizes) + ahead_of_ppo(boot, suite, sizes)
    )
