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


def records(rng):
    out = []
    for env in ("A", "B"):
        for seed in range(5):
            start = 20 * rng.standard_normal(50)  # the episodes, the same for every agent
            teacher, random = 100 + start, start
            for (method, size), (level, delay) in LEVELS.items():
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
                        "teacher_returns": list(teacher), "reference_returns": list(teacher),
                        "random_returns": list(random), "teacher_score": float(teacher.mean()),
                        "reference_score": float(teacher.mean()), "random_score": float(random.mean()),
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
    claims = {(c["claim"], c["verdict"]) for c in json.loads((tmp_path / "claims.json").read_text())}
    assert ("PPD ahead of both baselines (smaller students)", "not shown") in claims  # a tie in final
    assert ("Larger students surpass the teacher", "not testable here") in claims
    assert ("Distillation ahead of PPO from scratch at equal env steps (larger students)", "shown") in claims
