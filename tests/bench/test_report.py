"""``bench report`` on made-up records: paired differences, AUC, held-90%, the claims' verdicts."""

from __future__ import annotations

import json

import numpy as np

from ppdistill.bench.report import build_report

# final level (1 = teacher) and how fast each method gets there, per student size
LEVELS = {
    ("ppd", "smaller"): (1.0, 1),
    ("student-distill", "smaller"): (1.0, 3),  # same end, slower: a tie in final, not in AUC
    ("teacher-distill", "smaller"): (0.7, 3),
    ("ppo", "smaller"): (0.2, 5),
    ("ppd", "larger"): (1.0, 1),  # no better than smaller: size cannot be tested
    ("student-distill", "larger"): (1.0, 3),
    ("teacher-distill", "larger"): (0.7, 3),
    ("ppo", "larger"): (0.2, 5),
}


def records(rng, levels=None, uncorrupted_gain=0.0):
    """Made-up finished runs; ``uncorrupted_gain``: how much better the uncorrupted teacher
    (the normalization's reference) is than the corrupted one the students learn from."""
    levels = levels or LEVELS
    out = []
    for env in ("A", "B"):
        for seed in range(5):
            start = 20 * rng.standard_normal(50)  # the episodes, the same for every agent
            teacher, random = 100 + start, start
            reference = teacher + uncorrupted_gain
            for (method, size), (level, delay) in levels.items():
                returns = random + level * 100 + rng.normal(0, 2, 50)
                curve = [
                    {"timesteps": 1000 * k, "mean": float(level * 100 * min(1.0, k / delay))}
                    for k in range(6)
                ]
                out.append(
                    {
                        "id": f"{env}__{method}__{size}__s{seed}", "suite": "s", "label": method,
                        "status": "ok", "spec": {
                            "env_id": env, "method": method, "student": size, "seed": seed, "teacher": "t.zip"
                        },
                        "returns": list(returns), "score": float(returns.mean()),
                        "teacher_returns": list(teacher), "reference_returns": list(reference),
                        "random_returns": list(random), "teacher_score": float(teacher.mean()),
                        "reference_score": float(reference.mean()), "random_score": float(random.mean()),
                        "curve": curve, "env_steps": 5000, "machine": "test", "versions": {},
                    }
                )  # fmt: skip
    return out


def test_report_pairs_methods_and_gives_each_claim_a_verdict(tmp_path):
    (tmp_path / "records.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records(np.random.default_rng(0)))
    )
    report = build_report(tmp_path, reps=300).read_text()
    assert "## Paired differences" in report and "## Mean score over training (AUC)" in report
    row = next(
        line for line in report.splitlines() if line.startswith("| s | smaller | PPD − student-distill")
    )
    final_verdict, auc_verdict = row.split("|")[5].strip(), row.split("|")[7].strip()
    assert final_verdict == "tie" and auc_verdict == "PPD ahead"  # same end, PPD faster
    assert "never (0/5)" in report  # teacher-distill ends at 0.7: never holds 90%
    assert f"Made by `ppdistill bench run benchmarks/suites/s.yaml --out {tmp_path}`" in report  # no half
    # a suite named like a half but without halves (finetune-verify.yaml) keeps its own file
    runs_named = records(np.random.default_rng(0))
    for r in runs_named:
        r["suite"] = "finetune-verify"
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs_named))
    report = build_report(tmp_path, reps=50).read_text()
    assert f"Made by `ppdistill bench run benchmarks/suites/finetune-verify.yaml --out {tmp_path}`" in report
    claims = {(c["claim"], c["verdict"]) for c in json.loads((tmp_path / "claims.json").read_text())}
    assert ("PPD ahead of both baselines (smaller students)", "not shown") in claims  # a tie in final
    assert ("Larger students surpass the teacher", "not testable here") in claims
    assert ("Distillation ahead of PPO from scratch at equal env steps (larger students)", "shown") in claims


def claims_of(tmp_path, runs):
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    build_report(tmp_path, reps=300)
    return {c["claim"]: c for c in json.loads((tmp_path / "claims.json").read_text())}


def test_larger_students_above_the_teacher_and_above_smaller_ones_show_the_claim(tmp_path):
    levels = {**LEVELS, ("ppd", "smaller"): (0.9, 1), ("ppd", "larger"): (1.2, 1)}
    claim = claims_of(tmp_path, records(np.random.default_rng(0), levels))[
        "Larger students surpass the teacher"
    ]
    assert claim["verdict"] == "shown", claim
    levels = {**LEVELS, ("ppd", "smaller"): (0.7, 1), ("ppd", "larger"): (0.9, 1)}  # better, yet below
    claim = claims_of(tmp_path, records(np.random.default_rng(0), levels))[
        "Larger students surpass the teacher"
    ]
    assert claim["verdict"] == "not shown", claim


