"""The fine-tuning summaries the README quotes are what the committed records give."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from ppdistill.bench.execute import read_records

from ..helpers import benchmark_script

ROOT = Path(__file__).resolve().parents[2]
SUMMARIES = sorted((ROOT / "benchmarks" / "results").glob("*/finetune-summary.md"))


def finetune_summary() -> ModuleType:
    return benchmark_script("finetune_summary")


@pytest.mark.parametrize("summary", SUMMARIES, ids=[p.parent.name for p in SUMMARIES])
def test_a_committed_summary_is_regenerated_from_its_records(summary):
    first = summary.read_text().splitlines()[0]
    ppd = first.split("--ppd ")[1].split()[0]  # the label its command named
    results = ROOT / first.split("finetune_summary.py ")[1].split()[0]
    records = read_records(results)
    if " --with " in first:  # comparison runs taken from another folder
        other = ROOT / first.split(" --with ")[1].split()[0]
        labels = first.split("--with-labels ")[1].split()[0].split(",")
        records = finetune_summary().with_comparison(records, other, labels)
    if " --more-seeds " in first:  # written into the folder of the added seeds
        more = ROOT / first.split(" --more-seeds ")[1].split()[0]
        assert more == summary.parent
        records = finetune_summary().with_more_seeds(records, results, more)
    else:
        assert results == summary.parent
    lines = finetune_summary().summarize(records, ppd)
    assert summary.read_text() == f"{first}\n\n" + "\n".join(lines) + "\n"


def test_there_is_a_summary_to_check():
    assert SUMMARIES, "benchmarks/results/*/finetune-summary.md: none committed"


def test_fine_tuned_minus_distilled_compares_the_same_episodes():
    summary = finetune_summary()
    base = {"id": "r", "reference_score": 100.0, "random_score": 0.0, "finetune_start": 10, "score": 90.0}
    curve = [{"timesteps": 10, "mean": 80.0}, {"timesteps": 20, "mean": 70.0}]
    scored = {**base, "curve": curve, "phases": [{"eval_at_end": {"mean": 80.0}, "final": {"mean": 95.0}}]}
    older = {**base, "curve": curve, "phases": [{"eval_at_end": {"mean": 80.0}}]}
    assert summary._scored_on_final(scored) and not summary._scored_on_final(older)
    # on the final episodes: 0.90 − 0.95, the periodic rows not read
    assert summary._fine_tuned_minus_distilled(scored, on_final=True) == pytest.approx(-0.05)
    # on the periodic ones: the last (0.70) − the one at the switch (0.80), not the final score
    assert summary._fine_tuned_minus_distilled(scored, on_final=False) == pytest.approx(-0.10)
    assert summary._fine_tuned_minus_distilled(older, on_final=False) == pytest.approx(-0.10)


def test_a_row_mixing_records_with_and_without_the_final_comparison_uses_the_periodic_one():
    summary = finetune_summary()
    records = read_records(ROOT / "benchmarks" / "results" / "finetune-verify-paired")
    assert all(summary._scored_on_final(r) for r in records)
    alone = "\n".join(summary.summarize(records, "ppd-const"))
    assert "periodic evaluation" not in alone  # every run scored its distilled student on the final episodes
    mixed = [dict(r) for r in records]
    first = next(i for i, r in enumerate(mixed) if r["spec"]["env_id"] == "LunarLander-v3")
    mixed[first] = {
        **mixed[first],
        "phases": [{k: v for k, v in mixed[first]["phases"][0].items() if k != "final"}],
    }
    text = "\n".join(summary.summarize(mixed, "ppd-const"))
    lunar = text.split("### LunarLander-v3")[1].split("###")[0]
    assert "final − distilled of ppd-ft: the last periodic evaluation" in lunar
    assert "periodic evaluation" not in text.split("### HalfCheetah-v5")[1].split("###")[0]


def test_a_path_that_kept_the_better_student_says_how_often_it_kept_the_distilled_one():
    summary = finetune_summary()
    records = [dict(r) for r in read_records(ROOT / "benchmarks" / "results" / "finetune-verify-paired")]
    lunar = [i for i, r in enumerate(records) if r["spec"]["env_id"] == "LunarLander-v3"]
    for n, i in enumerate(lunar):
        phases = [dict(p) for p in records[i]["phases"]]
        phases[1]["keep_better"] = {"episodes": 20, "kept": "distilled" if n < 2 else "fine-tuned"}
        records[i] = {**records[i], "phases": phases}
    text = "\n".join(summary.summarize(records, "ppd-const"))
    section = text.split("### LunarLander-v3")[1].split("###")[0]
    assert (
        f"ppd-ft kept the distilled student in 2 of {len(lunar)} runs (20 validation episodes each)"
        in section
    )
    assert "kept the distilled" not in text.split("### HalfCheetah-v5")[1].split("###")[0]


def test_comparison_runs_come_from_another_folder_only_for_labels_this_one_lacks():
    summary = finetune_summary()
    paired = read_records(ROOT / "benchmarks" / "results" / "finetune-verify-paired")
    verify = ROOT / "benchmarks" / "results" / "finetune-verify"
    merged = summary.with_comparison(paired, verify, ["ppd-const"])
    added = merged[len(paired) :]
    assert added and {r["label"] for r in added} == {"ppd-const"}
    # the MinAtar teacher is a project file, recorded under the two worktrees' paths: one teacher
    text = "\n".join(summary.summarize(merged, "ppd-const"))
    rows = [line for line in text.splitlines() if line.startswith("| ppd-ft |")]
    verdicts = ("(ppd-const ahead) |", "(tie) |", "(ppd-ft ahead) |")
    assert len(rows) == 3 and all(row.endswith(verdicts) for row in rows), rows
    with pytest.raises(SystemExit, match="already in the results"):
        summary.with_comparison(paired, verify, ["ppd-ft"])
    # a comparison run without its pair here (one seed fewer) is refused, not added unseen
    fewer = [r for r in paired if int(r["spec"]["seed"]) != 104]
    with pytest.raises(SystemExit, match="has no run here of the same env, teacher and seed"):
        summary.with_comparison(fewer, verify, ["ppd-const"])
    with pytest.raises(SystemExit, match="has no runs labelled nope"):
        summary.with_comparison(paired, verify, ["nope"])


def test_more_seeds_of_the_same_paths_are_summarized_with_these_and_anything_else_refused(tmp_path):
    summary = finetune_summary()
    blind = ROOT / "benchmarks" / "results" / "finetune-blind"
    records = read_records(blind)
    hopper = [r for r in records if r["id"].startswith("Hopper-v5__ppd-") and r["label"].endswith("-imp")]
    references = (blind / "references.json").read_text()

    def folder(name, runs, refs=references):
        path = tmp_path / name
        path.mkdir()
        (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
        (path / "references.json").write_text(refs)
        return path

    def moved(r, **spec):  # the same run at seed + 5, its teacher under another worktree's path
        seed = int(r["spec"]["seed"]) + 5
        teacher = "/elsewhere/" + "/".join(Path(r["spec"]["teacher"]).parts[-2:])
        return {**r, "id": r["id"].replace(f"s{seed - 5}", f"s{seed}"),
                "spec": {**r["spec"], "seed": seed, "teacher": teacher, **spec}}  # fmt: skip

    more = folder("more", [moved(r) for r in hopper])
    merged = summary.with_more_seeds(records, blind, more)
    assert {r["label"] for r in merged} == {"ppd-ft-keep-imp", "ppd-const-imp"}  # only the paths extended
    assert len(merged) == 2 * len(hopper) and len({r["spec"]["teacher"] for r in merged}) == 1
    text = "\n".join(summary.summarize(merged, "ppd-const"))
    assert "### corrupted teacher" in text and "Acrobot" not in text
    with pytest.raises(SystemExit, match="is here already"):
        summary.with_more_seeds(records, blind, folder("same", hopper))
    with pytest.raises(SystemExit, match="differs from the runs here in timesteps"):
        summary.with_more_seeds(records, blind, folder("longer", [moved(r, timesteps=1) for r in hopper]))
    other_sigma = references.replace("0.06276903785123457", "0.07")
    with pytest.raises(SystemExit, match="is not one of the teachers here"):
        summary.with_more_seeds(records, blind, folder("sigma", [moved(r) for r in hopper], other_sigma))
    with pytest.raises(SystemExit, match="did not finish"):
        failed = [moved(r) for r in hopper[:-1]] + [{**moved(hopper[-1]), "status": "error"}]
        summary.with_more_seeds(records, blind, folder("failed", failed))
    with pytest.raises(SystemExit, match="is here already"):  # one seed twice there
        summary.with_more_seeds(records, blind, folder("twice", [moved(r) for r in hopper + hopper[:1]]))
    sac = [{**moved(r), "spec": {**moved(r)["spec"], "teacher": "/x/sac/" + Path(r["spec"]["teacher"]).name}}
           for r in hopper]  # fmt: skip
    with pytest.raises(SystemExit, match="is not one of the teachers here"):
        summary.with_more_seeds(records, blind, folder("sac", sac))
    relabelled = [{**r, "label": "ppd-other"} for r in hopper[:1]]
    with pytest.raises(SystemExit, match="no run here of ppd-other on Hopper-v5"):
        summary.with_more_seeds(records, blind, folder("label", [moved(r) for r in relabelled]))
