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
from ppdistill.core.scores import normalized_score, return_ratio
from ppdistill.core.seeds import SeedPlan
from ppdistill.core.version import __version__
from ppdistill.evaluation import EvalResult
from ppdistill.experiment.config import shipped_config_sha256
from ppdistill.experiment.models import student_policy_kwargs
from ppdistill.experiment.pipeline import anchor_end, warmup_end
from ppdistill.experiment.spec import RunSpec
from ppdistill.teachers.base import Teacher

DISTILLED_NAME = "distilled.zip"
"""A pipeline's student at the end of distillation, beside ``student.zip``."""
RUN_FILES = frozenset(
    {"student.zip", DISTILLED_NAME, "eval.csv", "learning_curve.png", "results.json", "config.yml"}
)
"""What a finished run leaves in its folder (a run that replaces it removes those it does not write)."""


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


def summarize(
    spec: RunSpec,
    model: BaseAlgorithm,
    teacher: Teacher,
    final: EvalResult,
    teacher_score: float,
    random_score: float,
    agreement: float | None,
    curve: list[dict[str, float]],
    train_time: float,
    checkpoint_freq: int,
    checkpoint_write_times: list[float],
    resumes: list[dict[str, Any]],
    schedule: dict[str, Any] | None = None,
    finetune: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The results record of a finished run (``results.json``, and a benchmark record's core).

    :param spec: the run
    :param model: the trained student
    :param teacher: its teacher
    :param final: the student's final evaluation
    :param teacher_score: the teacher's mean return on the same episodes
    :param random_score: a random policy's mean return on the same episodes
    :param agreement: teacher-student action agreement on the final evaluation's observations
        (None where it is not defined: a recurrent teacher or student)
    :param curve: the periodic evaluations
    :param train_time: training wall time, resumes included
    :param checkpoint_freq: env steps between checkpoints (0: none were taken)
    :param checkpoint_write_times: seconds each checkpoint took to write
    :param resumes: where the run was resumed from
    :param schedule: PPD's λ schedule, when it had a named one
    :param finetune: where a pipeline's fine-tuning began (None: not a pipeline)
    """
    policy_kwargs = student_policy_kwargs(spec, teacher, model.observation_space)
    n_params = sum(p.numel() for p in model.policy.parameters())
    result: dict[str, Any] = {
        "spec": asdict(spec),
        "seeds": SeedPlan(spec.seed).as_dict(),
        "student_net_arch": policy_kwargs.get("net_arch"),
        "student_policy": spec.student_policy,
        # an LSTM student's memory (its layers after the LSTM are student_net_arch)
        "student_lstm_hidden_size": getattr(model.policy, "lstm_hidden_state_shape", (None,) * 3)[2],
        "student_parameters": int(n_params),
        "score": final.mean,
        "score_std": final.std,
        "score_iqm": final.iqm,
        "returns": [float(r) for r in final.returns],
        "teacher_score": float(teacher_score),
        "random_score": float(random_score),
        # 1 the teacher, 0 a random policy; the ratio only where it is a fraction of the reward
        "normalized_score": normalized_score(final.mean, teacher_score, random_score),
        "ratio": return_ratio(final.mean, teacher_score),
        "agreement": agreement,
        "curve": curve,
        "env_steps": int(model.num_timesteps),
        "train_time_s": round(train_time, 3),
        "env_steps_per_s": round(model.num_timesteps / max(train_time, 1e-9), 1),
        "checkpoint_freq": checkpoint_freq,
        "checkpoint_write_s": (
            round(float(np.mean(checkpoint_write_times)), 4) if checkpoint_write_times else None
        ),
        "resumed": resumes,
        "versions": versions(),
        # the shipped defaults this run was made with (its spec holds the values it used)
        "defaults_sha256": shipped_config_sha256(),
        "machine": machine_description(),
    }
    if schedule is not None:
        result["lambda_schedule"] = schedule
    if finetune is not None:
        result["finetune_start"] = finetune["start"]
        result["phases"] = pipeline_phases(spec, model, finetune)
    return result


def pipeline_phases(spec: RunSpec, model: BaseAlgorithm, finetune: dict[str, Any]) -> list[dict[str, Any]]:
    """What each phase of a pipeline did, for results.json.

    :param spec: the run
    :param model: the fine-tuned PPO
    :param finetune: where fine-tuning began, the distilled student's periodic evaluation there
        and (runs since it was added) its evaluation on the final episodes
    """
    start = int(finetune["start"])
    anchor = float(spec.hp.get("finetune_anchor") or 0.0)
    warmup = int(spec.hp.get("critic_warmup") or 0)
    rollout = int(model.n_steps * model.n_envs)  # type: ignore[attr-defined]
    effective = {k: v for k, v in (spec.hp.get("finetune_hp") or {}).items() if k not in ("policy_kwargs",)}
    effective["use_sde"] = bool(getattr(model, "use_sde", False))
    return [
        {
            "phase": "distill",
            "method": spec.method,
            "start_step": 0,
            "end_step": start,
            "eval_at_end": finetune["distilled_eval"],
            # on the final evaluation's episodes (absent from records made before it was added)
            **({"final": finetune["distilled_final"]} if "distilled_final" in finetune else {}),
            "student": DISTILLED_NAME,
        },
        {
            "phase": "finetune",
            # anchored: a PPD whose teacher is the distilled student
            "method": "ppd" if anchor else "ppo",
            "start_step": start,
            "end_step": int(model.num_timesteps),
            "critic_warmup": warmup,
            # the critic initialized again at the switch (finetune_critic_reset)
            "critic_reset": bool(spec.hp.get("finetune_critic_reset")),
            "actor_frozen_until_step": warmup_end(start, warmup, rollout) if warmup else start,
            # the KL anchor to the distilled student (0: none), and the step where its λ is 0
            "anchor": anchor,
            "anchor_until_step": (
                anchor_end(start, int(spec.hp.get("finetune_anchor_steps") or 0), spec.total_timesteps)
                if anchor
                else None
            ),
            "hp": effective,
            "student": "student.zip",
            # finetune_keep_better: both students on validation episodes, and which student.zip holds
            **({"keep_better": finetune["keep_better"]} if "keep_better" in finetune else {}),
        },
    ]


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
        record = {**asdict(spec), "eval_freq": spec.effective_eval_freq}  # what the run used
        staged.path("config.yml").write_text(yaml.safe_dump(record, sort_keys=False))
        staged.path("results.json").write_text(json.dumps(result, indent=2))
        written = {item.name for item in staged.tmp.iterdir()}
        staged.commit()
    except BaseException:
        staged.discard()
        raise
    for name in RUN_FILES - written:  # a replaced run's file that this run does not make
        (out / name).unlink(missing_ok=True)
