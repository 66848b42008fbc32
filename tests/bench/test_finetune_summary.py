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
