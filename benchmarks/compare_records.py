"""Two sets of benchmark records of one method, side by side: final score and env steps to 90%.

Used when a default changes: the records made before the change (kept in git, or copied
aside) against the ones made after it, env by env and student by student, same seeds.

    python benchmarks/compare_records.py OLD.jsonl NEW.jsonl --method ppd \
        --names "λ 1" "λ 3" > benchmarks/results/<name>.md
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ppdistill.bench import read_records
from ppdistill.bench.stats import median_steps_to_90


def _load(path: Path, method: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The finished runs of ``method`` in a results folder or a records file, by (env, student)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in read_records(path):
        if r.get("status") == "ok" and r.get("label", r["spec"]["method"]) == method:
            groups[(r["spec"]["env_id"], str(r["spec"]["student"]))].append(r)
    return groups


def _summary(records: list[dict[str, Any]]) -> tuple[str, float]:
    norm = np.array([r["normalized_score"] for r in records])
    median = median_steps_to_90(records)
    reach = "never" if np.isinf(median) else f"{int(median):,}"
    return f"{norm.mean():.2f} ± {norm.std():.2f}, {reach}", float(norm.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="records.jsonl (or its folder) before the change")
    parser.add_argument("new", type=Path, help="records.jsonl (or its folder) after the change")
    parser.add_argument("--method", default="ppd", help="method or variant label to compare")
    parser.add_argument("--new-method", default=None, help="its label in NEW, if another (default: --method)")
    parser.add_argument("--names", nargs=2, default=["before", "after"], help="column names")
    args = parser.parse_args()
    old, new = _load(args.old, args.method), _load(args.new, args.new_method or args.method)
    print(f"{args.method}: final normalized score (mean ± std over seeds), env steps to 90% (median)\n")
    print(f"| env | student | {args.names[0]} | {args.names[1]} | change in final score |")
    print("|---|---|---|---|---|")
    diffs = []
    for key in sorted(set(old) & set(new)):
        (a, ma), (b, mb) = _summary(old[key]), _summary(new[key])
        diffs.append(mb - ma)
        print(f"| {key[0]} | {key[1]} | {a} | {b} | {mb - ma:+.2f} |")
    if diffs:
        print(f"\nMean change over {len(diffs)} env × student cells: {np.mean(diffs):+.3f}")


if __name__ == "__main__":
    main()
