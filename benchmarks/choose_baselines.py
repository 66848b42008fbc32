"""Apply ablation-baselines' selection rule (fixed in the suite file before it ran) to its records.

    python benchmarks/choose_baselines.py benchmarks/results/ablation-baselines

For student-distill (``sd*`` variants) and teacher-distill (``td*``):

1. ``log_std_from_teacher``: the better of ``X`` (false) and ``X-logstd`` (true) by the mean
   final normalized score over the MuJoCo entries;
2. learning rate and minibatch: the best of ``X-logstd`` (1e-3, 64), ``X-lr3e-4`` and
   ``X-b128`` by the mean over all entries (on discrete actions the log-std start does not
   apply, and ``X`` stands for ``X-logstd``, which was not run there).

Each entry counts once (the mean over its seeds). Prints a Markdown table of every variant
on every entry and the choice; writes it to ``choice.md`` in the folder.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

MUJOCO = ("HalfCheetah-v5", "Hopper-v5")
SETTINGS = {"-logstd": (1.0e-3, 64), "-lr3e-4": (3.0e-4, 64), "-b128": (1.0e-3, 128)}


DECISION = """\
## What distill.yml took

- teacher-distill: `log_std_from_teacher: true` (the rule's choice; on MuJoCo the final score
  is level, 0.883 against 0.882, and the mean score over training higher, 0.68 against 0.60),
  learning rate 1e-3 and minibatch 64 as before.
- student-distill: **not** the rule's learning rate. The rule picked 3e-4 on a final-score
  difference of 0.009 (0.883 against 0.874), inside the noise of three seeds, while the mean
  score over training is lower at 3e-4 on three of four entries (0.61 against 0.69 overall).
  The reporting suites cut budgets so that speed shows; taking the slower setting would
  handicap the baseline PPD is measured against, so student-distill keeps lr 1e-3 and its
  log-std start (not from the teacher, as the rule also says).
- minibatch: untested (see the b128 lines above); 64 kept for both.
"""


def main(folder: Path) -> str:
    lines_read = (folder / "records.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines_read if line.strip()]
    records = [r for r in records if r.get("status") == "ok"]
    finals: dict[tuple[str, str], list[float]] = defaultdict(list)  # (entry, label) -> per seed
    aucs: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in records:
        corrupted = r["teacher_score"] != r["reference_score"]
        entry = r["spec"]["env_id"] + (" (corrupted teacher)" if corrupted else "")
        finals[(entry, r["label"])].append(float(r["normalized_score"]))
        span = r["reference_score"] - r["random_score"]
        aucs[(entry, r["label"])].append(
            float(np.mean([(p["mean"] - r["random_score"]) / span for p in r["curve"]]))
        )
    entries = sorted({e for e, _ in finals})
    labels = sorted({label for _, label in finals})

    def mean(entry: str, label: str, scores: dict[tuple[str, str], list[float]] = finals) -> float:
        values = scores.get((entry, label))
        if values is None and label.endswith("-logstd"):  # not run on discrete actions: the same as X
            values = scores.get((entry, label[: -len("-logstd")]))
        return float(np.mean(values)) if values else float("nan")

    lines: list[str] = []
    for title, scores in (
        ("final score", finals),
        ("mean score over training (AUC, not used by the rule)", aucs),
    ):
        lines += [f"### {title}", ""]
        lines += ["| variant | " + " | ".join(entries) + " | mean |", "|---|" + "---|" * (len(entries) + 1)]
        for label in labels:
            row = [mean(e, label, scores) for e in entries]
            lines.append(
                f"| {label} | " + " | ".join(f"{v:.3f}" for v in row) + f" | {np.nanmean(row):.3f} |"
            )
        lines.append("")
    lines += ["### The rule's choice", ""]
    for base, method in (("sd", "student-distill"), ("td", "teacher-distill")):
        mujoco = [e for e in entries if e.split(" ")[0] in MUJOCO]
        off = float(np.mean([mean(e, base) for e in mujoco]))
        on = float(np.mean([mean(e, base + "-logstd") for e in mujoco]))
        logstd = on > off
        overall = {suffix: float(np.mean([mean(e, base + suffix) for e in entries])) for suffix in SETTINGS}
        best = max(overall, key=lambda k: overall[k])
        lr, batch = SETTINGS[best]
        lines.append(
            f"- {method}: log_std_from_teacher {str(logstd).lower()} (MuJoCo mean {on:.3f} with, {off:.3f} "
            f"without); learning rate {lr:g}, minibatch {batch} (mean over all entries: "
            + ", ".join(f"{base}{k} {v:.3f}" for k, v in overall.items())
            + ")"
        )
        if all(mean(e, base + "-b128") == mean(e, base + "-logstd") for e in entries):
            lines.append(
                f"- {base}-b128 scores as {base}-logstd does on every entry: with rollouts of "
                "n_steps × n_envs = 8 × 8 = 64 steps a 128 minibatch is the whole rollout, as 64 "
                "is, so the minibatch was not tested"
            )
    text = "\n".join(lines) + "\n\n" + DECISION
    (folder / "choice.md").write_text(
        "# ablation-baselines: the choice\n\nMade by `python benchmarks/choose_baselines.py "
        f"{folder}` (the rule is in its docstring and the suite file). Normalized scores per entry "
        "(mean over seeds 0-2).\n\n" + text
    )
    return text


if __name__ == "__main__":
    print(main(Path(sys.argv[1])))
