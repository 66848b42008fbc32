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
- ``checkpoint/checkpoint.zip``: the latest checkpoint (see :mod:`ppdistill.checkpoints`),
  taken at step 0 and then at the first rollout boundary after every ``checkpoint_freq``
  env steps, replaced atomically, so it is always a complete one

:func:`resume` continues an interrupted or failed run from there to its original budget;
on CPU the result is bit for bit that of an uninterrupted run (tested). When the run
completes, ``checkpoint/`` is removed; a folder that still has one holds an unfinished run,
and a new run refuses to start over it.

Two kinds of run go beyond one algorithm trained once, both set by hyperparameters that the
runner reads (:data:`ppdistill.config.RUNNER_KEYS`), so that the CLI and the benchmark
harness run them alike:

- PPD with a λ schedule (``lambda_schedule``: ``constant``, ``linear``,
  ``distill-then-finetune:FRACTION``, ``performance``; see
  :func:`ppdistill.schedules.named_schedule`). ``performance`` needs the teacher's and a random
  policy's returns: they are measured before training (the teacher on the final evaluation's
  episodes, which the final evaluation then reuses) and kept in the checkpoints.
- A distill-then-fine-tune pipeline (``then_finetune: N`` with student-distill or
  teacher-distill): the distillation phase runs its ``timesteps``, then the same student
  continues as SB3's PPO for N more env steps (:mod:`ppdistill.pipeline`), on fresh training
  environments, with PPO's hyperparameters ``finetune_hp`` and, with ``critic_warmup: M``,
  only the critic learning for the first M of them. One evaluation curve spans both phases
  (env steps continue); the output folder also holds ``distilled.zip``, the student at the end
  of distillation, and ``results.json`` a ``phases`` list. A pipeline resumes from either
  phase: a checkpoint holds whichever model was training, and one taken during fine-tuning
  also the distilled student (``checkpoint/distilled.zip``) and the phase boundary.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.preprocessing import is_image_space

from ppdistill.algorithms.base import DistillationMixin
from ppdistill.checkpoints import (
    CHECKPOINT_NAME,
    Checkpoint,
    CheckpointCallback,
    CheckpointError,
    EpisodeRecorder,
    atomic_write,
    load_into,
    read_checkpoint,
)
from ppdistill.config import RUNNER_KEYS, algorithm_class, check_keys, check_runner_keys, hyperparameters
from ppdistill.envs import make_vec_env
from ppdistill.errors import PPDistillError
from ppdistill.evaluation import action_agreement_on, evaluate, random_policy_score
from ppdistill.guards import FiniteRollouts, diagnose_value_error
from ppdistill.networks import NormalizedFlattenExtractor, image_student_kwargs, mlp_student_arch
from ppdistill.pipeline import CriticWarmup, finetune_model, warmup_end
from ppdistill.schedules import Schedule, named_schedule, parse_schedule_name
from ppdistill.teachers import DEFAULT_Q_TEMPERATURE, Teacher, load_teacher


