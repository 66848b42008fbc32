"""The fine-tuning summaries the README quotes are what the committed records give."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from ppdistill.bench.execute import read_records

ROOT = Path(__file__).resolve().parents[2]
SUMMARIES = sorted((ROOT / "benchmarks" / "results").glob("*/finetune-summary.md"))


def finetune_summary() -> ModuleType:
    path = ROOT / "benchmarks" / "finetune_summary.py"
    spec = importlib.util.spec_from_file_location("finetune_summary", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("summary", SUMMARIES, ids=[p.parent.name for p in SUMMARIES])
def test_a_committed_summary_is_regenerated_from_its_records(summary):
    first = summary.read_text().splitlines()[0]
    ppd = first.split("--ppd ")[1].split()[0]  # the label its command named
    lines = finetune_summary().summarize(read_records(summary.parent), ppd)
    assert summary.read_text() == f"{first}\n\n" + "\n".join(lines) + "\n"


def test_there_is_a_summary_to_check():
    assert SUMMARIES, "benchmarks/results/*/finetune-summary.md: none committed"


def test_fine_tuned_minus_distilled_compares_the_same_episodes():
    compare = finetune_summary()._fine_tuned_minus_distilled
    base = {"id": "r", "reference_score": 100.0, "random_score": 0.0, "finetune_start": 10, "score": 90.0}
    curve = [{"timesteps": 10, "mean": 80.0}, {"timesteps": 20, "mean": 70.0}]
    # scored on the final episodes: 0.90 − 0.95, the periodic rows not read
    on_final = {**base, "curve": curve, "phases": [{"eval_at_end": {"mean": 80.0}, "final": {"mean": 95.0}}]}
    assert compare(on_final) == pytest.approx((-0.05, True))
    # an older record: the last periodic evaluation (0.70) − the one at the switch (0.80), not the final score
    periodic = {**base, "curve": curve, "phases": [{"eval_at_end": {"mean": 80.0}}]}
    assert compare(periodic)[0] == pytest.approx(-0.10) and compare(periodic)[1] is False
