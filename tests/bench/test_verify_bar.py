"""benchmarks/verify_bar.py: drops replaced entries, reports the rest, checks issue 17's bar."""

from __future__ import annotations

import json

import numpy as np

from ppdistill.bench.report import build_report
from ppdistill.bench.stats import task_of

from ..helpers import benchmark_script
from .test_report import records


def verify_bar():
    return benchmark_script("verify_bar")


def test_a_dropped_entry_leaves_the_report_and_the_bar_is_checked_on_the_rest(tmp_path, capsys):
    rng = np.random.default_rng(0)
    levels = {("ppd", "smaller"): (1.0, 1), ("student-distill", "smaller"): (1.0, 3)}
    runs = records(rng, levels)
    # a failed run (no returns) is left out of the per-task differences as the report leaves it out
    failed = {**next(r for r in runs if task_of(r) == "B"), "status": "error", "error": "boom"}
    for key in ("returns", "score", "reference_returns", "reference_score"):
        failed.pop(key, None)
    runs.append(failed)
    src = tmp_path / "src"
    src.mkdir()
    (src / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    before = (src / "records.jsonl").read_text()
    assert verify_bar().main([str(src), str(tmp_path / "out"), "--drop", "A"]) == 0
    printed = capsys.readouterr().out
    assert "IQM >= 0.9: True; lower end >= 0.8: True" in printed
    assert "behind or undefined on 0 of 1 tasks" in printed and "bar met: yes" in printed
    report = (tmp_path / "out" / "report.md").read_text()
    assert "### B " in report and "### A " not in report
    made_by = f"Made by `python benchmarks/verify_bar.py {src} {tmp_path / 'out'} --drop 'A'`"
    assert made_by in report
    build_report(tmp_path / "out", reps=50)  # a later `bench report` of the folder says it too
    assert made_by in (tmp_path / "out" / "report.md").read_text()
    assert (src / "records.jsonl").read_text() == before  # the source is never changed
    # the finished result is not overwritten, and a task the folder lacks is named
    assert verify_bar().main([str(src), str(tmp_path / "out"), "--drop", "A"]) == 2
    assert "exists; remove it" in capsys.readouterr().err
    assert verify_bar().main([str(src), str(tmp_path / "new"), "--drop", "C"]) == 2
    assert "has no task 'C'; its tasks: A, B" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_a_student_behind_on_one_task_and_a_low_interval_fail_the_bar(tmp_path, capsys):
    levels = {("ppd", "smaller"): (0.5, 1), ("student-distill", "smaller"): (1.0, 1)}
    src = tmp_path / "src"
    src.mkdir()
    runs = records(np.random.default_rng(1), levels)
    (src / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    assert verify_bar().main([str(src), str(tmp_path / "out"), "--drop", "A"]) == 0
    printed = capsys.readouterr().out
    assert "IQM >= 0.9: False; lower end >= 0.8: False" in printed
    assert "behind or undefined on 1 of 1 tasks (B)" in printed and "bar met: no" in printed
    # without a student-distill run there is no bar to check: one line, nothing written
    only_ppd = [r for r in runs if r["label"] == "ppd"]
    (src / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in only_ppd))
    assert verify_bar().main([str(src), str(tmp_path / "new")]) == 2
    assert "needs one suite and student size with ppd and student-distill" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
