"""Per-environment statistics of the privileged suite, with the harness's bootstrap.

`ppdistill bench report` pools the envs into one IQM; issue 18 asks, per env, whether the
recurrent PPD student reaches 0.9 of the full-state teacher and how the MLP student and
RecurrentPPO from scratch do on the same view. This script computes, for each env alone, the
IQM of the final normalized score with its 95% interval (`ppdistill.bench.bootstrap`: seeds,
then the evaluation episodes, which the teacher and a random policy played too) and the paired
differences of rppd against each other method.

    python benchmarks/results/privileged/per_env.py benchmarks/results/privileged

(and the same for the suites of the same methods: privileged-change).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ppdistill.bench.bootstrap import Bootstrap, units_from, verdict

METHODS = {
    "rppd": "RecurrentPPD (LSTM)",
    "ppd": "PPD, MLP student",
    "rsd": "RecurrentStudentDistill (LSTM)",
    "rppo": "RecurrentPPO from scratch",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    records = [json.loads(line) for line in (args.folder / "records.jsonl").read_text().splitlines() if line]
    records = [r for r in records if r.get("status") == "ok"]
    envs = list(dict.fromkeys(r["spec"]["env_id"] for r in records))  # in the suite's order
    lines = [
        "# Per environment: final normalized score, IQM [95% CI]",
        "",
        "1 is the full-state teacher, 0 a random policy (both scored on the student's final "
        "episodes). Intervals: the harness's hierarchical bootstrap (seeds, then episodes), 2000 "
        "replicates, per env. Made by `python benchmarks/results/privileged/per_env.py "
        f"benchmarks/results/{args.folder.resolve().name}`.",
        "",
        "| env | steps | " + " | ".join(METHODS.values()) + " | rppd − ppd | rppd − rsd | rppd − rppo |",
        "|---|---|" + "---|" * (len(METHODS) + 3),
    ]
    for env in envs:
        mine = [r for r in records if r["spec"]["env_id"] == env]
        cells = []
        for label in METHODS:
            runs = [r for r in mine if r["label"] == label]
            if not runs:
                cells.append("not run")
                continue
            point, low, high = Bootstrap(units_from(runs, lambda r: r["label"])).iqm(label)
            cells.append(f"{point:.2f} [{low:.2f}, {high:.2f}] (n={len(runs)})")
        for other in ("ppd", "rsd", "rppo"):
            seeds = {r["spec"]["seed"] for r in mine if r["label"] == "rppd"}
            seeds &= {r["spec"]["seed"] for r in mine if r["label"] == other}
            if not seeds:
                cells.append("-")
                continue
            pair = [r for r in mine if r["label"] in ("rppd", other) and r["spec"]["seed"] in seeds]
            diff = Bootstrap(units_from(pair, lambda r: r["label"])).difference("rppd", other)
            point, low, high = diff
            cells.append(f"{point:+.2f} [{low:+.2f}, {high:+.2f}] {verdict(diff, 'rppd', other)}")
        steps = mine[0]["spec"]["timesteps"]
        lines.append(f"| {env} | {steps:,} | " + " | ".join(cells) + " |")
    out = args.folder / "per_env.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
