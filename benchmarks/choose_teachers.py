"""Apply teachers-ablation's rule (written in the suite file before its SAC and TD3 entries ran).

    python benchmarks/choose_teachers.py benchmarks/results/teachers-ablation

Per entry (env and teacher tag), the mean over seeds of the final normalized score and of the
mean normalized score over training (AUC); ``d`` = a variant minus its shipped method
(``ppd-*`` against ``ppd``, ``sd-*`` against ``student-distill``). A variant qualifies for a
teacher kind (the tag's first word: ``sac``, ``td3``, ``dqn``) when, over the kind's entries,
mean ``d_final`` ≥ +0.05, mean ``d_auc`` ≥ −0.02 and no entry's ``d_final`` < −0.05; of a
method's qualifying variants, the largest mean ``d_final`` is chosen. Prints a Markdown table
and the choice, and writes them to ``choice.md`` in the folder.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MIN_GAIN = 0.05  # mean d_final over the kind's entries
MAX_AUC_LOSS = 0.02  # mean d_auc may not fall below -MAX_AUC_LOSS
MAX_ENTRY_LOSS = 0.05  # no entry's d_final below -MAX_ENTRY_LOSS
BASE = {"ppd": "ppd", "sd": "student-distill"}


@dataclass(frozen=True)
class Comparison:
    """One variant against its shipped method over one teacher kind's entries."""

    kind: str
    method: str
    variant: str
    d_final: dict[str, float]  # entry -> mean over seeds (variant minus method)
    d_auc: dict[str, float]

    @property
    def mean_final(self) -> float:
        return float(np.mean(list(self.d_final.values())))

    @property
    def mean_auc(self) -> float:
        return float(np.mean(list(self.d_auc.values())))

    @property
    def qualifies(self) -> bool:
        return (
            self.mean_final >= MIN_GAIN
            and self.mean_auc >= -MAX_AUC_LOSS
            and min(self.d_final.values()) >= -MAX_ENTRY_LOSS
        )


def base_method(label: str) -> str | None:
    """The shipped method a variant label is compared with (None for the shipped ones)."""
    prefix, _, rest = label.partition("-")
    if label in BASE.values() or not rest or prefix not in BASE:
        return None
    return BASE[prefix]


Means = dict[tuple[str, str], float]  # (entry, label) -> mean over seeds


def entry_means(records: list[dict[str, Any]]) -> tuple[Means, Means]:
    """(entry, label) -> mean over seeds of the final normalized score, and of the AUC."""
    finals: dict[tuple[str, str], list[float]] = defaultdict(list)
    aucs: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in records:
        if r.get("status") != "ok":
            continue
        span = r["reference_score"] - r["random_score"]
        finals[(r["task"], r["label"])].append(float(r["normalized_score"]))
        aucs[(r["task"], r["label"])].append(
            float(np.mean([(p["mean"] - r["random_score"]) / span for p in r["curve"]]))
        )
    return (
        {k: float(np.mean(v)) for k, v in finals.items()},
        {k: float(np.mean(v)) for k, v in aucs.items()},
    )


def kind_of(task: str) -> str:
    """``"Hopper-v5 [td3-timefeature]"`` -> ``"td3"``."""
    tag = task.partition("[")[2].rstrip("]")
    return tag.split("-")[0] if tag else "?"


def comparisons(records: list[dict[str, Any]]) -> list[Comparison]:
    """Every variant against its shipped method, per teacher kind."""
    finals, aucs = entry_means(records)
    grouped: dict[tuple[str, str, str], list[str]] = defaultdict(list)  # (kind, method, variant) -> entries
    for task, label in finals:
        method = base_method(label)
        if method is not None and (task, method) in finals:
            grouped[(kind_of(task), method, label)].append(task)
    return [
        Comparison(
            kind,
            method,
            variant,
            {t: finals[(t, variant)] - finals[(t, method)] for t in sorted(tasks)},
            {t: aucs[(t, variant)] - aucs[(t, method)] for t in sorted(tasks)},
        )
        for (kind, method, variant), tasks in sorted(grouped.items())
    ]


def choose(found: list[Comparison]) -> dict[tuple[str, str], Comparison | None]:
    """(kind, method) -> the qualifying variant with the largest mean d_final, or None."""
    out: dict[tuple[str, str], Comparison | None] = {}
    for c in found:
        best = out.get((c.kind, c.method))
        if c.qualifies and (best is None or c.mean_final > best.mean_final):
            out[(c.kind, c.method)] = c
        else:
            out.setdefault((c.kind, c.method), None)
    return out


def main(folder: Path) -> str:
    text = (folder / "records.jsonl").read_text()
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    found = comparisons(records)
    lines = [
        "| kind | method | variant | d final per entry | mean d final | mean d AUC | qualifies |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in found:
        per_entry = ", ".join(f"{t}: {d:+.3f}" for t, d in c.d_final.items())
        lines.append(
            f"| {c.kind} | {c.method} | {c.variant} | {per_entry} | {c.mean_final:+.3f} | "
            f"{c.mean_auc:+.3f} | {'yes' if c.qualifies else 'no'} |"
        )
    lines += ["", "### The rule's choice", ""]
    for (kind, method), c in choose(found).items():
        lines.append(f"- {kind}, {method}: " + (f"`{c.variant}`" if c else "the shipped settings"))
    kinds = sorted({kind_of(r["task"]) for r in records})
    text = "\n".join(lines) + "\n"
    (folder / "choice.md").write_text(
        "# teachers-ablation: the choice\n\nMade by `python benchmarks/choose_teachers.py "
        f"{folder}` (the rule is in its docstring and the suite file), from the entries of "
        f"the teacher kinds {', '.join(kinds)}. d = variant minus the shipped method, normalized "
        "scores, mean over seeds.\n\n" + text
    )
    return text


if __name__ == "__main__":
    print(main(Path(sys.argv[1])))