@dataclass
class RunSpec:
    """Everything that defines a run.

    :param env_id: environment id
    :param method: "ppd", "student-distill", "teacher-distill" or "ppo" (from scratch)
    :param teacher: path of the teacher (also used by "ppo" for the student size and the ratio)
    :param timesteps: environment steps
    :param student: "smaller", "same", "larger" or a comma list of hidden sizes
    :param seed: seed of the model, the training envs and (offset) the evaluation envs
    :param hp: hyperparameters (from :func:`ppdistill.config.hyperparameters`, overrides applied)
    :param eval_freq: env steps between evaluations (0: ten evaluations per run)
    :param eval_episodes: episodes per periodic evaluation
    :param final_episodes: episodes of the final evaluation (student and teacher)
    :param deterministic: evaluate with the policy's mode
    :param tensorboard: TensorBoard log folder

    ``hp`` may hold the runner's keys besides the algorithm's: ``n_envs``, ``temperature``
    (DQN teachers), ``lambda_schedule`` (PPD), and for a distill-then-fine-tune pipeline
    ``then_finetune`` (env steps of PPO after ``timesteps`` of distillation),
    ``critic_warmup`` and ``finetune_hp`` (the fine-tuning PPO's complete hyperparameters;
    absent, the shipped config's ``ppo`` section for the env;
    :func:`ppdistill.config.run_hyperparameters` builds it from a config and overrides).
    """

    env_id: str
    method: str
    teacher: str
    timesteps: int
    student: str = "smaller"
    seed: int = 0
    hp: dict[str, Any] = field(default_factory=dict)
    eval_freq: int = 0
    eval_episodes: int = 10
    final_episodes: int = 20
    deterministic: bool = True
    tensorboard: str | None = None

    def __post_init__(self) -> None:
        if int(self.timesteps) <= 0:
            raise PPDistillError(f"timesteps must be positive, got {self.timesteps}")
        check_keys(self.method, self.hp, "the hyperparameters")
        check_runner_keys(self.method, self.hp)

    @property
    def finetune_steps(self) -> int:
        """Env steps of PPO fine-tuning after the distillation (0: not a pipeline)."""
        return int(self.hp.get("then_finetune") or 0)

    @property
    def total_timesteps(self) -> int:
        """Env steps of the whole run, both phases of a pipeline."""
        return int(self.timesteps) + self.finetune_steps


CHECKPOINT_DIR = "checkpoint"
RUN_FILE = "run.json"
DISTILLED_NAME = "distilled.zip"
# Seed offsets from the run's seed: periodic evaluations, final evaluation, fresh episodes of
# an inexact resume, and the fine-tuning phase of a pipeline (its PPO and its environments).
FINETUNE_SEED_OFFSET = 40_000


