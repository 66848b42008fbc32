"""A paired difference between two groups of runs of one results folder, by a field the report
does not pair on (the student's size, say), with the report's bootstrap and verdict.

The report pairs methods within one student size; a probe that varies the size (or anything
else in a record's spec) needs the same statistics across it:

    python benchmarks/paired_difference.py benchmarks/results/teachers-fresh-size \
        --by student --a same --b smaller [--label ppd]

prints ``a − b``, final and mean score over training (AUC), mean over envs [95% CI] and the
verdict, over the (env, teacher, seed) units that have both.

Runs of the same units in another folder (the earlier settings' runs, say, which a check of new
defaults pairs with instead of repeating them) join with ``--with``; a group may be given by
the start of its value (eight characters of a ``defaults_sha256``):

    python benchmarks/paired_difference.py benchmarks/results/teachers-value-norm \
        --with benchmarks/results/teachers-value --by defaults_sha256 --a 0acd9809 --b 228508cb --label ppd

or two methods run into two folders (``--by label --a rppd --b rppo``). ``--task`` keeps one
entry's runs (as the report names it, ``Walker2d-v5 [sac]``; repeatable), for a rule that asks
for the difference per entry.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ppdistill.bench import read_records
from ppdistill.bench.bootstrap import Bootstrap, units_from, verdict
from ppdistill.bench.stats import task_of


def _value(record: dict[str, Any], by: str) -> str:
    return str(record["spec"][by]) if by in record["spec"] else str(record.get(by))


def _group(
    record: dict[str, Any], by: str, names: tuple[str, ...] = (), present: frozenset[str] = frozenset()
) -> str:
    """The group ``record`` belongs to: its value, or a name its value starts with (a hash's first
    characters), but never a name some record holds whole: ``both`` does not take ``both-imp``."""
    value = _value(record, by)
    if value in names:
        return value
    starts = (name for name in names if name not in present and value.startswith(name))
    return next(starts, value)


def differences(
    records: list[dict[str, Any]], by: str, a: str, b: str, label: str | None = None, reps: int = 2000
) -> dict[str, tuple[float, float, float]]:
    """``a − b`` (final and AUC) over the finished runs of one method label, grouped by ``by``.

    :param records: a results folder's records
    :param by: a spec field (``student``) or a record field that tells the groups apart
    :param a: the group on the left of the difference
    :param b: the group on the right
    :param label: the method label to keep (needed when the folder holds several)
    :param reps: bootstrap replicates
    """
    finished = [r for r in records if r.get("status") == "ok"]
    labels = {str(r.get("label", r["spec"]["method"])) for r in finished}
    if label is None and len(labels) > 1 and by != "label":  # by label: the labels are the groups
        raise SystemExit(f"the folder holds methods {', '.join(sorted(labels))}: choose one with --label")
    kept = [r for r in finished if label is None or str(r.get("label", r["spec"]["method"])) == label]
    present = frozenset(_value(r, by) for r in kept)
    units = units_from(kept, lambda r: _group(r, by, (a, b), present))
    both = [u for u in units if a in u.final and b in u.final]  # the units that have both, as said
    if not both:
        raise SystemExit(f"no (env, teacher, seed) has runs of both {by} {a} and {b}")
    boot = Bootstrap(both, reps)
    return {what: boot.difference(a, b, what) for what in ("final", "auc")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a results folder (records.jsonl)")
    parser.add_argument("--by", default="student", help="the spec field that tells the groups apart")
    parser.add_argument("--a", required=True, help="the left group (e.g. same)")
    parser.add_argument("--b", required=True, help="the right group (e.g. smaller)")
    parser.add_argument("--label", default=None, help="the method label, when the folder has several")
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument(
        "--task", dest="tasks", action="append", default=[],
        help="keep only this entry's runs, as the report names it (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--with", dest="others", type=Path, action="append", default=[],
        help="another results folder whose runs join these (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    records = [r for folder in (args.results, *args.others) for r in read_records(folder)]
    if args.others:
        # folders run from different worktrees name one teacher file by different absolute
        # paths: a unit's teacher is then its task (env and tag); a task whose teachers differ
        # still cannot pair, for their references differ (the bootstrap refuses that)
        records = [{**r, "spec": {**r["spec"], "teacher": task_of(r)}} for r in records]
    if args.tasks:
        tasks = {task_of(r) for r in records}
        unknown = [t for t in args.tasks if t not in tasks]
        if unknown:
            raise SystemExit(f"no task {unknown[0]!r} in these runs; their tasks: {', '.join(sorted(tasks))}")
        records = [r for r in records if task_of(r) in args.tasks]
    out = differences(records, args.by, args.a, args.b, args.label, args.reps)
    for what, interval in out.items():
        point, low, high = interval
        name = "final" if what == "final" else "mean score over training"
        print(
            f"{args.by} {args.a} − {args.b}, {name}: {point:+.2f} [{low:+.2f}, {high:+.2f}] "
            f"({verdict(interval, args.a, args.b)})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
