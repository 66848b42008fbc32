"""``ppdistill bench report DIR``: tables, aggregate statistics, plots and a Markdown report.

Scores are normalized per env: ``(R - R_random) / (R_teacher - R_random)``, so 1 is the
teacher (the *uncorrupted* teacher in an imperfect suite) and 0 a random policy; where the
random policy scores 0 this is the paper's student/teacher ratio. Aggregates are
interquartile means over envs × seeds with 95% stratified-bootstrap confidence intervals
(rliable), per student size, laid out like the paper's Table 1.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ppdistill.bench.execute import read_records
from ppdistill.bench.plots import plot_aggregate, plot_env_curves
from ppdistill.bench.stats import Interval, iqm_with_ci, median_steps_to_90, score_matrix
from ppdistill.core.errors import PPDistillError

METHOD_ORDER = ["teacher-distill", "student-distill", "ppd", "ppo"]
METHOD_LABELS = {
    "teacher-distill": "teacher-distill",
    "student-distill": "student-distill",
    "ppd": "PPD",
    "ppo": "PPO from scratch",
}
SIZE_ORDER = ["tiny", "smaller", "same", "larger"]


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


Groups = dict[tuple[str, str, str, str], list[dict[str, Any]]]
"""(suite, env, student size, method) → its finished runs, one per seed."""


def build_report(out: Path, reps: int = 2000) -> Path:
    """Write ``report.md``, ``aggregate.json``, ``aggregate.png`` and ``curves-<suite>-<env>.png``
    into ``out``; return the report's path.

    :param out: a folder written by ``ppdistill bench run``
    :param reps: bootstrap repetitions
    """
    out = Path(out)
    records = [r for r in read_records(out) if r.get("status") == "ok"]
    errors = [r for r in read_records(out) if r.get("status") != "ok"]
    if not records:
        raise PPDistillError(f"{out} holds no finished runs (records.jsonl); run `ppdistill bench run` first")
    suites = sorted({r["suite"] for r in records})
    envs = sorted({r["spec"]["env_id"] for r in records})
    for r in records:
        r.setdefault("label", r["spec"]["method"])  # a method, or an ablation variant's name
    labels: set[str] = {str(r["label"]) for r in records}
    methods = [m for m in METHOD_ORDER if m in labels] + sorted(labels - set(METHOD_ORDER))
    sizes = [s for s in SIZE_ORDER if any(r["spec"]["student"] == s for r in records)]
    # explicit hidden sizes ("32,16") after the presets, in the order they first appear
    sizes += list(
        dict.fromkeys(str(r["spec"]["student"]) for r in records if r["spec"]["student"] not in SIZE_ORDER)
    )
    groups: Groups = defaultdict(list)
    for r in records:
        s = r["spec"]
        groups[(r["suite"], s["env_id"], s["student"], r["label"])].append(r)

    aggregate = _aggregate(records, suites, sizes, methods, reps)
    lines = _header(out, records, errors, suites, reps)
    lines += _aggregate_table(aggregate, suites, sizes, methods)
    if aggregate:
        lines += ["", "![aggregate scores](aggregate.png)"]
    lines += ["", "## Claims of the paper, checked on these runs", ""]
    lines += _claims(aggregate, suites, sizes)
    lines += _ppd_against_student_distill(groups, suites, envs, sizes)
    lines += ["", "## Per environment", ""]
    for suite in suites:
        for env in envs:
            lines += _env_section(out, groups, records, suite, env, sizes, methods)
    if aggregate:
        keys = [(s, z) for s in suites for z in sizes]
        plot_aggregate(aggregate, keys, methods, METHOD_LABELS, out / "aggregate.png")
    if errors:
        lines += ["## Failed runs", ""]
        lines += [f"- {r['id']} (attempt {r.get('attempt', '?')}): {r.get('error')}" for r in errors]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    (out / "aggregate.json").write_text(
        json.dumps({f"{k[0]}|{k[1]}|{k[2]}": v for k, v in aggregate.items()}, indent=2)
    )
    return report


def _aggregate(
    records: list[dict[str, Any]], suites: list[str], sizes: list[str], methods: list[str], reps: int
) -> dict[tuple[str, str, str], Interval]:
    """IQM with its CI per (suite, student size, method), where the env × seed grid is complete."""
    aggregate: dict[tuple[str, str, str], Interval] = {}
    for suite in suites:
        for size in sizes:
            for m in methods:
                rs = [
                    r
                    for r in records
                    if r["suite"] == suite and r["spec"]["student"] == size and r["label"] == m
                ]
                matrix = score_matrix(rs)
                if matrix is not None:
                    aggregate[(suite, size, m)] = iqm_with_ci(matrix, reps)
    return aggregate


def _header(
    out: Path, records: list[dict[str, Any]], errors: list[dict[str, Any]], suites: list[str], reps: int
) -> list[str]:
    lines = [f"# Benchmark report: {', '.join(suites)}", ""]
    lines += [
        "Scores are normalized per env, (R − R_random) / (R_teacher − R_random): 1.00 is the teacher "
        "(the uncorrupted one for imperfect teachers), 0 a random policy. Aggregates: interquartile "
        f"mean over envs × seeds, [95% stratified bootstrap CI] ({reps} resamples, rliable).",
        "",
        f"{len(records)} finished runs"
        + (f", {len(errors)} failed (listed at the end)" if errors else "")
        + ".",
        "",
        # where the numbers came from: the commands and the machines, as recorded by each run
        "Made by `"
        + "`, `".join(f"ppdistill bench run benchmarks/suites/{s}.yaml --out {out}" for s in suites)
        + f"` and `ppdistill bench report {out}`, on "
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
    aggregate: dict[tuple[str, str, str], Interval], suites: list[str], sizes: list[str], methods: list[str]
) -> list[str]:
    lines = [
        "## Aggregate (like the paper's Table 1)",
        "",
        "| suite | student | " + " | ".join(METHOD_LABELS.get(m, m) for m in methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for suite in suites:
        for size in sizes:
            cells = []
            for m in methods:
                if (suite, size, m) not in aggregate:
                    cells.append("incomplete")
                    continue
                point, lo, hi = aggregate[(suite, size, m)]
                cells.append(f"{point:.2f} [{lo:.2f}, {hi:.2f}]")
            lines.append(f"| {suite} | {size} | " + " | ".join(cells) + " |")
    return lines


def _env_section(
    out: Path,
    groups: Groups,
    records: list[dict[str, Any]],
    suite: str,
    env: str,
    sizes: list[str],
    methods: list[str],
) -> list[str]:
    """One env of one suite: its teachers, a table per student size and method, the curves."""
    env_records = [r for r in records if r["suite"] == suite and r["spec"]["env_id"] == env]
    if not env_records:
        return []
    # one env may have several teachers (or budgets) in a suite: name each; a corrupted
    # teacher is named with its own score and the one it is normalized by. Each seed scores
    # the teacher on its own episodes (the seed plan): several seeds give a mean.
    scores: dict[str, dict[int, tuple[float, float]]] = defaultdict(dict)  # teacher → seed → scores
    randoms: dict[int, float] = {}
    for r in env_records:
        seed = r["spec"]["seed"]
        scores[Path(r["spec"]["teacher"]).name][seed] = (r["teacher_score"], r["reference_score"])
        randoms[seed] = r["random_score"]
    parts = []
    for name, by_seed in scores.items():
        per_seed = set(by_seed.values())
        own, ref = next(iter(per_seed)) if len(per_seed) == 1 else map(np.mean, zip(*by_seed.values()))
        own, ref = round(float(own), 1), round(float(ref), 1)
        part = f"{own:.1f}" + (f" (uncorrupted {ref:.1f})" if own != ref else "")
        part += " (mean over the seeds' episodes)" if len(per_seed) > 1 else ""
        parts.append(part + (f" ({name})" if len(scores) > 1 else ""))
    named = ", ".join(parts)
    random = f"{np.mean(list(randoms.values())):.1f}"
    random += " (mean over the seeds' episodes)" if len(set(randoms.values())) > 1 else ""
    budgets = " or ".join(f"{b:,}" for b in sorted({int(r["env_steps"]) for r in env_records}))
    lines = [
        f"### {env} ({suite})",
        "",
        f"Teacher{'s' if len(scores) > 1 else ''} {named}, random policy {random}, "
        f"{budgets} env steps per run.",
        "",
        "| student | method | normalized (mean ± std over seeds) | return "
        "| env steps to 90% (median; runs that got there) |",
        "|---|---|---|---|---|",
    ]
    for size in sizes:
        for m in methods:
            rs = groups.get((suite, env, size, m), [])
            if not rs:
                continue
            norm = np.array([r["normalized_score"] for r in rs])
            ret = np.array([r["score"] for r in rs])
            reached = [r["steps_to_90"] for r in rs if r["steps_to_90"] is not None]
            steps = (
                f"{int(np.median(reached)):,} ({len(reached)}/{len(rs)})"
                if reached
                else f"never (0/{len(rs)})"
            )
            lines.append(
                f"| {size} | {METHOD_LABELS.get(m, m)} | {norm.mean():.2f} ± {norm.std():.2f} | "
                f"{ret.mean():.1f} | {steps} |"
            )
    lines.append("")
    by_size = {
        size: {m: groups[(suite, env, size, m)] for m in methods if groups.get((suite, env, size, m))}
        for size in sizes
    }
    name = f"curves-{suite}-{env.replace('/', '-')}.png"
    plot_env_curves(by_size, METHOD_LABELS, f"{env} ({suite})", out / name)
    return [*lines, f"![{env} learning curves]({name})", ""]


def _claims(
    aggregate: dict[tuple[str, str, str], Interval], suites: list[str], sizes: list[str]
) -> list[str]:
    """The paper's claims, each marked as holding or not on these numbers (IQM, CIs)."""
    out = []

    def get(suite: str, size: str, m: str) -> Interval | None:
        return aggregate.get((suite, size, m))

    for suite in suites:
        for size in sizes:
            ppd, sd, td, ppo = (
                get(suite, size, m) for m in ("ppd", "student-distill", "teacher-distill", "ppo")
            )
            if ppd and sd and td:
                order = ppd[0] >= sd[0] >= td[0]
                overlap = ppd[1] <= sd[2] and sd[1] <= ppd[2]
                out.append(
                    f"- {suite}, {size}: PPD ≥ student-distill ≥ teacher-distill "
                    f"({ppd[0]:.2f} / {sd[0]:.2f} / {td[0]:.2f}): {'holds' if order else 'does not hold'}"
                    + ("; PPD and student-distill CIs overlap" if overlap else "")
                )
            if size == "larger":
                for m, v in (("PPD", ppd), ("student-distill", sd), ("teacher-distill", td)):
                    if v:
                        verdict = (
                            "surpasses the teacher"
                            if v[1] > 1.0
                            else ("matches it" if v[2] >= 1.0 else "stays below it")
                        )
                        out.append(
                            f"- {suite}, larger student, {m}: "
                            f"IQM {v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]: {verdict}"
                        )
            if ppo:
                distilled = [v for v in (ppd, sd, td) if v]
                if distilled:
                    ahead = all(v[1] > ppo[2] for v in distilled)
                    out.append(
                        f"- {suite}, {size}: every distillation method ahead of PPO from scratch "
                        f"at equal env steps (PPO {ppo[0]:.2f} [{ppo[1]:.2f}, {ppo[2]:.2f}]): "
                        + ("holds (CIs apart)" if ahead else "does not hold everywhere")
                    )
    return out or ["- not enough methods in these runs to check the claims"]


