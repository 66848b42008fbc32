"""One distillation run, end to end: what ``ppdistill distill`` and the benchmark harness execute.

A run loads the teacher, builds the student (a preset size relative to the teacher), trains
with periodic evaluation, evaluates the final student and the teacher on the same seeded
episodes, and writes to its output folder:

- ``student.zip``: the trained student (SB3 format; ``PPD.load`` & co. read it)
- ``eval.csv``: env steps, wall time, mean and std of the return at each evaluation
- ``learning_curve.png``: student return against env steps, the teacher as a line
- ``results.json``: the configuration, final scores, ratio, agreement, timings, versions
- ``config.yml``: the resolved hyperparameters

These are written to a temporary sibling folder and moved into place at the end, so they
appear together or not at all. While the run trains, the output folder holds its
``checkpoint/`` folder:

- ``checkpoint/run.json``: the run's spec (written, atomically, when training starts)
- ``checkpoint/checkpoint.zip``: the latest checkpoint (see :mod:`ppdistill.experiment.checkpoints`),
  taken at step 0 and then at the first rollout boundary after every ``checkpoint_freq``
  env steps, replaced atomically, so it is always a complete one

:func:`resume` continues an interrupted or failed run from there to its original budget;
on CPU the result is bit for bit that of an uninterrupted run (tested). When the run
completes, ``checkpoint/`` is removed; a folder that still has one holds an unfinished run,
and a new run refuses to start over it.

Two kinds of run go beyond one algorithm trained once, both set by hyperparameters that the
runner reads (:data:`ppdistill.experiment.config.RUNNER_KEYS`), so that the CLI and the benchmark
harness run them alike:

- PPD with a λ schedule (``lambda_schedule``: ``constant``, ``linear``,
  ``distill-then-finetune:FRACTION``, ``performance``; see
  :func:`ppdistill.core.schedules.named_schedule`). ``performance`` needs the teacher's and a random
  policy's returns: they are measured before training (the teacher on the final evaluation's
  episodes, which the final evaluation then reuses) and kept in the checkpoints.
- A distill-then-fine-tune pipeline (``then_finetune: N`` with student-distill or
  teacher-distill): the distillation phase runs its ``timesteps``, then the same student
  continues as SB3's PPO for N more env steps (:mod:`ppdistill.experiment.pipeline`), on fresh training
  environments, with PPO's hyperparameters ``finetune_hp`` and, with ``critic_warmup: M``,
  only the critic learning for the first M of them. One evaluation curve spans both phases
  (env steps continue); the output folder also holds ``distilled.zip``, the student at the end
  of distillation, and ``results.json`` a ``phases`` list. A pipeline resumes from either
  phase: a checkpoint holds whichever model was training, and one taken during fine-tuning
  also the distilled student (``checkpoint/distilled.zip``) and the phase boundary.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from ppdistill.algorithms.base import DistillationMixin
from ppdistill.algorithms.guards import FiniteRollouts, diagnose_value_error
from ppdistill.core.errors import PPDistillError
from ppdistill.core.files import atomic_write, check_out_folder
from ppdistill.core.schedules import Schedule, named_schedule, parse_schedule_name
from ppdistill.envs.make import make_vec_env
from ppdistill.evaluation import action_agreement_on, evaluate, random_policy_score
from ppdistill.experiment.callbacks import PeriodicEvaluation
from ppdistill.experiment.checkpoints import (
    CHECKPOINT_NAME,
    Checkpoint,
    CheckpointError,
    EpisodeRecorder,
    PeriodicCheckpoint,
    load_into,
    read_checkpoint,
)
from ppdistill.experiment.config import (
    algorithm_class,
    hyperparameters,
)
from ppdistill.experiment.models import build_model, student_policy_kwargs
from ppdistill.experiment.outputs import machine_description, versions, write_outputs
from ppdistill.experiment.pipeline import CriticWarmup, finetune_model, warmup_end
from ppdistill.experiment.spec import RunSpec
from ppdistill.teachers.base import Teacher
from ppdistill.teachers.loading import load_teacher
from ppdistill.teachers.q_values import DEFAULT_Q_TEMPERATURE

CHECKPOINT_DIR = "checkpoint"


RUN_FILE = "run.json"


DISTILLED_NAME = "distilled.zip"


# Seed offsets from the run's seed: periodic evaluations, final evaluation, fresh episodes of
# an inexact resume, and the fine-tuning phase of a pipeline (its PPO and its environments).
FINETUNE_SEED_OFFSET = 40_000


def default_checkpoint_freq(timesteps: int) -> int:
    """Ten checkpoints per run."""
    return max(1, int(timesteps) // 10)


def unfinished_run(out: Path) -> Path | None:
    """The ``run.json`` of an unfinished run in ``out``, if there is one."""
    record = Path(out) / CHECKPOINT_DIR / RUN_FILE
    return record if record.is_file() else None


def run(
    spec: RunSpec,
    out: Path | None = None,
    progress_bar: bool = False,
    verbose: int = 0,
    teacher: Teacher | None = None,
    teacher_score: float | None = None,
    on_model: Callable[[BaseAlgorithm], None] | None = None,
    checkpoint_freq: int | None = None,
    random_score: float | None = None,
) -> dict[str, Any]:
    """Execute ``spec``; write its outputs to ``out`` (if given); return the results record.

    :param spec: the run
    :param out: output folder
    :param progress_bar: show SB3's progress bar
    :param verbose: SB3 verbosity
    :param teacher: an already loaded teacher (else loaded from ``spec.teacher``)
    :param teacher_score: the teacher's final-evaluation mean, if already known
    :param on_model: called with each model before it trains (e.g. to add a logger; twice
        in a pipeline: the distilling student, then the fine-tuning PPO)
    :param checkpoint_freq: env steps between checkpoints in ``out/checkpoint`` (None: a tenth
        of the budget; 0: none)
    :param random_score: a random policy's mean return, if already known (for a
        ``performance`` λ schedule; else measured)
    """
    if out is not None:
        check_out_folder(Path(out))
        record = unfinished_run(Path(out))
        if record is not None:
            raise PPDistillError(
                f"{out} holds an unfinished run ({record}); continue it with "
                f"`ppdistill distill --resume {out}`, or delete {record.parent} to start over"
            )
    if checkpoint_freq is None:
        checkpoint_freq = default_checkpoint_freq(spec.total_timesteps)
    if checkpoint_freq < 0:
        raise PPDistillError(f"checkpoint frequency must be >= 0, got {checkpoint_freq}")
    baselines = {"teacher": teacher_score, "random": random_score}
    return _execute(spec, out, progress_bar, verbose, teacher, baselines, on_model, checkpoint_freq, None)


def resume(
    out: Path,
    progress_bar: bool = False,
    verbose: int = 0,
    teacher: Teacher | None = None,
    on_model: Callable[[BaseAlgorithm], None] | None = None,
) -> dict[str, Any]:
    """Continue the unfinished run in ``out`` from its latest checkpoint to its budget.

    :param out: the output folder of the interrupted run
    :param progress_bar: show SB3's progress bar
    :param verbose: SB3 verbosity
    :param teacher: an already loaded teacher (else loaded from the spec's path)
    :param on_model: called with each model before it trains
    """
    out = Path(out)
    record = unfinished_run(out)
    if record is None:
        done = " (it completed)" if (out / "results.json").is_file() else ""
        raise CheckpointError(
            f"{out} holds no unfinished run to resume{done}: no {CHECKPOINT_DIR}/{RUN_FILE}"
        )
    try:
        saved = json.loads(record.read_text())
        spec = RunSpec(**saved["spec"])
        checkpoint_freq = int(saved["checkpoint_freq"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{record} is damaged ({type(exc).__name__}: {exc}); start the run over"
        ) from exc
    for stale in record.parent.glob(".*.tmp"):  # a write cut short by the interruption
        stale.unlink()
    path = record.parent / CHECKPOINT_NAME
    checkpoint = read_checkpoint(path) if path.is_file() else None
    baselines: dict[str, float | None] = {"teacher": None, "random": None}
    return _execute(
        spec, out, progress_bar, verbose, teacher, baselines, on_model, checkpoint_freq, checkpoint
    )


def _lambda_schedule(
    spec: RunSpec, teacher: Teacher, baselines: dict[str, float | None], checkpoint: Checkpoint | None
) -> tuple[Schedule | None, dict[str, Any] | None]:
    """PPD's λ schedule of ``spec`` and its record for results.json (None, None: a plain λ)."""
    name = spec.hp.get("lambda_schedule")
    if name is None or spec.method != "ppd":
        return None, None
    kind, _ = parse_schedule_name(name)
    value = float(spec.hp.get("distill_lambda", 1.0))
    record: dict[str, Any] = {"name": name, "lambda": value}
    if kind == "performance":
        saved = (checkpoint.extra.get("baselines") if checkpoint is not None else None) or {}
        for key in ("teacher", "random"):  # a resumed run uses the numbers it started with
            if saved.get(key) is not None:
                baselines[key] = float(saved[key])
        if baselines["teacher"] is None:  # the final evaluation's episodes: measured once, used twice
            baselines["teacher"] = evaluate(
                teacher, spec.env_id, spec.final_episodes, spec.deterministic, seed=spec.seed + 20_000
            ).mean
        if baselines["random"] is None:
            baselines["random"] = random_policy_score(
                spec.env_id, spec.final_episodes, seed=spec.seed + 20_000
            )
        record.update(teacher_return=baselines["teacher"], random_return=baselines["random"])
    try:
        schedule = named_schedule(name, value, baselines["teacher"], baselines["random"])
    except ValueError as exc:
        raise PPDistillError(f"lambda_schedule {name}: {exc}") from exc
    return schedule, record


def _learn(
    model: BaseAlgorithm,
    until: int,
    callbacks: list[BaseCallback],
    progress_bar: bool,
    continuing: bool,
    tb_log_name: str | None = None,
) -> None:
    """Train ``model`` until its step counter reaches ``until``."""
    if not isinstance(model, DistillationMixin):  # PPO: SB3's class, checked from outside
        callbacks = [*callbacks, FiniteRollouts()]
    kwargs: dict[str, Any] = {"tb_log_name": tb_log_name} if tb_log_name else {}
    try:
        model.learn(
            until - model.num_timesteps,
            callback=CallbackList(callbacks),
            progress_bar=progress_bar,
            reset_num_timesteps=not continuing,
            **kwargs,
        )
    except ValueError as exc:  # torch refused a distribution: say so if a NaN is the cause
        error = diagnose_value_error(model)
        if error is not None:
            raise error from exc
        raise


def _execute(
    spec: RunSpec,
    out: Path | None,
    progress_bar: bool,
    verbose: int,
    teacher: Teacher | None,
    baselines: dict[str, float | None],
    on_model: Callable[[BaseAlgorithm], None] | None,
    checkpoint_freq: int,
    checkpoint: Checkpoint | None,
) -> dict[str, Any]:
    temperature = float(spec.hp.get("temperature", DEFAULT_Q_TEMPERATURE))
    if teacher is None:
        teacher = load_teacher(spec.teacher, env_id=spec.env_id, temperature=temperature)
    schedule, schedule_record = _lambda_schedule(spec, teacher, baselines, checkpoint)
    model = build_model(spec, teacher, verbose=verbose, distill_lambda=schedule)
    pipeline = spec.finetune_steps > 0
    # where a pipeline stands: the boundary and the distilled student, once fine-tuning began
    finetune: dict[str, Any] | None = None
    distilled: bytes | None = None
    folder = Path(out) / CHECKPOINT_DIR if out is not None and checkpoint_freq > 0 else None
    if checkpoint is not None and pipeline and checkpoint.extra.get("finetune") is not None:
        finetune = dict(checkpoint.extra["finetune"])
        assert folder is not None
        distilled = (folder / DISTILLED_NAME).read_bytes()
        model = _finetuning(spec, model, verbose)  # the checkpoint holds the PPO
    if on_model is not None:
        on_model(model)
    freq = spec.eval_freq or max(1, spec.total_timesteps // 10)
    evaluation = PeriodicEvaluation(
        spec.env_id, freq, spec.eval_episodes, spec.deterministic, spec.seed + 10_000
    )
    train_time_before = 0.0
    resumes: list[dict[str, Any]] = []
    restore_rng = None
    if checkpoint is not None:
        exact = load_into(model, checkpoint, seed=spec.seed + 30_000)
        extra = checkpoint.extra
        evaluation.restore(extra["evaluation"])
        train_time_before = float(extra["train_time_s"])
        resumes = [*extra.get("resumes", []), {"from_step": checkpoint.num_timesteps, "exact": exact}]
        restore_rng = checkpoint.state["rng"]
    t0 = time.perf_counter()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        if checkpoint is None:
            record = {"spec": asdict(spec), "checkpoint_freq": checkpoint_freq}
            atomic_write(folder / RUN_FILE, json.dumps(record, indent=2).encode())

    def extra_state() -> dict[str, Any]:
        return {
            "evaluation": evaluation.state(),
            "train_time_s": train_time_before + time.perf_counter() - t0,
            "resumes": resumes,
            "baselines": baselines,
            "finetune": finetune,
        }

    def checkpointer(restore: dict[str, Any] | None) -> list[PeriodicCheckpoint]:
        if folder is None:
            return []
        return [PeriodicCheckpoint(folder / CHECKPOINT_NAME, checkpoint_freq, extra_state, restore)]

    checkpointers: list[PeriodicCheckpoint] = []
    if finetune is None:  # the (distillation) phase
        checkpointers = checkpointer(restore_rng)
        _learn(model, spec.timesteps, [evaluation, *checkpointers], progress_bar, checkpoint is not None)
    if pipeline and finetune is None:  # the boundary: evaluate, keep the distilled student, hand over
        if not evaluation.rows or evaluation.rows[-1]["timesteps"] < model.num_timesteps:
            evaluation._evaluate()
        buffer = io.BytesIO()
        model.save(buffer)
        distilled = buffer.getvalue()
        if folder is not None:  # before the first fine-tuning checkpoint, which needs it
            atomic_write(folder / DISTILLED_NAME, distilled)
        finetune = {"start": int(model.num_timesteps), "distilled_eval": dict(evaluation.rows[-1])}
        model = _finetuning(spec, model, verbose)
        if on_model is not None:
            on_model(model)
        evaluation.carry_on()  # one curve: no second evaluation at the start of fine-tuning
        restore_rng = None  # the fine-tuning starts from its own seed
    if finetune is not None:
        warmup = int(spec.hp.get("critic_warmup") or 0)
        callbacks: list[BaseCallback] = [evaluation, *checkpointer(restore_rng)]
        if warmup:
            callbacks.append(CriticWarmup(finetune["start"], warmup))
        checkpointers = [c for c in callbacks if isinstance(c, PeriodicCheckpoint)] + checkpointers
        _learn(model, spec.total_timesteps, callbacks, progress_bar, True,
               tb_log_name=algorithm_class(spec.method).__name__)  # fmt: skip
    train_time = train_time_before + time.perf_counter() - t0
    if not evaluation.rows or evaluation.rows[-1]["timesteps"] < model.num_timesteps:
        evaluation._evaluate()
    final = evaluate(
        model,
        spec.env_id,
        spec.final_episodes,
        spec.deterministic,
        seed=spec.seed + 20_000,
        record_observations=True,
    )
    teacher_score = baselines["teacher"]
    if teacher_score is None:
        teacher_score = evaluate(
            teacher, spec.env_id, spec.final_episodes, spec.deterministic, seed=spec.seed + 20_000
        ).mean
    agreement = action_agreement_on(model, teacher, final.observations)
    policy_kwargs = student_policy_kwargs(spec, teacher)
    n_params = sum(p.numel() for p in model.policy.parameters())
    write_times = [t for c in checkpointers for t in c.write_times]
    result: dict[str, Any] = {
        "spec": asdict(spec),
        "student_net_arch": policy_kwargs.get("net_arch"),
        "student_parameters": int(n_params),
        "score": final.mean,
        "score_std": final.std,
        "score_iqm": final.iqm,
        "returns": [float(r) for r in final.returns],
        "teacher_score": float(teacher_score),
        "ratio": float(final.mean / teacher_score) if teacher_score else None,
        "agreement": agreement,
        "curve": evaluation.rows,
        "env_steps": int(model.num_timesteps),
        "train_time_s": round(train_time, 3),
        "env_steps_per_s": round(model.num_timesteps / max(train_time, 1e-9), 1),
        "checkpoint_freq": checkpoint_freq if folder is not None else 0,
        "checkpoint_write_s": round(float(np.mean(write_times)), 4) if write_times else None,
        "resumed": resumes,
        "versions": versions(),
        "machine": machine_description(),
    }
    if schedule_record is not None:
        result["lambda_schedule"] = schedule_record
    if finetune is not None:
        result["finetune_start"] = finetune["start"]
        result["phases"] = _phases(spec, model, finetune)
    if out is not None:
        files = {DISTILLED_NAME: distilled} if distilled is not None else {}
        write_outputs(Path(out), spec, model, evaluation.rows, float(teacher_score), result, files)
        shutil.rmtree(Path(out) / CHECKPOINT_DIR, ignore_errors=True)
    return result


def _finetuning(spec: RunSpec, distilled: BaseAlgorithm, verbose: int) -> BaseAlgorithm:
    """The fine-tuning PPO of a pipeline, from the distilled student, on fresh environments."""
    hp = spec.hp.get("finetune_hp")
    if hp is None:
        hp = hyperparameters(spec.env_id, "ppo")
    seed = spec.seed + FINETUNE_SEED_OFFSET
    env = make_vec_env(spec.env_id, n_envs=int(hp.get("n_envs", 1)), seed=seed, wrapper_class=EpisodeRecorder)
    old_env = distilled.get_env()
    if old_env is not None:
        old_env.close()
    try:
        return finetune_model(distilled, hp, env, seed, verbose=verbose, tensorboard_log=spec.tensorboard)
    except TypeError as exc:  # a key PPO does not take
        raise PPDistillError(f"bad fine-tuning hyperparameter: {exc}") from exc


def _phases(spec: RunSpec, model: BaseAlgorithm, finetune: dict[str, Any]) -> list[dict[str, Any]]:
    """What each phase of a pipeline did, for results.json."""
    start = int(finetune["start"])
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
            "student": DISTILLED_NAME,
        },
        {
            "phase": "finetune",
            "method": "ppo",
            "start_step": start,
            "end_step": int(model.num_timesteps),
            "critic_warmup": warmup,
            "actor_frozen_until_step": warmup_end(start, warmup, rollout) if warmup else start,
            "hp": effective,
            "student": "student.zip",
        },
    ]
