"""``ppdistill bench report DIR``: tables, paired statistics, the paper's claims, plots.

Scores are normalized per env: ``(R − R_random) / (R_teacher − R_random)``, so 1 is the
teacher (the *uncorrupted* teacher in an imperfect suite) and 0 a random policy, each scored
on the very episodes the student was scored on. Two scores per run: the final one, and the
mean over training (the area under the evaluation curve, AUC), which separates methods that
all end at the teacher. Aggregates are interquartile means over envs × teachers × seeds;
method differences are paired (same env, teacher, seed and episodes), averaged over envs.
Every interval is a 95% bootstrap interval of :class:`~ppdistill.bench.bootstrap.Bootstrap`
(envs as strata, then teachers, seeds and episodes), which carries the teacher's own
uncertainty; where a difference's interval covers 0 the word is "tie".

Besides ``report.md``, the folder gets ``aggregate.json`` (the IQMs), ``claims.json`` (the
verdicts, which ``benchmarks/claims_table.py`` turns into the README's table), ``aggregate.png``
and ``curves-<suite>-<env>.png``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ppdistill.bench.bootstrap import Bootstrap, units_from, verdict
from ppdistill.bench.claims import Verdict, paper_claims, show
from ppdistill.bench.execute import read_records
from ppdistill.bench.plots import plot_aggregate, plot_env_curves
from ppdistill.bench.stats import Interval, task_of
from ppdistill.core.errors import PPDistillError

METHOD_ORDER = ["teacher-distill", "student-distill", "ppd", "ppo"]
METHOD_LABELS = {
    "teacher-distill": "teacher-distill",
    "student-distill": "student-distill",
    "ppd": "PPD",
    "ppo": "PPO from scratch",
}
SIZE_ORDER = ["tiny", "smaller", "same", "larger"]
# the comparisons a report makes among the paper's methods, first minus second
PAIRS = [
    ("ppd", "student-distill"),
    ("ppd", "teacher-distill"),
    ("student-distill", "teacher-distill"),
    ("ppd", "ppo"),
    ("student-distill", "ppo"),
    ("teacher-distill", "ppo"),
]

Groups = dict[tuple[str, str, str, str], list[dict[str, Any]]]
"""(suite, env, student size, method) → its finished runs."""


def _name(label: str) -> str:
    return METHOD_LABELS.get(label, label)


def _cell(interval: Interval | None, digits: int = 2) -> str:
    if interval is None:
        return "incomplete"
    point, low, high = interval
    if not np.isfinite(point):
        return "undefined"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{point:.{digits}f} [no interval: one seed]"
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _pairs(records: list[dict[str, Any]], labels: list[str]) -> list[tuple[str, str]]:
    """The paper's comparisons among the methods present; an ablation's variants are each
    compared with their algorithm run as shipped (its plain label, e.g. ``ppd``) where the suite
    has it, else with the first variant of the same algorithm."""
    present = [(a, b) for a, b in PAIRS if a in labels and b in labels]
    base_of = {str(r["label"]): r["spec"]["method"] for r in records}
    labels = [label for label in labels if label in base_of]
    first: dict[str, str] = {}
    for label in labels:
        if label not in METHOD_ORDER:
            base = base_of[label]
            first.setdefault(base, base if base in labels else label)
    variants = [(label, first[base_of[label]]) for label in labels if label not in METHOD_ORDER]
    return present + [(a, b) for a, b in variants if a != b]


MADE_BY_FILE = "made-by.txt"


def build_report(out: Path, reps: int = 2000, made_by: str | None = None) -> Path:
    """Write ``report.md``, ``aggregate.json``, ``claims.json``, ``aggregate.png`` and
    ``curves-<suite>-<env>.png`` into ``out``; return the report's path.

    :param out: a folder written by ``ppdistill bench run``
    :param reps: bootstrap replicates
    :param made_by: how the folder's records were made, where not by ``bench run`` into it (a
        script that selects records of another folder); kept in ``made-by.txt`` so that a later
        report says it too; default: that file's, else the ``bench run`` commands
    """
    out = Path(out)
    if made_by:
        (out / MADE_BY_FILE).write_text(made_by + "\n")
    elif (out / MADE_BY_FILE).exists():
        made_by = (out / MADE_BY_FILE).read_text().strip()
    records = [r for r in read_records(out) if r.get("status") == "ok"]
    errors = [r for r in read_records(out) if r.get("status") != "ok"]
    if not records:
        raise PPDistillError(f"{out} holds no finished runs (records.jsonl); run `ppdistill bench run` first")
    for r in records:
        r.setdefault("label", r["spec"]["method"])  # a method, or an ablation variant's name
    suites = sorted({r["suite"] for r in records})
    envs = sorted({task_of(r) for r in records})
    labels: set[str] = {str(r["label"]) for r in records}
    in_order = list(dict.fromkeys(str(r["label"]) for r in records))
    methods = [m for m in METHOD_ORDER if m in labels] + [m for m in in_order if m not in METHOD_ORDER]
    sizes = [s for s in SIZE_ORDER if any(r["spec"]["student"] == s for r in records)]
    sizes += list(
        dict.fromkeys(str(r["spec"]["student"]) for r in records if r["spec"]["student"] not in sizes)
    )
    groups: Groups = defaultdict(list)
    for r in records:
        s = r["spec"]
        groups[(r["suite"], task_of(r), s["student"], r["label"])].append(r)

    cells: dict[tuple[str, str], Bootstrap] = {}
    for suite in suites:
        for size in sizes:
            rs = [r for r in records if r["suite"] == suite and r["spec"]["student"] == size]
            if rs:
                cells[(suite, size)] = Bootstrap(units_from(rs, lambda r: str(r["label"])), reps)
    final, auc = {}, {}
    for k, b in cells.items():
        for m in methods:
            own = b.restricted(m)
            if own is not None:
                final[(*k, m)], auc[(*k, m)] = own.iqm(m), own.iqm(m, "auc")
    keys = [k for k in ((s, z) for s in suites for z in sizes) if k in cells]

    lines = _header(out, records, errors, suites, reps, made_by)
    lines += _aggregate_table("Final score", final, keys, methods)
    if final:
        lines += ["", "![final scores](aggregate.png)"]
    lines += _aggregate_table("Mean score over training (AUC)", auc, keys, methods)
    lines += _differences(cells, keys, records, methods)
    claims = _claims(records, suites, sizes, reps)
    lines += ["", "## Claims of the paper, checked on these runs", ""]
    lines += [f"- **{c.verdict}**: {c.claim} ({c.suite}). {c.evidence}." for c in claims] or [
        "- these runs do not bear on the paper's claims (an ablation, or methods missing)"
    ]
    lines += ["", "## Per environment", ""]
    for suite in suites:
        for env in envs:
            lines += _env_section(out, groups, records, suite, env, sizes, methods, reps)
    if final:
        plot_aggregate(final, keys, methods, METHOD_LABELS, out / "aggregate.png")
    if errors:
        lines += ["## Failed runs", ""]
        lines += [f"- {r['id']} (attempt {r.get('attempt', '?')}): {r.get('error')}" for r in errors]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    (out / "aggregate.json").write_text(
        json.dumps(
            {
                f"{k[0]}|{k[1]}|{k[2]}": {"final": v, "auc": auc.get(k)}
                for k, v in final.items()  # keyed suite|size|method
            },
            indent=2,
        )
    )
    (out / "claims.json").write_text(json.dumps([c.as_dict() for c in claims], indent=2))
    return report


def _suite_args(suite: str, records: list[dict[str, Any]]) -> str:
    """The suite file (and ``--half``) that made a suite's records: a half is named
    ``<file>-<half>`` (records before the ``half`` key name no half)."""
    half = next((str(r["half"]) for r in records if r["suite"] == suite and r.get("half")), "")
    if half and suite.endswith(f"-{half}"):
        return f"benchmarks/suites/{suite[: -len(half) - 1]}.yaml --half {half}"
    return f"benchmarks/suites/{suite}.yaml"


def _header(
    out: Path,
    records: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    suites: list[str],
    reps: int,
    made_by: str | None = None,
) -> list[str]:
    seeds = sorted({int(r["spec"]["seed"]) for r in records})
    episodes = sorted({len(r.get("returns") or []) for r in records})
    paired = all(r.get("reference_returns") for r in records)
    lines = [f"# Benchmark report: {', '.join(suites)}", ""]
    lines += [
        "Scores are normalized per env, (R − R_random) / (R_teacher − R_random): 1.00 is the teacher "
        "(the uncorrupted one for imperfect teachers), 0 a random policy, both scored on the episodes "
        "the student was scored on. *Final*: the final evaluation; *AUC*: the mean score over training "
        "(area under the evaluation curve). Aggregates: interquartile mean over envs × teachers × seeds "
        "(a method that ran with some teachers or envs only, over those: compare such columns through "
        "the paired differences, which take the runs both methods have). "
        "Differences: paired (same env, teacher, seed and episodes), the mean over envs of the mean per "
        "env, a score below −1 counting as −1 (a failed run; the tables above are IQMs). "
        "Intervals: 95%, the estimate ± t·SE with SE from a bootstrap that keeps envs as strata and "
        "draws teachers, then seeds"
        + (", then episodes (which carries the teacher's own uncertainty)" if paired else "")
        + f" ({reps} replicates), widened for the few teachers or seeds there are "
        "(`ppdistill.bench.bootstrap`: a percentile interval from 5 seeds read 'ahead' under no "
        "difference about one time in five). Where a difference's interval covers 0 the verdict is "
        "*tie*: not distinguishable with these runs, which is not the same as equal. *90% held from*: "
        "the first evaluation from which the score stays at or above 0.9 to the end (the last "
        "evaluation alone counts); its median counts runs that never get there as never.",
        "",
        f"{len(records)} finished runs"
        + (f", {len(errors)} failed (listed at the end)" if errors else "")
        + f"; seeds {', '.join(map(str, seeds))}; final evaluations of "
        + " or ".join(map(str, episodes))
        + " episodes."
        + (
            ""
            if paired
            else " These records predate per-episode references: the teacher's and the random "
            "policy's scores are taken as exact."
        ),
        "",
        "Made by "
        + (
            made_by
            or "`"
            + "`, `".join(f"ppdistill bench run {_suite_args(s, records)} --out {out}" for s in suites)
            + f"` and `ppdistill bench report {out}`"
        )
        + ", on "
        + "; ".join(sorted({str(r.get("machine", "?")) for r in records}))
        + ". Versions: "
        + "; ".join(
            sorted({", ".join(f"{k} {v}" for k, v in (r.get("versions") or {}).items()) for r in records})
        )
        + ".",
        "",
    ]
    return lines


def _aggregate_table(
    title: str,
    aggregate: dict[tuple[str, str, str], Interval],
    keys: list[tuple[str, str]],
    methods: list[str],
) -> list[str]:
    lines = [
        "",
        f"## {title}: IQM [95% CI]",
        "",
        "| suite | student | " + " | ".join(_name(m) for m in methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for suite, size in keys:
        cells = [_cell(aggregate.get((suite, size, m))) for m in methods]
        lines.append(f"| {suite} | {size} | " + " | ".join(cells) + " |")
    return lines


def _differences(
    cells: dict[tuple[str, str], Bootstrap],
    keys: list[tuple[str, str]],
    records: list[dict[str, Any]],
    methods: list[str],
) -> list[str]:
    rows = []
    for key in keys:
        boot = cells[key]
        for a, b in _pairs(records, methods):
            both = boot.restricted(a, b)
            if both is None:
                continue
            f, s = both.difference(a, b), both.difference(a, b, "auc")
            rows.append(
                f"| {key[0]} | {key[1]} | {_name(a)} − {_name(b)} | {show(f)} | "
                f"{verdict(f, _name(a), _name(b))} | {show(s)} | {verdict(s, _name(a), _name(b))} |"
            )
    if not rows:
        return []
    return [
        "",
        "## Paired differences: mean over envs [95% CI]",
        "",
        "| suite | student | difference | final | verdict | AUC | verdict |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]


def _claims(records: list[dict[str, Any]], suites: list[str], sizes: list[str], reps: int) -> list[Verdict]:
    verdicts = []
    for suite in suites:
        rs = [r for r in records if r["suite"] == suite and r["label"] in METHOD_ORDER]
        if not rs:
            continue
        imperfect = any(r.get("teacher_score") != r.get("reference_score") for r in rs)
        boot = Bootstrap(units_from(rs, lambda r: f"{r['label']}|{r['spec']['student']}"), reps)
        present = [z for z in sizes if any(r["spec"]["student"] == z for r in rs)]
        verdicts += paper_claims(boot, suite, present, imperfect)
    return verdicts


def _teacher_line(env_records: list[dict[str, Any]]) -> str:
    """The teachers of an env (each corrupted one with the score it is normalized by) and the
    random policy: means over the seeds' final episodes."""
    by_teacher: dict[str, list[tuple[float, float]]] = defaultdict(list)
    randoms = []
    for r in env_records:
        by_teacher[Path(r["spec"]["teacher"]).name].append((r["teacher_score"], r["reference_score"]))
        randoms.append(r["random_score"])
    parts = []
    for name, pairs in by_teacher.items():
        own, ref = (float(np.mean(x)) for x in zip(*pairs, strict=True))
        part = f"{own:.1f}" + (f" (uncorrupted {ref:.1f})" if round(own, 1) != round(ref, 1) else "")
        parts.append(part + (f" ({name})" if len(by_teacher) > 1 else ""))
    return (
        f"Teacher{'s' if len(by_teacher) > 1 else ''} {', '.join(parts)}, random policy "
        f"{np.mean(randoms):.1f} (means over the seeds' final episodes)"
    )