def _steps(x: float) -> str:
    return "never" if np.isinf(x) else f"{int(x):,}"


def _ppd_against_student_distill(
    groups: Groups,
    suites: list[str],
    envs: list[str],
    sizes: list[str],
) -> list[str]:
    """Per env and student: does PPD reach 90% of the teacher wherever student-distill does, no later?

    Medians over seeds, a run that never got there counting as never, so one lucky seed does
    not make a method "reach" 90%.
    """
    rows, held = [], 0
    for suite in suites:
        for env in envs:
            for size in sizes:
                ppd = groups.get((suite, env, size, "ppd"))
                sd = groups.get((suite, env, size, "student-distill"))
                if not ppd or not sd:
                    continue
                p, s = median_steps_to_90(ppd), median_steps_to_90(sd)
                if np.isinf(s):
                    verdict = "student-distill does not get there" + ("; PPD does" if np.isfinite(p) else "")
                elif p <= s:
                    verdict = "holds" + (" (PPD earlier)" if p < s else "")
                else:
                    verdict = "**does not hold**"
                held += p <= s
                pn = np.mean([r["normalized_score"] for r in ppd])
                sn = np.mean([r["normalized_score"] for r in sd])
                cells = [suite, env, size, _steps(p), _steps(s), f"{pn:.2f}", f"{sn:.2f}", verdict]
                rows.append("| " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "",
        "## PPD against student-distill, env by env",
        "",
        "Wherever student-distill reaches 90% of the teacher, does PPD reach it too, in no more env "
        "steps? Env steps to 90%: median over seeds, a seed that never got there counting as never "
        f"(evaluations are spaced, so equal steps mean the same evaluation). Holds in {held} of {len(rows)}.",
        "",
        "| suite | env | student | PPD: steps to 90% | student-distill: steps to 90% "
        "| PPD final | student-distill final | PPD no later |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]