def test_imperfect_teachers_are_judged_against_the_uncorrupted_one(tmp_path):
    # students learn from a teacher 100 below the uncorrupted one: at its level they score 0.5
    levels = {
        ("ppd", "larger"): (1.3, 1),  # 130 above random: past its corrupted teacher
        ("student-distill", "larger"): (1.0, 1),
        ("teacher-distill", "larger"): (0.9, 1),
        ("ppo", "larger"): (0.2, 5),
    }
    claims = claims_of(tmp_path, records(np.random.default_rng(0), levels, uncorrupted_gain=100.0))
    robust = claims["PPD most robust to imperfect teachers (tested as: ahead of both baselines)"]
    assert robust["verdict"] == "shown", robust
    assert "PPD ahead of both baselines (larger students)" not in claims  # claim 1 is for good teachers
    aggregate = json.loads((tmp_path / "aggregate.json").read_text())
    assert (
        aggregate["s|larger|student-distill"]["final"][0] == np.float64(0.5).item()
        or abs(aggregate["s|larger|student-distill"]["final"][0] - 0.5) < 0.02
    )


def test_a_claim_whose_runs_are_missing_says_so(tmp_path):
    runs = [r for r in records(np.random.default_rng(0)) if r["id"] != "A__ppd__larger__s0"]
    claims = claims_of(tmp_path, runs)
    claim = claims["PPD ahead of both baselines (larger students)"]
    assert claim["verdict"] == "incomplete" and "PPD (larger): 1 of 10" in claim["evidence"]
    assert claims["Larger students surpass the teacher"]["verdict"] == "incomplete"
    ppo = claims["Distillation ahead of PPO from scratch at equal env steps (larger students)"]
    assert ppo["verdict"] == "incomplete"  # not decided without PPD


def test_the_held_median_counts_runs_that_never_get_there(tmp_path):
    runs = records(np.random.default_rng(0))
    never = {("A", 0), ("A", 1), ("A", 2), ("B", 0)}  # A: 2 of 5 runs hold 90%, B: 4 of 5
    for r in runs:
        key = (r["spec"]["env_id"], r["spec"]["seed"])
        if r["label"] == "student-distill" and r["spec"]["student"] == "smaller" and key in never:
            r["curve"][-1]["mean"] = 50.0
    claims_of(tmp_path, runs)
    rows = [line for line in (tmp_path / "report.md").read_text().splitlines()]
    rows = [row for row in rows if row.startswith("| smaller | student-distill |")]
    # the median over all five: never on A (3 never), the reached runs' 3,000 on B
    assert [row.rsplit("|", 2)[1].strip() for row in rows] == ["never (2/5)", "3,000 (4/5)"], rows


def test_a_method_the_suite_never_ran_is_not_a_missing_run(tmp_path):
    runs = [r for r in records(np.random.default_rng(0)) if r["label"] != "teacher-distill"]
    claims = claims_of(tmp_path, runs)
    assert "PPD ahead of both baselines (smaller students)" not in claims  # needs teacher-distill
    ppo = claims["Distillation ahead of PPO from scratch at equal env steps (smaller students)"]
    assert ppo["verdict"] == "shown" and "teacher-distill" not in ppo["evidence"]


def test_a_variant_run_with_one_teacher_only_is_aggregated_over_that_teacher(tmp_path):
    runs = records(np.random.default_rng(0))
    for r in runs:  # env B's teacher-distill runs become a variant that only env B has
        if r["spec"]["env_id"] == "B" and r["label"] == "teacher-distill":
            r["label"] = r["spec"]["method"] = "td-b"
            r["id"] = r["id"].replace("teacher-distill", "td-b")
    claims_of(tmp_path, runs)
    aggregate = json.loads((tmp_path / "aggregate.json").read_text())
    assert abs(aggregate["s|smaller|td-b"]["final"][0] - 0.7) < 0.02  # over B's five seeds
    assert abs(aggregate["s|smaller|teacher-distill"]["final"][0] - 0.7) < 0.02  # over A's
    # missing from one seed of the teacher it ran with: incomplete, not an aggregate over the rest
    cut = [r for r in runs if r["id"] != "B__td-b__larger__s3"]
    claims_of(tmp_path, cut)
    aggregate = json.loads((tmp_path / "aggregate.json").read_text())
    assert "s|larger|td-b" not in aggregate and "s|smaller|td-b" in aggregate
    report = (tmp_path / "report.md").read_text()
    assert any(row.startswith("| s | larger |") and "incomplete" in row for row in report.splitlines())


def test_an_ablation_variant_is_compared_with_its_algorithm_as_shipped_where_the_suite_has_it():
    from ppdistill.bench.report import _pairs

    def rec(label, method):
        return {"label": label, "spec": {"method": method}}

    with_plain = [
        rec("ppd", "ppd"),
        rec("ppd-tau01", "ppd"),
        rec("ppd-tau1", "ppd"),
        rec("sd-tau1", "student-distill"),
    ]
    labels = ["ppd", "ppd-tau01", "ppd-tau1", "sd-tau1"]
    # each PPD variant against PPD itself (not against the first variant); sd-tau1 has no plain run: none
    assert _pairs(with_plain, labels) == [("ppd-tau01", "ppd"), ("ppd-tau1", "ppd")]
    without = [rec("lr3", "ppd"), rec("lr4", "ppd")]
    assert _pairs(without, ["lr3", "lr4"]) == [("lr4", "lr3")]
