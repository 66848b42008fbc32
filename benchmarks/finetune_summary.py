"""Issue 19's criteria for a fine-tuning suite's records (finetune-choose, finetune-verify).

For each env, path (a method label) and teacher (good, or corrupted: labels ending ``-imp``):

- final: IQM of the normalized final score (1 = the uncorrupted teacher) with its 95% interval
  (the harness's paired bootstrap, :mod:`ppdistill.bench.bootstrap`);
- lowest after the switch: the lowest, over the evaluations after the switch to fine-tuning,
  of the IQM over seeds of the normalized periodic evaluation (for PPD paths without a switch,
  the same env step as the pipelines': the comparison at equal env steps);
- vs distilled (pipelines only): mean over seeds of the fine-tuned student's score − the
  distilled student's, on the same episodes, with a t interval over seeds: the final
  evaluation's episodes where the record scored the distilled student on them (runs made since
  that was added), else the periodic evaluation's (its last one − the one at the switch: the
  same, fewer episodes, said under the table);
- vs teacher (corrupted teachers): the paired difference final − the corrupted teacher's
  score on the same episodes;
- vs constant PPD: the paired difference with the constant-λ PPD label.

A path run with ``finetune_keep_better`` gets a line saying in how many runs it kept the
distilled student; its final scores are those of the student each run kept.

Usage::

    python benchmarks/finetune_summary.py benchmarks/results/finetune-choose --ppd ppd --write
    python benchmarks/finetune_summary.py benchmarks/results/finetune-keep --ppd ppd-const \
        --with benchmarks/results/finetune-verify --with-labels ppd-const,ppd-const-imp --write
    python benchmarks/finetune_summary.py benchmarks/results/finetune-blind --ppd ppd-const \
        --more-seeds benchmarks/results/finetune-blind-hopper --write
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ppdistill.bench.bootstrap import Bootstrap, iqm, t_quantile, units_from, verdict
from ppdistill.bench.execute import differing_settings, read_records
from ppdistill.bench.stats import normalized, task_of


def _imperfect(label: str) -> bool:
    return label.endswith("-imp")


def _fmt(interval: tuple[float, float, float]) -> str:
    point, low, high = interval
    if not math.isfinite(low):
        return f"{point:+.2f} (no interval)"
    return f"{point:+.2f} [{low:+.2f}, {high:+.2f}]"


def _seed_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean over runs with Student's t interval (runs independent: one env and teacher per kind
    in the fine-tuning suites; with several, this interval would be too narrow)."""
    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return mean, float("nan"), float("nan")
    half = t_quantile(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return mean, mean - half, mean + half


def _scored_on_final(r: dict[str, Any]) -> bool:
    """Whether the record scored its distilled student on the final evaluation's episodes."""
    return "final" in r["phases"][0]


def _fine_tuned_minus_distilled(r: dict[str, Any], on_final: bool) -> float:
    """The fine-tuned student's normalized score − the distilled student's, on the same episodes:
    the final evaluation's (``on_final``; the record must have them), else the periodic
    evaluation's (its last one − the one at the switch)."""

    def norm(value: float) -> float:
        return normalized(value, r["reference_score"], r["random_score"])

    distill = r["phases"][0]
    if on_final:
        return norm(r["score"]) - norm(distill["final"]["mean"])
    last = r["curve"][-1]
    assert int(last["timesteps"]) >= int(r["finetune_start"]), r["id"]
    return norm(last["mean"]) - norm(distill["eval_at_end"]["mean"])


def summarize(records: list[dict[str, Any]], ppd_label: str) -> list[str]:
    """Markdown lines: one table per env and teacher kind (good, corrupted)."""
    by_kind: dict[tuple[str, bool], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("status") == "ok":
            by_kind[(task_of(r), _imperfect(r["label"]))].append(r)
    lines: list[str] = []
    several = len({env for env, _ in by_kind}) > 1
    for (env, imperfect), runs in sorted(by_kind.items()):
        # PPD paths without a switch are read from the pipelines' switch: at equal env steps
        common_switch = min((int(r["finetune_start"]) for r in runs if r.get("finetune_start")), default=None)
        units = units_from(runs, lambda r: r["label"])
        if imperfect:
            # the corrupted teacher, on the same episodes, as one more "method" of each unit
            returns = {
                (task_of(r), str(r["spec"]["teacher"]), int(r["spec"]["seed"])): r["teacher_returns"]
                for r in runs
            }
            for u in units:
                u.final["teacher"] = np.asarray(returns[(u.env, u.teacher, u.seed)], float)
        labels = sorted({r["label"] for r in runs})
        everything = Bootstrap(units)  # one set of replicates: differences are paired throughout

        def boot(*names: str, everything: Bootstrap = everything) -> Bootstrap:
            restricted = everything.restricted(*names)
            if restricted is None:
                raise SystemExit(f"{' and '.join(names)} miss runs of a teacher they ran with: incomplete")
            return restricted

        ppd = f"{ppd_label}-imp" if imperfect else ppd_label
        kind = "corrupted teacher" if imperfect else "good teacher"
        kind = f"{env}, {kind}" if several else kind  # one env: the headings of finetune-choose
        header = "| path | final IQM | lowest IQM after the switch | final − distilled | "
        header += "final − teacher | " if imperfect else ""
        header += f"final − {ppd} |"
        lines += [f"### {kind}", "", header, "|" + "---|" * (header.count("|") - 1)]
        if imperfect:
            shown = _fmt(boot("teacher").iqm("teacher")).lstrip("+")
            lines.insert(
                -2, f"The corrupted teacher scores {shown} (IQM over seeds, on the final episodes).\n"
            )
        periodic: list[str] = []
        kept: list[str] = []
        for label in labels:
            mine = [r for r in runs if r["label"] == label]
            lowest = "-"
            if common_switch is not None:
                steps: dict[int, list[float]] = defaultdict(list)
                for r in mine:
                    switch = int(r.get("finetune_start") or common_switch)
                    for row in r["curve"]:
                        if row["timesteps"] > switch:
                            steps[int(row["timesteps"])].append(
                                normalized(row["mean"], r["reference_score"], r["random_score"])
                            )
                if steps:
                    lowest = f"{min(iqm(v) for v in steps.values()):.2f}"
            pipelines = [r for r in mine if r.get("phases")]
            choices = [p["keep_better"] for r in pipelines for p in r["phases"][1:] if "keep_better" in p]
            if choices:
                back = sum(c["kept"] == "distilled" for c in choices)
                kept.append(
                    f"{label} kept the distilled student in {back} of {len(choices)} runs "
                    f"({choices[0]['episodes']} validation episodes each)"
                )
            # one kind of comparison per row: the final episodes only if every run has them
            on_final = all(_scored_on_final(r) for r in pipelines)
            drops = [_fine_tuned_minus_distilled(r, on_final) for r in pipelines]
            if pipelines and not on_final:
                periodic.append(label)
            vs_distilled = _fmt(_seed_interval(drops)) if drops else "-"
            cells = [label, _fmt(boot(label).iqm(label)).lstrip("+"), lowest, vs_distilled]
            if imperfect:
                d = boot(label, "teacher").difference(label, "teacher")
                cells.append(f"{_fmt(d)} ({verdict(d, label, 'teacher')})")
            if label != ppd and ppd in labels:
                d = boot(label, ppd).difference(label, ppd)
                cells.append(f"{_fmt(d)} ({verdict(d, label, ppd)})")
            else:
                cells.append("-")
            lines.append("| " + " | ".join(cells) + " |")
        if kept:  # finetune_keep_better: final scores are of the student each run kept
            lines += ["", "; ".join(kept) + "; its final scores are those of the student it kept."]
        if periodic:
            episodes = int(runs[0]["spec"]["eval_episodes"])
            lines += [
                "",
                f"final − distilled of {', '.join(periodic)}: the last periodic evaluation − the one at "
                f"the switch, on the same {episodes} episodes (for these, not every run scored the distilled "
                "student on the final evaluation's episodes).",
            ]
        lines.append("")
    return lines


def with_comparison(records: list[dict[str, Any]], other: Path, labels: list[str]) -> list[dict[str, Any]]:
    """``records`` and, from another results folder of the same tasks, teachers and seeds, the
    runs of ``labels`` (the constant-λ PPD a later suite did not run again): paired by
    (env, teacher, seed) as the harness pairs, on the same seeded episodes.

    :param records: this folder's records
    :param other: the folder to take the comparison runs from
    :param labels: the labels to take (refused if this folder has them already)
    """
    clash = sorted({r["label"] for r in records} & set(labels))
    if clash:
        raise SystemExit(f"{', '.join(clash)}: already in the results; --with adds labels it lacks")
    taken = [r for r in read_records(other) if r.get("label") in labels]
    missing = sorted(set(labels) - {r["label"] for r in taken})
    if missing:
        raise SystemExit(f"{other} has no runs labelled {', '.join(missing)}")
    # a teacher file is recorded by its absolute path, which is under the worktree a suite ran
    # from (and a corrupted teacher under its suite's folder): a file of the same name whose
    # returns on the same seed's final episodes are ours, episode for episode, is our teacher
    ours = {
        (r["spec"]["env_id"], Path(r["spec"]["teacher"]).name, int(r["spec"]["seed"])): r for r in records
    }
    for r in taken:
        mine = ours.get((r["spec"]["env_id"], Path(r["spec"]["teacher"]).name, int(r["spec"]["seed"])))
        if mine is None or mine.get("teacher_returns") != r.get("teacher_returns"):
            # an unpaired run would enter its label's own row unseen
            raise SystemExit(
                f"{other}: run {r['id']} has no run here of the same env, teacher and seed "
                "(its teacher's returns on the final episodes differ, or no such run)"
            )
        r["spec"] = {**r["spec"], "teacher": mine["spec"]["teacher"]}
    return records + taken


def with_more_seeds(records: list[dict[str, Any]], here: Path, other: Path) -> list[dict[str, Any]]:
    """The runs of ``other`` (the same suite's paths run again at other seeds) with this folder's
    runs of the same task and label: the summary of the paths extended, at all their seeds.

    Refused, in one line, unless each run there finished and has runs here of its task and label
    with the same settings (the spec but for seed and teacher path), a teacher here of the same
    name (its folder and file; for a corrupted one, made from the same teacher with the same σ
    by both folders' references), and a seed neither here nor twice there.

    :param records: this folder's records
    :param here: this folder (its references name the σ of a corrupted teacher)
    :param other: the folder of the added seeds
    """
    done = [r for r in records if r.get("status") == "ok"]
    templates = {(task_of(r), r["label"]): r for r in done}
    seeds_here = {(task_of(r), r["label"], int(r["spec"]["seed"])) for r in done}

    def named(teacher: str) -> str:  # zoo folders share names across algorithms: ppo/Hopper-v3_1
        return "/".join(Path(teacher).parts[-2:])

    def origins(folder: Path) -> dict[str, Any]:
        """Per teacher file (a corrupted one's), what it was made from and with which σ."""
        path = folder / "references.json"
        items = json.loads(path.read_text()).values() if path.exists() else []
        return {
            Path(str(item["teacher"])).name: (named(str(item.get("corrupted_from") or "")), item.get("sigma"))
            for item in items
        }

    teachers = {(task_of(r), named(r["spec"]["teacher"])): r["spec"]["teacher"] for r in done}
    origin_here, origin_there = origins(here), origins(other)
    added = []
    for r in read_records(other):
        task, label, seed = task_of(r), r.get("label"), int(r["spec"]["seed"])
        if r.get("status") != "ok":  # a seed that silently went missing would narrow the interval
            raise SystemExit(f"{other}: run {r['id']} did not finish ({r.get('status')}); run it again first")
        mine = templates.get((task, label))
        if mine is None:
            raise SystemExit(f"{other}: run {r['id']}: no run here of {label} on {task}")
        if (task, label, seed) in seeds_here:
            raise SystemExit(f"{other}: run {r['id']}: seed {seed} of {label} on {task} is here already")
        seeds_here.add((task, label, seed))  # and not twice there
        teacher = teachers.get((task, named(r["spec"]["teacher"])))
        name = Path(r["spec"]["teacher"]).name
        if teacher is None or origin_there.get(name) != origin_here.get(name):
            raise SystemExit(f"{other}: run {r['id']}: its teacher {name} is not one of the teachers here")
        differ = differing_settings(r["spec"], mine["spec"], ignore=("seed", "teacher"))
        if differ:
            raise SystemExit(f"{other}: run {r['id']} differs from the runs here in {', '.join(differ)}")
        added.append({**r, "spec": {**r["spec"], "teacher": teacher}})
    if not added:
        raise SystemExit(f"{other} has no finished runs")
    extended = {(task_of(r), r["label"]) for r in added}
    return [r for r in records if (task_of(r), r["label"]) in extended] + added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a fine-tuning suite's results folder")
    parser.add_argument("--ppd", default="ppd", help="the constant-λ PPD label (good teacher)")
    parser.add_argument(
        "--with",
        dest="other",
        type=Path,
        default=None,
        help="take the --with-labels runs from this folder too",
    )
    parser.add_argument("--with-labels", default="", help="comma list of labels to take from --with")
    parser.add_argument(
        "--more-seeds",
        type=Path,
        default=None,
        help="the same paths run at other seeds in this folder: summarize the paths it has, at all seeds "
        "(--write writes there)",
    )
    parser.add_argument("--write", action="store_true", help="also write RESULTS/finetune-summary.md")
    args = parser.parse_args()
    records = read_records(args.results)
    extra = ""
    if args.other is not None:
        records = with_comparison(records, args.other, [x for x in args.with_labels.split(",") if x])
        extra = f" --with {args.other} --with-labels {args.with_labels}"
    written = args.results
    if args.more_seeds is not None:
        records = with_more_seeds(records, args.results, args.more_seeds)
        extra += f" --more-seeds {args.more_seeds}"
        written = args.more_seeds  # the folder's own summary stays that of its seeds
    lines = summarize(records, args.ppd)
    text = "\n".join(lines)
    print(text)
    if args.write:
        command = f"python benchmarks/finetune_summary.py {args.results} --ppd {args.ppd}{extra} --write"
        (written / "finetune-summary.md").write_text(f"<!-- generated by: {command} -->\n\n{text}\n")


if __name__ == "__main__":
    main()
