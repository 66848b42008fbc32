"""Tables on the terminal (rich) or as aligned plain text (logs, pipes)."""

from __future__ import annotations

import sys
from typing import Any

from ppdistill.core.scores import format_score


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A rich table on a terminal, aligned plain text otherwise (logs, pipes)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency of SB3's progress bar
        Console = None  # type: ignore[assignment,misc]
    if Console is not None and sys.stdout.isatty():
        table = Table(title=title)
        for c in columns:
            table.add_column(c, justify="right" if c not in ("method", "size", "env", "agent") else "left")
        for r in rows:
            table.add_row(*r)
        Console().print(table)
        return
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
    print(title)
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))


def result_row(result: dict[str, Any]) -> list[str]:
    """A run's results as a table row (see :data:`RESULT_COLUMNS`)."""
    spec = result["spec"]
    return [
        spec["method"] + (" → ppo" if result.get("finetune_start") is not None else ""),
        f"{result['score']:.1f} ± {result['score_std']:.1f}",
        f"{result['teacher_score']:.1f}",
        f"{result['random_score']:.1f}",
        format_score(result.get("normalized_score")),
        format_score(result.get("ratio")),
        format_score(result.get("agreement")),
        f"{result['env_steps']}",
        f"{result['train_time_s']:.0f}s",
    ]


RESULT_COLUMNS = [
    "method",
    "student return",
    "teacher",
    "random",
    "normalized (0 random, 1 teacher)",
    "student/teacher",
    "agreement",
    "env steps",
    "wall time",
]
"""``student/teacher`` is a ratio of returns, shown only where it is one (both returns
non-negative, the teacher's positive; :mod:`ppdistill.core.scores`)."""
