"""Check issue 17's bar on a verify half, with entries replaced as a rule written before they ran says.

    python benchmarks/verify_bar.py benchmarks/results/teachers-verify \\
        benchmarks/results/teachers-verify-bar --drop 'Walker2d-v5 [sac-imperfect]'

Copies the records of IN except those of the dropped tasks (an entry replaced by another, the
replacement's records staying in) into OUT, writes the harness's report there (its header says
this command made it), and prints the bar: PPD's final IQM ≥ 0.9 of the teacher with the lower end
of its 95% interval ≥ 0.8, and PPD − student-distill ≥ 0 or a tie on every task. The records in
IN are not changed; OUT must not exist (a finished result is not overwritten).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from ppdistill.bench.bootstrap import Bootstrap, units_from, verdict
from ppdistill.bench.execute import read_records
from ppdistill.bench.report import build_report
from ppdistill.bench.stats import task_of

IQM_BAR = 0.9
LOWER_BAR = 0.8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="a verify half's results folder")
    parser.add_argument("out", type=Path, help="a new folder for the selected records and their report")
    parser.add_argument(
        "--drop", action="append", default=[], help="a task to leave out, as the report names it"
    )
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args(argv)
    records = read_records(args.src)
    tasks = {task_of(r) for r in records}
    unknown = [t for t in args.drop if t not in tasks]
    if unknown:
        print(
            f"error: {args.src} has no task {unknown[0]!r}; its tasks: {', '.join(sorted(tasks))}",
            file=sys.stderr,
        )
        return 2
    if args.out.exists():
        print(f"error: {args.out} exists; remove it to make it again", file=sys.stderr)
        return 2
    kept = [r for r in records if task_of(r) not in args.drop]
    cells = {(r["suite"], r["spec"]["student"]) for r in kept}
    labels = {r.get("label", r["spec"]["method"]) for r in kept}
    if len(cells) != 1 or not {"ppd", "student-distill"} <= labels:
        print(
            f"error: the bar needs one suite and student size with ppd and student-distill runs; "
            f"{args.src} has {sorted(cells)} with {sorted(labels)}",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True)
    try:
        (args.out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
        drops = "".join(f" --drop '{t}'" for t in args.drop)
        made_by = f"`python benchmarks/verify_bar.py {args.src} {args.out}{drops}` (records of {args.src})"
        build_report(args.out, reps=args.reps, made_by=made_by)
    except BaseException:  # no half-made folder that the next try would refuse to replace
        shutil.rmtree(args.out)
        raise
    aggregate = json.loads((args.out / "aggregate.json").read_text())
    (key,) = [k for k in aggregate if k.endswith("|ppd")]
    iqm, low, high = aggregate[key]["final"]
    # per task, the report's own paired difference (same bootstrap, same seed), over the finished
    # runs as the report takes them (a failed run has no returns to pair)
    finished = [r for r in kept if r.get("status") == "ok"]
    verdicts = {}
    for task in sorted({task_of(r) for r in kept}):
        boot = Bootstrap(
            units_from([r for r in finished if task_of(r) == task], lambda r: str(r["label"])), args.reps
        )
        both = boot.restricted("ppd", "student-distill")
        verdicts[task] = (
            verdict(both.difference("ppd", "student-distill"), "ppd", "sd") if both else "undefined"
        )
    behind = [t for t, v in verdicts.items() if v in ("sd ahead", "undefined")]
    met = iqm >= IQM_BAR and low >= LOWER_BAR and not behind
    print(
        f"PPD final IQM {iqm:.3f} [{low:.3f}, {high:.3f}]: IQM >= {IQM_BAR}: {iqm >= IQM_BAR}; "
        f"lower end >= {LOWER_BAR}: {low >= LOWER_BAR}"
    )
    print(
        f"PPD - student-distill: behind or undefined on {len(behind)} of {len(verdicts)} tasks"
        + (f" ({', '.join(behind)})" if behind else "")
        + " (>= 0 or a tie on the rest)"
    )
    print(f"bar met: {'yes' if met else 'no'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
