"""The same suite before and after a change of how runs are scored, run by run.

Made for the seed plan (issue 13), which kept every seed a student trains and is scored with
and changed only what its score is normalized by: the teacher and a random policy, scored
once per env on episodes seeded 30000, are now scored per seed on the student's own final
evaluation episodes. For each run: are the student's final returns identical; the reference
(teacher) and random scores before and after; the normalized score before and after.

    python benchmarks/seed_plan_check.py OLD NEW --title "imperfect suite" > OUT.md
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ppdistill.bench import read_records


def _curve(record: dict[str, Any]) -> list[tuple[float, float, float]]:
    """The evaluation curve without its wall times (which no two runs share)."""
    return [(c["timesteps"], c["mean"], c["std"]) for c in record["curve"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="records.jsonl (or its folder) before the change")
    parser.add_argument("new", type=Path, help="records.jsonl (or its folder) after the change")
    parser.add_argument("--title", default="suite", help="what was run, for the heading")
    args = parser.parse_args()
    old = {r["id"]: r for r in read_records(args.old) if r.get("status") == "ok"}
    new = {r["id"]: r for r in read_records(args.new) if r.get("status") == "ok"}
    common = sorted(set(old) & set(new))
    print(f"# {args.title}: before and after the seed plan\n")
    print(f"{len(common)} runs in both ({len(old)} before, {len(new)} after).\n")
    print(
        "| run | student returns identical | teacher (reference) before → after "
        "| random before → after | normalized before → after | change |"
    )
    print("|---|---|---|---|---|---|")
    identical, changes = 0, []
    for rid in common:
        a, b = old[rid], new[rid]
        same = a["returns"] == b["returns"] and _curve(a) == _curve(b)
        identical += same
        change = b["normalized_score"] - a["normalized_score"]
        changes.append(change)
        print(
            f"| {rid} | {'yes' if same else '**no**'} "
            f"| {a['reference_score']:.1f} → {b['reference_score']:.1f} "
            f"| {a['random_score']:.1f} → {b['random_score']:.1f} "
            f"| {a['normalized_score']:.3f} → {b['normalized_score']:.3f} | {change:+.3f} |"
        )
    d = np.array(changes)
    print(
        f"\nStudent returns and curves identical in {identical} of {len(common)} runs. "
        f"Change of the normalized score: mean {d.mean():+.3f}, median {np.median(d):+.3f}, "
        f"mean absolute {np.abs(d).mean():.3f}, range [{d.min():+.3f}, {d.max():+.3f}]."
    )


if __name__ == "__main__":
    main()
