"""Apply teachers-ablation's rule (written in the suite file before its SAC and TD3 entries ran).

    python benchmarks/choose_teachers.py benchmarks/results/teachers-ablation
    python benchmarks/choose_teachers.py benchmarks/results/teachers-ablation-width --group tqc=sac

``--group TAG=KIND`` counts the entries whose tag's first word (before any ``-``) is TAG as
entries of KIND (the
rule of teachers-ablation-width judges SAC and TQC teachers as one kind, as distill.yml's
``teacher_kinds`` gives them one setting); without it each first word is its own kind.

Per entry (env and teacher tag), the mean over seeds of the final normalized score and of the
mean normalized score over training (AUC); ``d`` = a variant minus its shipped method
(``ppd-*`` against ``ppd``, ``sd-*`` against ``student-distill``). A variant qualifies for a
teacher kind (the tag's first word: ``sac``, ``td3``, ``dqn``) when, over the kind's entries,
mean ``d_final`` ≥ +0.05, mean ``d_auc`` ≥ −0.02 and no entry's ``d_final`` < −0.05; of a
method's qualifying variants, the largest mean ``d_final`` is chosen. A variant, or its shipped
method, without a successful run for every seed on every entry of the kind is *incomplete* and
does not qualify (a run that failed on one teacher must not be judged on the others). AUC is
the reports' (:func:`ppdistill.bench.bootstrap.curve_auc`). Prints a Markdown table and the
choice, and writes them to ``choice.md`` in the folder.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ppdistill.bench.bootstrap import curve_auc
from ppdistill.bench.execute import read_records
from ppdistill.bench.stats import task_of

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
    missing: tuple[str, ...] = ()  # "entry: label seed s" without a successful run

    @property
    def mean_final(self) -> float:
        return float(np.mean(list(self.d_final.values())))

    @property
    def mean_auc(self) -> float:
        return float(np.mean(list(self.d_auc.values())))

    @property
    def qualifies(self) -> bool:
        eps = 1e-9  # the limits are inclusive: 0.55 - 0.5 must count as +0.05
        return (
            not self.missing
            and self.mean_final >= MIN_GAIN - eps
            and self.mean_auc >= -MAX_AUC_LOSS - eps
            and min(self.d_final.values()) >= -MAX_ENTRY_LOSS - eps
        )


def base_method(label: str) -> str | None:
    """The shipped method a variant label is compared with (None for the shipped ones)."""
    prefix, _, rest = label.partition("-")
    if label in BASE.values() or not rest or prefix not in BASE:
        return None
    return BASE[prefix]


Scores = dict[tuple[str, str], dict[int, float]]  # (entry, label) -> seed -> score


def entry_scores(records: list[dict[str, Any]]) -> tuple[Scores, Scores, set[int]]:
    """(entry, label) -> seed -> final normalized score, and AUC normalized alike, of the
    successful runs; and every seed any run had."""
    finals: Scores = defaultdict(dict)
    aucs: Scores = defaultdict(dict)
    seeds: set[int] = set()
    for r in records:
        seed = int(r["spec"]["seed"])
        seeds.add(seed)
        if r.get("status") != "ok":
            continue
        key = (task_of(r), r["label"])
        span = r["reference_score"] - r["random_score"]
        finals[key][seed] = float(r["normalized_score"])
        aucs[key][seed] = (curve_auc(r["curve"]) - r["random_score"]) / span
    return finals, aucs, seeds


def kind_of(task: str, groups: dict[str, str] | None = None) -> str:
    """``"Hopper-v5 [td3-timefeature]"`` -> ``"td3"`` (``groups`` maps a first word to the kind it
    is judged with)."""
    tag = task.partition("[")[2].rstrip("]")
    first = tag.split("-")[0] if tag else "?"
    return (groups or {}).get(first, first)


def mean(scores: Scores, task: str, label: str) -> float:
    """Mean over the seeds that ran (NaN for none: such a variant is incomplete anyway)."""
    values = list(scores.get((task, label), {}).values())
    return float(np.mean(values)) if values else float("nan")


def comparisons(records: list[dict[str, Any]], groups: dict[str, str] | None = None) -> list[Comparison]:
    """Every variant against its shipped method, per teacher kind (``groups``: as :func:`kind_of`)."""
    finals, aucs, seeds = entry_scores(records)
    planned = {(task_of(r), r["label"]) for r in records}  # ran, whether or not it succeeded
    grouped: dict[tuple[str, str, str], list[str]] = defaultdict(list)  # (kind, method, variant) -> entries
    for task, label in sorted(planned):
        method = base_method(label)
        if method is not None:
            grouped[(kind_of(task, groups), method, label)].append(task)
    out = []
    for (kind, method, variant), tasks in sorted(grouped.items()):
        missing = tuple(
            f"{t}: {label} seed {seed}"
            for t in tasks
            for label in (variant, method)
            for seed in sorted(seeds)
            if seed not in finals.get((t, label), {})
        )
        out.append(
            Comparison(
                kind,
                method,
                variant,
                {t: mean(finals, t, variant) - mean(finals, t, method) for t in tasks},
                {t: mean(aucs, t, variant) - mean(aucs, t, method) for t in tasks},
                missing,
            )
        )
    return out


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


def parse_groups(args: list[str]) -> dict[str, str]:
    """``["--group", "tqc=sac", ...]`` -> ``{"tqc": "sac"}``."""
    groups: dict[str, str] = {}
    it = iter(args)
    for arg in it:
        value = next(it, "") if arg == "--group" else ""
        tag, _, kind = value.partition("=")
        if arg != "--group" or not tag or not kind:
            raise SystemExit(f"unexpected {arg!r}: the options are --group TAG=KIND (e.g. --group tqc=sac)")
        groups[tag] = kind
    return groups


def main(folder: Path, groups: dict[str, str] | None = None) -> str:
    if not (folder / "records.jsonl").is_file():
        raise SystemExit(f"{folder} has no records.jsonl: give a bench output folder")
    records = read_records(folder)
    first_words = {kind_of(task_of(r)) for r in records}
    unknown = sorted(set(groups or {}) - first_words)
    if unknown:
        raise SystemExit(
            f"--group {unknown[0]}=...: no entry's tag starts with {unknown[0]!r} "
            f"(the tags' first words: {', '.join(sorted(first_words))})"
        )
    found = comparisons(records, groups)
    lines = [
        "| kind | method | variant | d final per entry | mean d final | mean d AUC | qualifies |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in found:
        per_entry = ", ".join(f"{t}: {d:+.3f}" for t, d in c.d_final.items())
        verdict = (
            f"incomplete ({len(c.missing)} runs missing)" if c.missing else ("yes" if c.qualifies else "no")
        )
        lines.append(
            f"| {c.kind} | {c.method} | {c.variant} | {per_entry} | {c.mean_final:+.3f} | "
            f"{c.mean_auc:+.3f} | {verdict} |"
        )
    lines += ["", "### The rule's choice", ""]
    for (kind, method), c in choose(found).items():
        lines.append(f"- {kind}, {method}: " + (f"`{c.variant}`" if c else "the shipped settings"))
    kinds = sorted({kind_of(task_of(r), groups) for r in records})
    text = "\n".join(lines) + "\n"
    options = "".join(f" --group {tag}={kind}" for tag, kind in (groups or {}).items())
    (folder / "choice.md").write_text(
        f"# {folder.name}: the choice\n\nMade by `python benchmarks/choose_teachers.py "
        f"{folder}{options}` (the rule is in its docstring and the suite file), from the entries of "
        f"the teacher kinds {', '.join(kinds)}. d = variant minus the shipped method, normalized "
        "scores, mean over seeds.\n\n" + text
    )
    return text


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: python benchmarks/choose_teachers.py FOLDER [--group TAG=KIND ...]")
    print(main(Path(sys.argv[1]), parse_groups(sys.argv[2:])))