def default_checkpoint_freq(timesteps: int) -> int:
    """Ten checkpoints per run."""
    return max(1, int(timesteps) // 10)


class PeriodicEvaluation(BaseCallback):
    """Evaluates the student every ``freq`` env steps (and at step 0) on seeded episodes.

    :param env_id: environment to evaluate on
    :param freq: env steps between evaluations
    :param n_episodes: episodes per evaluation
    :param deterministic: act with the mode
    :param seed: seed of the evaluation resets (the same at every evaluation)
    """

    def __init__(self, env_id: str, freq: int, n_episodes: int, deterministic: bool, seed: int) -> None:
        super().__init__()
        self.env_id, self.freq, self.n_episodes = env_id, freq, n_episodes
        self.deterministic, self.seed = deterministic, seed
        self.rows: list[dict[str, float]] = []
        self._next = 0
        self._start = time.perf_counter()
        self._resumed = False

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: the rows, the next evaluation step, the elapsed time."""
        return {"rows": list(self.rows), "next": self._next, "elapsed": time.perf_counter() - self._start}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state` (no evaluation at the start of the resumed training)."""
        self.rows = list(state["rows"])
        self._next = int(state["next"])
        self._elapsed_before = float(state["elapsed"])
        self._resumed = True

    def carry_on(self) -> None:
        """The next ``learn`` continues this curve (a pipeline's next phase): no evaluation at
        its start, wall time counted on."""
        self.restore(self.state())

    def _evaluate(self) -> None:
        result = evaluate(self.model, self.env_id, self.n_episodes, self.deterministic, seed=self.seed)
        self.rows.append(
            {
                "timesteps": int(self.model.num_timesteps),
                "wall_time_s": round(time.perf_counter() - self._start, 3),
                "mean": result.mean,
                "std": result.std,
            }
        )
        self.logger.record("eval/mean_reward", result.mean)
        self._next = self.model.num_timesteps + self.freq

    def _on_training_start(self) -> None:
        if self._resumed:
            self._start = time.perf_counter() - self._elapsed_before
            return
        self._start = time.perf_counter()
        self._evaluate()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._evaluate()
        return True


def student_policy_kwargs(spec: RunSpec, teacher: Teacher) -> dict[str, Any]:
    """Policy kwargs of the student: the preset unless the hp say otherwise.

    Images get the paper's CNN presets (:func:`~ppdistill.networks.image_student_kwargs`);
    flat observations an MLP sized relative to the teacher's.
    """
    kwargs = dict(spec.hp.get("policy_kwargs") or {})
    if is_image_space(teacher.observation_space):
        if "features_extractor_class" not in kwargs:
            try:
                kwargs = {**image_student_kwargs(spec.student), **kwargs}
            except ValueError as exc:
                raise PPDistillError(str(exc)) from exc
        return kwargs
    if "net_arch" not in kwargs:
        try:
            arch = mlp_student_arch(spec.student, teacher.hidden_layers or [64, 64])
        except ValueError as exc:
            raise PPDistillError(str(exc)) from exc
        kwargs["net_arch"] = {"pi": arch, "vf": list(arch)}
    return kwargs


def policy_name(observation_space: spaces.Space) -> str:
    """SB3's policy alias for an observation space."""
    if isinstance(observation_space, spaces.Dict):
        return "MultiInputPolicy"
    return "CnnPolicy" if is_image_space(observation_space) else "MlpPolicy"


def build_model(
    spec: RunSpec, teacher: Teacher, verbose: int = 0, distill_lambda: Schedule | None = None
) -> BaseAlgorithm:
    """The student model of ``spec.method``, on fresh training environments.

    :param spec: the run
    :param teacher: the teacher
    :param verbose: SB3 verbosity
    :param distill_lambda: PPD's λ schedule, replacing ``spec.hp["distill_lambda"]``
    """
    hp = {k: v for k, v in spec.hp.items() if k not in RUNNER_KEYS and k != "policy_kwargs"}
    if distill_lambda is not None:
        hp["distill_lambda"] = distill_lambda
    n_envs = int(spec.hp.get("n_envs", 1))
    # EpisodeRecorder lets a checkpoint rebuild the envs' state exactly (by replay).
    env = make_vec_env(spec.env_id, n_envs=n_envs, seed=spec.seed, wrapper_class=EpisodeRecorder)
    policy_kwargs = student_policy_kwargs(spec, teacher)
    cls = algorithm_class(spec.method)
    policy = policy_name(teacher.observation_space)
    # SB3 runs MLPs faster on the CPU; CNNs go to a GPU when there is one
    device = "auto" if policy == "CnnPolicy" else "cpu"
    common = {"seed": spec.seed, "verbose": verbose, "tensorboard_log": spec.tensorboard, "device": device}
    if spec.method == "ppo":
        normalizer = teacher.obs_normalizer
        if (
            normalizer is not None
            and normalizer.keys is None
            and "features_extractor_class" not in policy_kwargs
        ):
            # From scratch, but with the same input normalization the distilled students get.
            policy_kwargs = {
                **policy_kwargs,
                "features_extractor_class": NormalizedFlattenExtractor,
                "features_extractor_kwargs": normalizer.stats(),
            }
        return cls(policy, env, policy_kwargs=policy_kwargs, **hp, **common)
    return cls(policy, env, teacher=teacher, policy_kwargs=policy_kwargs, **hp, **common)


def _versions() -> dict[str, str]:
    import gymnasium
    import stable_baselines3
    import torch

    import ppdistill

    return {
        "ppdistill": ppdistill.__version__,
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


class StagedOutput:
    """Write into a temporary sibling folder; move the files into ``out`` on commit.

    :param out: the final output folder (created if missing; must not be a file)
    """

    def __init__(self, out: Path) -> None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise PPDistillError(f"--out {out} is a file; give a folder path")
        self.out = out
        out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))

    def path(self, name: str) -> Path:
        return self.tmp / name

    def commit(self) -> None:
        if not self.out.exists():
            os.replace(self.tmp, self.out)
            return
        for item in self.tmp.iterdir():
            target = self.out / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
        self.tmp.rmdir()

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


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
        _check_out_folder(Path(out))
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


def _check_out_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise PPDistillError(f"--out {out} is a file; give a folder path")


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

    def checkpointer(restore: dict[str, Any] | None) -> list[CheckpointCallback]:
        if folder is None:
            return []
        return [CheckpointCallback(folder / CHECKPOINT_NAME, checkpoint_freq, extra_state, restore)]

    checkpointers: list[CheckpointCallback] = []
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
        checkpointers = [c for c in callbacks if isinstance(c, CheckpointCallback)] + checkpointers
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
        "versions": _versions(),
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
