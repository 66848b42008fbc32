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
from ppdistill.core.errors import MissingExtraError, PPDistillError

METHOD_ORDER = ["teacher-distill", "student-distill", "ppd", "ppo"]
METHOD_LABELS = {
    "teacher-distill": "teacher-distill",
    "student-distill": "student-distill",
    "ppd": "PPD",
    "ppo": "PPO from scratch",
}
SIZE_ORDER = ["smaller", "same", "larger"]


def _iqm_with_ci(scores: np.ndarray, reps: int, seed: int = 0) -> tuple[float, float, float]:
    """IQM of a (runs, tasks) matrix with a 95% stratified bootstrap CI (rliable)."""
    try:
        from rliable import library as rly
        from rliable import metrics
    except ImportError as exc:
        raise MissingExtraError("bench", "bench report", "rliable") from exc

    def iqm(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x)])

    np.random.seed(seed)  # rliable draws from numpy's global generator
    point, interval = rly.get_interval_estimates({"m": scores}, iqm, reps=reps)
    return float(point["m"][0]), float(interval["m"][0][0]), float(interval["m"][1][0])


def _score_matrix(records: list[dict[str, Any]]) -> np.ndarray | None:
    """(seeds, envs) normalized scores; None when the grid is incomplete."""
    by_env: dict[str, dict[int, float]] = defaultdict(dict)
    for r in records:
        by_env[r["spec"]["env_id"]][r["spec"]["seed"]] = r["normalized_score"]
    seeds = sorted({s for v in by_env.values() for s in v})
    if not by_env or any(set(v) != set(seeds) for v in by_env.values()):
        return None
    return np.array([[by_env[e][s] for e in sorted(by_env)] for s in seeds])


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _curve_grid(
    records: list[dict[str, Any]], n: int = 25
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Mean and std over seeds of the normalized curve on a common grid of env steps."""
    curves = []
    for r in records:
        x = np.array([c["timesteps"] for c in r["curve"]], dtype=float)
        y = np.array(
            [(c["mean"] - r["random_score"]) / (r["reference_score"] - r["random_score"]) for c in r["curve"]]
        )
        curves.append((x, y))
    if not curves:
        return None
    end = min(x[-1] for x, _ in curves)
    grid = np.linspace(0, end, n)
    ys = np.array([np.interp(grid, x, y) for x, y in curves])
    return grid, ys.mean(0), ys.std(0)


def build_report(out: Path, reps: int = 2000) -> Path:
    """Write ``report.md``, ``aggregate.png`` and ``curves-<env>.png`` into ``out``; return the report path.

    :param out: a folder written by ``ppdistill bench run``
    :param reps: bootstrap repetitions
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        s = r["spec"]
        groups[(r["suite"], s["env_id"], s["student"], r["label"])].append(r)

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
        "## Aggregate (like the paper's Table 1)",
        "",
        "| suite | student | " + " | ".join(METHOD_LABELS.get(m, m) for m in methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    aggregate: dict[tuple[str, str, str], tuple[float, float, float]] = {}
    for suite in suites:
        for size in sizes:
            cells = []
            for m in methods:
                rs = [
                    r
                    for r in records
                    if r["suite"] == suite and r["spec"]["student"] == size and r["label"] == m
                ]
                matrix = _score_matrix(rs)
                if matrix is None:
                    cells.append("incomplete")
                    continue
                point, lo, hi = _iqm_with_ci(matrix, reps)
                aggregate[(suite, size, m)] = (point, lo, hi)
                cells.append(f"{point:.2f} [{lo:.2f}, {hi:.2f}]")
            lines.append(f"| {suite} | {size} | " + " | ".join(cells) + " |")

    if aggregate:
        lines += ["", "![aggregate scores](aggregate.png)"]
    lines += ["", "## Claims of the paper, checked on these runs", ""]
    lines += _claims(aggregate, suites, sizes)
    lines += _ppd_against_student_distill(groups, suites, envs, sizes)

    lines += ["", "## Per environment", ""]
    for suite in suites:
        for env in envs:
            env_records = [r for r in records if r["suite"] == suite and r["spec"]["env_id"] == env]
            if not env_records:
                continue
            # one env may have several teachers (or budgets) in a suite: name each
            # a corrupted teacher is named with its own score and the one it is normalized by
            teachers = {
                (
                    Path(r["spec"]["teacher"]).name,
                    round(r["teacher_score"], 1),
                    round(r["reference_score"], 1),
                ): None
                for r in env_records
            }
            named = ", ".join(
                f"{own:.1f}"
                + (f" (uncorrupted {ref:.1f})" if own != ref else "")
                + (f" ({name})" if len(teachers) > 1 else "")
                for name, own, ref in teachers
            )
            budgets = " or ".join(f"{b:,}" for b in sorted({int(r["env_steps"]) for r in env_records}))
            lines += [
                f"### {env} ({suite})",
                "",
                f"Teacher{'s' if len(teachers) > 1 else ''} {named}, random policy "
                f"{env_records[0]['random_score']:.1f}, {budgets} env steps per run.",
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
            fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.4), dpi=110, squeeze=False)
            for ax, size in zip(axes[0], sizes):
                for m in methods:
                    grid = _curve_grid(groups.get((suite, env, size, m), []))
                    if grid is None:
                        continue
                    x, mean, std = grid
                    ax.plot(x, mean, label=METHOD_LABELS.get(m, m))
                    ax.fill_between(x, mean - std, mean + std, alpha=0.15)
                ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
                ax.set_title(f"{size} student")
                ax.set_xlabel("env steps")
                ax.grid(alpha=0.3)
            axes[0][0].set_ylabel("normalized return")
            axes[0][-1].legend(fontsize=7, loc="lower right")
            fig.suptitle(f"{env} ({suite})")
            fig.tight_layout()
            name = f"curves-{suite}-{env.replace('/', '-')}.png"
            fig.savefig(out / name)
            plt.close(fig)
            lines += [f"![{env} learning curves]({name})", ""]

    if aggregate:
        fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=110)
        keys = [(s, z) for s in suites for z in sizes]
        width = 0.8 / max(1, len(methods))
        for i, m in enumerate(methods):
            xs, ys, err = [], [], []
            for j, key in enumerate(keys):
                if (*key, m) in aggregate:
                    point, lo, hi = aggregate[(*key, m)]
                    xs.append(j + i * width)
                    ys.append(point)
                    err.append([point - lo, hi - point])
            if xs:
                ax.bar(xs, ys, width, yerr=np.array(err).T, capsize=2, label=METHOD_LABELS.get(m, m))
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))])
        ax.set_xticklabels([f"{s}\n{z}" for s, z in keys], fontsize=8)
        ax.set_ylabel("IQM normalized score (95% CI)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "aggregate.png")
        plt.close(fig)

    if errors:
        lines += ["## Failed runs", ""]
        lines += [f"- {r['id']} (attempt {r.get('attempt', '?')}): {r.get('error')}" for r in errors]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    (out / "aggregate.json").write_text(
        json.dumps({f"{k[0]}|{k[1]}|{k[2]}": v for k, v in aggregate.items()}, indent=2)
    )
    return report


def _claims(
    aggregate: dict[tuple[str, str, str], tuple[float, float, float]], suites: list[str], sizes: list[str]
) -> list[str]:
    """The paper's claims, each marked as holding or not on these numbers (IQM, CIs)."""
    out = []

    def get(suite: str, size: str, m: str) -> tuple[float, float, float] | None:
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


def median_steps_to_90(records: list[dict[str, Any]]) -> float:
    """Median over seeds of the env steps to 90% of the teacher; a run that never got there counts as ∞.

    :param records: finished runs of one method, env and student size (one per seed)
    """
    return float(np.median([np.inf if r["steps_to_90"] is None else r["steps_to_90"] for r in records]))


def _steps(x: float) -> str:
    return "never" if np.isinf(x) else f"{int(x):,}"


def _ppd_against_student_distill(
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]],
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
