"""What a finished run writes: student, evaluation curve, plot, results and config."""

from __future__ import annotations

import csv
import json
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import stable_baselines3
import torch
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm

from ppdistill.core.files import StagedOutput
from ppdistill.core.version import __version__
from ppdistill.experiment.spec import RunSpec


def versions() -> dict[str, str]:
    """Versions of ppdistill and of what it runs on, for results records."""
    return {
        "ppdistill": __version__,
        "stable_baselines3": stable_baselines3.__version__,
        "gymnasium": gymnasium.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def machine_description() -> str:
    """CPU model and core count, for benchmark records."""
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


def plot_curves(
    curves: dict[str, list[dict[str, float]]],
    teacher_score: float | None,
    title: str,
    path: Path,
    finetune_start: int | None = None,
) -> None:
    """Return against env steps, one line per curve, the teacher as a dashed line (and the
    step where a pipeline's fine-tuning began as a dotted one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for label, rows in curves.items():
        if not rows:
            continue
        x = np.array([r["timesteps"] for r in rows])
        y = np.array([r["mean"] for r in rows])
        s = np.array([r["std"] for r in rows])
        ax.plot(x, y, marker="o", markersize=3, label=label)
        ax.fill_between(x, y - s, y + s, alpha=0.15)
    if teacher_score is not None:
        ax.axhline(teacher_score, color="black", linestyle="--", linewidth=1, label="teacher")
    if finetune_start is not None:
        ax.axvline(
            finetune_start, color="gray", linestyle=":", linewidth=1, label="PPO fine-tuning from here"
        )
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return (mean ± std)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_outputs(
    out: Path,
    spec: RunSpec,
    model: BaseAlgorithm,
    rows: list[dict[str, float]],
    teacher_score: float,
    result: dict[str, Any],
    files: dict[str, bytes] | None = None,
) -> None:
    """Write the run's final files into ``out``, all together (through a staging folder).

    :param out: output folder
    :param spec: the run
    :param model: the trained student
    :param rows: the periodic evaluations
    :param teacher_score: the teacher's final-evaluation mean
    :param result: the results record
    :param files: more files to write, name to contents (a pipeline's ``distilled.zip``)
    """
    staged = StagedOutput(out)
    try:
        model.save(staged.path("student.zip"))
        for name, data in (files or {}).items():
            staged.path(name).write_bytes(data)
        with staged.path("eval.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["timesteps", "wall_time_s", "mean", "std"])
            writer.writeheader()
            writer.writerows(rows)
        boundary = result.get("finetune_start")
        title = f"{spec.method} on {spec.env_id} ({spec.student} student)"
        if boundary is not None:
            title = f"{spec.method}, then PPO, on {spec.env_id} ({spec.student} student)"
        plot_curves({spec.method: rows}, teacher_score, title, staged.path("learning_curve.png"), boundary)
        staged.path("config.yml").write_text(yaml.safe_dump(asdict(spec), sort_keys=False))
        staged.path("results.json").write_text(json.dumps(result, indent=2))
        staged.commit()
    except BaseException:
        staged.discard()
        raise
