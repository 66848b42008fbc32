"""benchmarks/paired_difference.py: the report's paired statistics across student sizes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ..helpers import benchmark_script
from .test_report import records


def script():
    return benchmark_script("paired_difference")


def test_a_larger_student_ahead_and_equal_ones_tied():
    rng = np.random.default_rng(0)
    runs = records(
        rng, {("ppd", "same"): (0.9, 1), ("ppd", "smaller"): (0.7, 1), ("ppd", "larger"): (0.7, 1)}
    )
    out = script().differences(runs, "student", "same", "smaller", reps=300)
    point, low, high = out["final"]
    assert point == pytest.approx(0.2, abs=0.02) and low > 0  # same ahead
    _, low, high = script().differences(runs, "student", "larger", "smaller", reps=300)["final"]
    assert low < 0 < high  # a tie


def test_several_methods_need_a_label_and_missing_groups_are_named(tmp_path, capsys, monkeypatch):
    runs = records(
        np.random.default_rng(1), {("ppd", "same"): (0.9, 1), ("student-distill", "smaller"): (0.7, 1)}
    )
    with pytest.raises(SystemExit, match="choose one with --label"):
        script().differences(runs, "student", "same", "smaller")
    with pytest.raises(
        SystemExit, match="no \\(env, teacher, seed\\) has runs of both student same and smaller"
    ):
        script().differences(runs, "student", "same", "smaller", label="ppd")
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    monkeypatch.setattr(
        "sys.argv", ["x", str(tmp_path), "--a", "same", "--b", "same", "--label", "ppd", "--reps", "50"]
    )
    assert script().main() == 0
    assert "student same − same, final: +0.00" in capsys.readouterr().out


def test_runs_of_another_folder_join_and_a_group_is_named_by_its_start(tmp_path, capsys, monkeypatch):
    both = records(np.random.default_rng(2), {("ppd", "smaller"): (0.9, 1), ("ppd", "same"): (0.6, 1)})
    runs = [r for r in both if r["spec"]["student"] == "smaller"]
    earlier = [r for r in both if r["spec"]["student"] == "same"]  # the same units, other settings
    for record in runs:
        record["defaults_sha256"] = "0acd9809" + "1" * 56
    for record in earlier:
        record["defaults_sha256"] = "228508cb" + "2" * 56
        record["spec"]["student"] = "smaller"
        record["id"] = record["id"].replace("same", "smaller")
        record["spec"]["teacher"] = "/another/worktree/t.zip"  # one teacher file, another checkout
    for folder, rows in (("new", runs), ("old", earlier)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["x", str(tmp_path / "new"), "--with", str(tmp_path / "old"), "--by", "defaults_sha256",
            "--a", "0acd9809", "--b", "228508cb", "--reps", "200"]  # fmt: skip
    monkeypatch.setattr("sys.argv", argv)
    assert script().main() == 0
    out = capsys.readouterr().out
    assert "defaults_sha256 0acd9809 − 228508cb, final: +0.3" in out and "(0acd9809 ahead)" in out
    monkeypatch.setattr("sys.argv", argv[:2] + argv[4:])  # without the other folder: nothing pairs
    with pytest.raises(SystemExit, match="no \\(env, teacher, seed\\) has runs of both"):
        script().main()


def test_two_methods_pair_by_their_labels():
    runs = records(
        np.random.default_rng(4), {("ppd", "smaller"): (0.9, 1), ("student-distill", "smaller"): (0.5, 1)}
    )
    point, low, _ = script().differences(runs, "label", "ppd", "student-distill", reps=200)["final"]
    assert point == pytest.approx(0.4, abs=0.03) and low > 0


def test_only_the_seeds_both_groups_ran_are_paired():
    runs = records(
        np.random.default_rng(5), {("ppd", "smaller"): (0.9, 1), ("student-distill", "smaller"): (0.5, 1)}
    )
    fewer = [r for r in runs if r["label"] == "ppd" or r["spec"]["seed"] < 3]  # the baseline on 3 seeds
    point, low, _ = script().differences(fewer, "label", "ppd", "student-distill", reps=200)["final"]
    assert point == pytest.approx(0.4, abs=0.03) and low > 0


def test_a_label_that_begins_another_takes_only_its_own_runs():
    runs = records(
        np.random.default_rng(6),
        {("both", "smaller"): (0.9, 1), ("both-imp", "smaller"): (0.1, 1), ("zoo", "smaller"): (0.9, 1)},
    )
    point, low, high = script().differences(runs, "label", "both", "zoo", reps=200)["final"]
    assert abs(point) < 0.03 and low < 0 < high  # both-imp's runs are not both's


def test_a_task_keeps_one_entrys_runs(tmp_path, capsys, monkeypatch):
    runs = records(np.random.default_rng(6), {("ppd", "same"): (0.9, 1), ("ppd", "smaller"): (0.7, 1)})
    for r in runs:  # env B: the two sizes level, so only A's runs show a difference
        if r["spec"]["env_id"] == "B" and r["spec"]["student"] == "same":
            r["returns"] = next(o["returns"] for o in runs if o["id"] == r["id"].replace("same", "smaller"))
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    argv = ["x", str(tmp_path), "--a", "same", "--b", "smaller", "--reps", "200"]
    for task, expected in (("A", "final: +0.2"), ("B", "final: +0.00"), (None, "final: +0.1")):
        monkeypatch.setattr("sys.argv", argv + (["--task", task] if task else []))
        assert script().main() == 0
        assert expected in capsys.readouterr().out
    monkeypatch.setattr("sys.argv", [*argv, "--task", "C"])
    with pytest.raises(SystemExit, match="no task 'C' in these runs; their tasks: A, B"):
        script().main()