def _env_section(
    out: Path,
    groups: Groups,
    records: list[dict[str, Any]],
    suite: str,
    env: str,
    sizes: list[str],
    methods: list[str],
    reps: int,
) -> list[str]:
    """One env of one suite: its teachers, a table per student size and method, the paired
    differences on this env, the curves."""
    env_records = [r for r in records if r["suite"] == suite and task_of(r) == env]
    if not env_records:
        return []
    budgets = " or ".join(f"{b:,}" for b in sorted({int(r["env_steps"]) for r in env_records}))
    lines = [
        f"### {env} ({suite})",
        "",
        f"{_teacher_line(env_records)}; {budgets} env steps per run.",
        "",
        "| student | method | final (mean ± sd over runs) | return | AUC | 90% held from (median; runs) |",
        "|---|---|---|---|---|---|",
    ]
    diffs = []
    for size in sizes:
        rs_size = [r for r in env_records if r["spec"]["student"] == size]
        if not rs_size:
            continue
        boot = Bootstrap(units_from(rs_size, lambda r: str(r["label"])), reps)
        for m in methods:
            own = boot.restricted(m)
            if own is None:
                continue
            norm = own.point(m)
            area = own.point(m, "auc")
            held = [u.held[m] for u in own.units]
            reached = [h for h in held if h is not None]
            # the median over every run, a run that never holds 90% counting as infinitely late
            middle = float(np.median([np.inf if h is None else h for h in held]))
            when = f"{int(middle):,}" if np.isfinite(middle) else "never"
            when += f" ({len(reached)}/{len(held)})"
            returns = np.mean([u.final[m].mean() for u in own.units])
            finite = norm[np.isfinite(norm)]
            sd = f" ± {np.std(finite, ddof=1):.2f}" if len(finite) > 1 else ""
            lines.append(
                f"| {size} | {_name(m)} | {np.nanmean(norm):.2f}{sd} | {returns:.1f} | "
                f"{np.nanmean(area):.2f} | {when} |"
            )
        for a, b in _pairs(env_records, methods):
            if a in METHOD_ORDER and "ppo" in (a, b):
                continue  # PPO's distance is in the aggregate; per env, the distillers
            both = boot.restricted(a, b)
            if both is not None:
                f, s = both.difference(a, b), both.difference(a, b, "auc")
                diffs.append(
                    f"| {size} | {_name(a)} − {_name(b)} | {show(f)} ({verdict(f, _name(a), _name(b))}) "
                    f"| {show(s)} ({verdict(s, _name(a), _name(b))}) |"
                )
    if diffs:
        lines += ["", "| student | paired difference | final | AUC |", "|---|---|---|---|", *diffs]
    lines.append("")
    by_size = {
        size: {m: groups[(suite, env, size, m)] for m in methods if groups.get((suite, env, size, m))}
        for size in sizes
    }
    name = "curves-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{suite}-{env}").strip("-") + ".png"
    plot_env_curves(by_size, METHOD_LABELS, f"{env} ({suite})", out / name)
    return [*lines, f"![{env} learning curves]({name})", ""]
