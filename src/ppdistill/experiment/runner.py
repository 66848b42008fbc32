"""One distillation run, end to end: what ``ppdistill distill`` and the benchmark harness execute.

A run loads the teacher, builds the student (a preset size relative to the teacher), trains
with periodic evaluation, evaluates the final student and the teacher on the same seeded
episodes (every seed from :class:`ppdistill.core.seeds.SeedPlan`), and writes to its output
folder:

- ``student.zip``: the trained student (SB3 format; ``PPD.load`` & co. read it)
- ``eval.csv``: env steps, wall time, mean and std of the return at each evaluation
- ``learning_curve.png``: student return against env steps, the teacher as a line
- ``results.json``: the configuration, final scores, ratio, agreement, timings, versions
  (:func:`ppdistill.experiment.outputs.summarize`)
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
- A distill-then-fine-tune pipeline (``then_finetune: N`` with ppd, student-distill or
  teacher-distill): the distillation phase runs its ``timesteps``, then the same student
  continues as SB3's PPO for N more env steps (:mod:`ppdistill.experiment.pipeline`), on fresh training
  environments, with PPO's hyperparameters ``finetune_hp`` and, with ``critic_warmup: M``,
  only the critic learning for the first M of them; with ``finetune_anchor: λ``, held to the
  distilled student by a KL term whose λ fades to 0 over ``finetune_anchor_steps``; with
  ``finetune_keep_better: K``, the distilled and the fine-tuned student are scored on K
  validation episodes of their own at the end, and the better one is the run's student. One
  evaluation curve spans both phases (env steps continue); the output folder also holds
  ``distilled.zip``, the student at the end of distillation, and ``results.json`` a
  ``phases`` list. A pipeline resumes from either phase: a checkpoint holds whichever model
  was training, and one taken during fine-tuning also the distilled student
  (``checkpoint/distilled.zip``) and the phase boundary.

:class:`Run` holds one run: its phases (``distill``, then ``finetune`` for a pipeline) are
trained one after the other, and everything a checkpoint needs besides the model is one
record, :class:`RunState`.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch as th
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.save_util import load_from_zip_file

from ppdistill.algorithms.base import DistillationMixin
from ppdistill.algorithms.guards import FiniteRollouts, diagnose_value_error
from ppdistill.core.errors import PPDistillError
from ppdistill.core.files import FolderLock, atomic_write, check_out_folder, check_writable
from ppdistill.core.schedules import Schedule, named_schedule, parse_schedule_name
from ppdistill.core.seeds import SeedPlan
from ppdistill.evaluation import Agent, EvalResult, action_agreement_on, evaluate, random_policy_score
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
from ppdistill.experiment.config import algorithm_class, finetune_hyperparameters
from ppdistill.experiment.models import build_model, student_env, teacher_env, with_reward_normalization
from ppdistill.experiment.outputs import DISTILLED_NAME, summarize, write_outputs
from ppdistill.experiment.pipeline import CriticWarmup, anchor_schedule, distilled_policy, finetune_model
from ppdistill.experiment.spec import RunSpec
from ppdistill.experiment.validation import rollout_shape, validate_run
from ppdistill.teachers.base import Teacher
from ppdistill.teachers.loading import TARGET_KEYWORDS, load_teacher

CHECKPOINT_DIR = "checkpoint"
RUN_FILE = "run.json"

Phase = Literal["distill", "finetune"]
# Settings of a teacher's target, and the teachers that take them: a teacher takes a setting
# when its info records it (the loader writes each kind's own: DQN, QR-DQN and ARS on Discrete
# actions their temperature, TD3, DDPG and ARS on Box actions their target_std, SAC, TQC and
# CrossQ their squashed_target and squashed_std_scale), so a new kind needs no entry here.
TARGET_SETTINGS = {
    "temperature": "value-based teachers (DQN, QR-DQN) and ARS on Discrete actions",
    "target_std": "deterministic teachers (TD3, DDPG, ARS on Box actions)",
    "squashed_target": "squashed-Gaussian teachers (SAC, TQC, CrossQ)",
    "squashed_std_scale": "squashed-Gaussian teachers (SAC, TQC, CrossQ)",
}


def default_checkpoint_freq(timesteps: int) -> int:
    """Ten checkpoints per run."""
    return max(1, int(timesteps) // 10)


def unfinished_run(out: Path) -> Path | None:
    """The ``run.json`` of an unfinished run in ``out``, if there is one."""
    record = Path(out) / CHECKPOINT_DIR / RUN_FILE
    return record if record.is_file() else None


@dataclass
class RunState:
    """Where a run stands, besides its model: what a checkpoint carries in ``extra``.

    :param evaluation: the periodic evaluation's curve and position
        (:meth:`PeriodicEvaluation.state`)
    :param train_time_s: training wall time before this process
    :param resumes: one entry per resume (the step it resumed from, whether exactly)
    :param references: the teacher's and a random policy's returns on the final
        evaluation's episodes, once measured (a ``performance`` λ schedule needs them first)
    :param finetune: set when the fine-tuning phase of a pipeline began: its first env step
        and the periodic evaluation of the distilled student there, and at the end also the
        distilled student's returns on the final evaluation's episodes (None: still distilling)
    """

    evaluation: dict[str, Any] = field(default_factory=dict)
    train_time_s: float = 0.0
    resumes: list[dict[str, Any]] = field(default_factory=list)
    references: dict[str, float | None] = field(default_factory=lambda: {"teacher": None, "random": None})
    finetune: dict[str, Any] | None = None

    @property
    def phase(self) -> Phase:
        return "distill" if self.finetune is None else "finetune"

    def to_extra(self) -> dict[str, Any]:
        """The record as a checkpoint stores it (the key names of ppdistill 0.1's checkpoints)."""
        return {
            "evaluation": self.evaluation,
            "train_time_s": self.train_time_s,
            "resumes": self.resumes,
            "baselines": self.references,
            "finetune": self.finetune,
        }

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> RunState:
        """Read :meth:`to_extra` back (from any checkpoint format this version writes or wrote)."""
        references = extra.get("baselines") or {}
        return cls(
            evaluation=dict(extra["evaluation"]),
            train_time_s=float(extra["train_time_s"]),
            resumes=list(extra.get("resumes", [])),
            references={k: references.get(k) for k in ("teacher", "random")},
            finetune=dict(extra["finetune"]) if extra.get("finetune") is not None else None,
        )


class Run:
    """One run in its phases: ``distill`` for ``spec.timesteps`` env steps, then, for a
    pipeline, ``finetune`` until ``spec.total_timesteps``.

    Build it with :meth:`start` (a new run) or :meth:`resume` (from a checkpoint), then call
    :meth:`execute`.

    :param spec: the run
    :param out: output folder (None: nothing is written)
    :param teacher: the loaded teacher
    :param state: where the run stands
    :param checkpoint: the checkpoint to continue from (None: a new run)
    :param checkpoint_freq: env steps between checkpoints (0: none)
    :param progress_bar: show SB3's progress bar
    :param verbose: SB3 verbosity
    :param on_model: called with each model before it trains
    """

    def __init__(
        self,
        spec: RunSpec,
        out: Path | None,
        teacher: Teacher,
        state: RunState,
        checkpoint: Checkpoint | None,
        checkpoint_freq: int,
        progress_bar: bool = False,
        verbose: int = 0,
        on_model: Callable[[BaseAlgorithm], None] | None = None,
    ) -> None:
        kind = teacher.info.get("kind", type(teacher).__name__)
        for key, which in TARGET_SETTINGS.items():
            if key in spec.hp and key not in teacher.info:
                raise PPDistillError(f"{key} applies to {which}, not to this {kind} teacher; drop it")
            # a teacher loaded by the caller: the run would record one setting and use another
            if key in spec.hp and teacher.info[key] != spec.hp[key]:
                raise PPDistillError(
                    f"the teacher given was loaded with {key}={teacher.info[key]!r} but the run's "
                    f"settings say {spec.hp[key]!r}: load it with {key}={spec.hp[key]!r}, or drop the setting"
                )
        self.spec, self.out, self.teacher, self.state = spec, out, teacher, state
        self.seeds = SeedPlan(spec.seed)
        # where each acts: the teacher in its own environment, the student in it too, or in a view of it
        self.teacher_env, self.student_env = teacher_env(spec, teacher), student_env(spec, teacher)
        self.checkpoint, self.checkpoint_freq = checkpoint, checkpoint_freq
        self.progress_bar, self.verbose, self.on_model = progress_bar, verbose, on_model
        self.folder = Path(out) / CHECKPOINT_DIR if out is not None and checkpoint_freq > 0 else None
        freq = spec.effective_eval_freq
        self.evaluation = PeriodicEvaluation(
            self.student_env, freq, spec.eval_episodes, spec.deterministic, self.seeds.periodic_evaluation
        )
        if state.evaluation:
            self.evaluation.restore(state.evaluation)
        self.distilled: bytes | None = None  # the student at the end of distillation (a pipeline)
        if state.finetune is not None and self.folder is not None:
            self.distilled = (self.folder / DISTILLED_NAME).read_bytes()
        self.schedule_record: dict[str, Any] | None = None
        self.checkpointers: list[PeriodicCheckpoint] = []  # one per phase trained here
        self._t0 = time.perf_counter()

    # -- building ------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        spec: RunSpec,
        out: Path | None = None,
        teacher: Teacher | None = None,
        references: dict[str, float | None] | None = None,
        checkpoint_freq: int | None = None,
        force: bool = False,
        **options: Any,
    ) -> Run:
        """A new run, checked before any work: refused over an unfinished one in ``out``, over a
        finished one unless ``force``, in a teacher's own folder, or where it cannot write.

        :param spec: the run
        :param out: output folder
        :param teacher: an already loaded teacher (else loaded from ``spec.teacher``)
        :param references: the teacher's and a random policy's final-evaluation returns, if known
        :param checkpoint_freq: env steps between checkpoints (None: a tenth of the budget; 0: none)
        :param force: replace a finished run in ``out``
        :param options: ``progress_bar``, ``verbose``, ``on_model``
        """
        if out is not None:
            check_out_folder(Path(out), force=force)
            check_outside_teacher(Path(out), spec.teacher)
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
        state = RunState(references={"teacher": None, "random": None, **(references or {})})
        teacher = teacher if teacher is not None else _load_teacher(spec)
        validate_run(spec, teacher)  # sizes and budgets that need the spaces: before anything is written
        return cls(spec, out, teacher, state, None, checkpoint_freq, **options)

    @classmethod
    def resume(cls, out: Path, teacher: Teacher | None = None, **options: Any) -> Run:
        """The unfinished run in ``out``, from its latest checkpoint.

        :param out: the output folder of the interrupted run
        :param teacher: an already loaded teacher (else loaded from the spec's path)
        :param options: ``progress_bar``, ``verbose``, ``on_model``
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
        check_writable(out, f"--resume {out}")
        for stale in record.parent.glob(".*.tmp"):  # a write cut short by the interruption
            stale.unlink()
        path = record.parent / CHECKPOINT_NAME
        checkpoint = read_checkpoint(path) if path.is_file() else None
        state = RunState.from_extra(checkpoint.extra) if checkpoint is not None else RunState()
        teacher = teacher if teacher is not None else _load_teacher(spec)
        return cls(spec, out, teacher, state, checkpoint, checkpoint_freq, **options)

    # -- running -------------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        """Train the remaining phases, evaluate, write the outputs; return the results record.

        The output folder is locked meanwhile: another run into it is refused.
        """
        if self.out is None:
            return self._execute()
        with FolderLock(Path(self.out)):
            return self._execute()

    def _execute(self) -> dict[str, Any]:
        schedule = self._lambda_schedule()
        model = build_model(self.spec, self.teacher, verbose=self.verbose, distill_lambda=schedule)
        if self.state.phase == "finetune":  # resumed in fine-tuning: the checkpoint holds the PPO
            model = self._finetuning_model(model)
        self._notify(model)
        restore_rng = None
        if self.checkpoint is not None:
            exact = load_into(model, self.checkpoint, seed=self.seeds.fresh_episodes)
            self.state.resumes.append({"from_step": self.checkpoint.num_timesteps, "exact": exact})
            restore_rng = self.checkpoint.state["rng"]
        self._t0 = time.perf_counter()
        self._write_run_record()
        if self.state.phase == "distill":
            self._train(model, self.spec.timesteps, restore_rng, continuing=self.checkpoint is not None)
            restore_rng = None  # the fine-tuning starts from its own seed
            if self.spec.finetune_steps > 0:
                model = self._hand_over(model)
                self._notify(model)
        if self.state.phase == "finetune":
            self._train(model, self.spec.total_timesteps, restore_rng, continuing=True)
        return self._finish(model)

    def describe_envs(self) -> str | None:
        """What the teacher acts in and what the student sees, in words (None: the plain env)."""
        if self.teacher_env.plain and self.student_env.plain:
            return None
        student = "the same" if self.student_env == self.teacher_env else self.student_env.describe()
        return f"the teacher acts in {self.teacher_env.describe()}; the student sees {student}"

    def _notify(self, model: BaseAlgorithm) -> None:
        if not self.student_env.plain:  # saved with it: evaluate() and load_agent build its env
            model.env_recipe = self.student_env.as_dict()  # type: ignore[attr-defined]
        if self.on_model is not None:
            self.on_model(model)

    def _train(
        self, model: BaseAlgorithm, until: int, restore_rng: dict[str, Any] | None, continuing: bool
    ) -> None:
        """Train the current phase's model until its step counter reaches ``until``."""
        callbacks: list[BaseCallback] = [self.evaluation]
        if self.folder is not None:
            checkpointer = PeriodicCheckpoint(
                self.folder / CHECKPOINT_NAME, self.checkpoint_freq, self._extra, restore_rng
            )
            self.checkpointers.append(checkpointer)
            callbacks.append(checkpointer)
        kwargs: dict[str, Any] = {}
        if self.state.phase == "finetune":
            warmup = int(self.spec.hp.get("critic_warmup") or 0)
            if warmup:
                assert self.state.finetune is not None
                callbacks.append(CriticWarmup(self.state.finetune["start"], warmup))
            kwargs["tb_log_name"] = algorithm_class(self.spec.method).__name__
        if not isinstance(model, DistillationMixin):  # PPO: SB3's class, checked from outside
            callbacks.append(FiniteRollouts())
        try:
            model.learn(
                until - model.num_timesteps,
                callback=CallbackList(callbacks),
                progress_bar=self.progress_bar,
                reset_num_timesteps=not continuing,
                **kwargs,
            )
        except ValueError as exc:  # torch refused a distribution: say so if a NaN is the cause
            error = diagnose_value_error(model)
            if error is not None:
                raise error from exc
            raise

    def _hand_over(self, model: BaseAlgorithm) -> BaseAlgorithm:
        """The boundary of a pipeline: evaluate, keep the distilled student, build the PPO."""
        if not self.evaluation.rows or self.evaluation.rows[-1]["timesteps"] < model.num_timesteps:
            self.evaluation.evaluate_now()
        buffer = io.BytesIO()
        model.save(buffer)
        self.distilled = buffer.getvalue()
        if self.folder is not None:  # before the first fine-tuning checkpoint, which needs it
            atomic_write(self.folder / DISTILLED_NAME, self.distilled)
        self.state.finetune = {
            "start": int(model.num_timesteps),
            "distilled_eval": dict(self.evaluation.rows[-1]),
        }
        ppo = self._finetuning_model(model)
        self.evaluation.carry_on()  # one curve: no second evaluation at the start of fine-tuning
        return ppo

    def _finetuning_model(self, distilled: BaseAlgorithm) -> BaseAlgorithm:
        """The fine-tuning PPO of a pipeline, from the distilled student, on fresh environments."""
        hp = self.spec.hp.get("finetune_hp")
        if hp is None:
            hp = finetune_hyperparameters(self.spec.env_id)
        seed = self.seeds.finetune
        n_envs = int(hp.get("n_envs", 1))
        env = self.student_env.make(n_envs=n_envs, seed=seed, wrapper_class=EpisodeRecorder)
        env = with_reward_normalization(env, hp)
        old_env = distilled.get_env()
        if old_env is not None:
            old_env.close()
        try:
            return finetune_model(
                distilled,
                hp,
                env,
                seed,
                verbose=self.verbose,
                tensorboard_log=self.spec.tensorboard,
                anchor=self._anchor(distilled, hp),
                share=self._finetuning_share(),
                critic_reset=bool(self.spec.hp.get("finetune_critic_reset")),
            )
        except TypeError as exc:  # a key PPO does not take
            raise PPDistillError(f"bad fine-tuning hyperparameter: {exc}") from exc

    def _finetuning_share(self) -> float:
        """The fine-tuning's share of the run's env steps (its schedules run over it)."""
        assert self.state.finetune is not None
        total = self.spec.total_timesteps
        return (total - int(self.state.finetune["start"])) / total

    def _anchor(
        self, distilled: BaseAlgorithm, hp: dict[str, Any]
    ) -> tuple[dict[str, th.Tensor], Schedule] | None:
        """The fine-tuning's KL anchor (``finetune_anchor`` > 0): the distilled student's
        weights, read back from what :meth:`_hand_over` kept (so a resumed run anchors to the
        same weights), and λ fading from the switch over ``finetune_anchor_steps``."""
        value = float(self.spec.hp.get("finetune_anchor") or 0.0)
        if value == 0.0:
            return None
        assert self.state.finetune is not None
        weights = self._distilled_weights(distilled.device)
        n_steps, n_envs = rollout_shape("ppo", hp)
        steps = int(self.spec.hp.get("finetune_anchor_steps") or 0)
        start, total = self.state.finetune["start"], self.spec.total_timesteps
        return weights, anchor_schedule(value, start, steps, total, n_steps * n_envs)

    def _distilled_weights(self, device: th.device) -> dict[str, th.Tensor]:
        """The distilled student's policy weights, read back from what :meth:`_hand_over` kept
        (so a resumed run has the same ones)."""
        assert self.distilled is not None
        _, params, _ = load_from_zip_file(io.BytesIO(self.distilled), load_data=False, device=device)
        assert params is not None
        return dict(params["policy"])

    def _distilled_final(self, model: BaseAlgorithm) -> dict[str, Any]:
        """A pipeline's distilled student on the final evaluation's episodes, so that "final −
        distilled" compares the same episodes (its periodic evaluation at the switch played
        other, fewer ones)."""
        # torch's global generator untouched (the copy's initialization, sampled actions): every
        # number recorded besides is what it was before this evaluation existed
        cuda = [model.device] if model.device.type == "cuda" else []
        with th.random.fork_rng(devices=cuda):
            policy = distilled_policy(model.policy, self._distilled_weights(model.device))
            result = self._on_final_episodes(policy)
        return result.as_dict()

    def _keep_better(self, model: BaseAlgorithm, episodes: int) -> dict[str, Any]:
        """``finetune_keep_better``: the distilled and the fine-tuned student on ``episodes``
        validation episodes of their own (never the final evaluation's), and the distilled
        student's weights put back into ``model`` when its mean is higher: what a user keeps
        is never below what distillation gave, as far as those episodes can tell."""
        spec, seed = self.spec, self.seeds.validation
        cuda = [model.device] if model.device.type == "cuda" else []
        # the final numbers as they would be without it: torch's generator forked, and copies
        # scored (a gSDE policy's exploration noise is state that scoring would otherwise move)
        with th.random.fork_rng(devices=cuda):
            weights = self._distilled_weights(model.device)
            means = [
                evaluate(
                    distilled_policy(model.policy, state),
                    self.student_env,
                    episodes,
                    spec.deterministic,
                    seed=seed,
                ).mean
                for state in (weights, model.policy.state_dict())
            ]
        distilled, fine_tuned = means
        kept = "distilled" if distilled > fine_tuned else "fine-tuned"
        if kept == "distilled":
            model.policy.load_state_dict(weights, strict=True)
        return {
            "episodes": episodes,
            "seed": seed,
            "distilled": distilled,
            "fine_tuned": fine_tuned,
            "kept": kept,
        }

    def _on_final_episodes(self, agent: Agent, record_observations: bool = False) -> EvalResult:
        """A student (or the distilled one) on the final evaluation's episodes, every one seeded."""
        spec = self.spec
        return evaluate(
            agent,
            self.student_env,
            spec.final_episodes,
            spec.deterministic,
            seed=self.seeds.final_evaluation,
            record_observations=record_observations,
        )

    def _train_time(self) -> float:
        return self.state.train_time_s + time.perf_counter() - self._t0

    def _extra(self) -> dict[str, Any]:
        """The state record at a checkpoint (the live parts read now)."""
        live = RunState(
            self.evaluation.state(),
            self._train_time(),
            self.state.resumes,
            self.state.references,
            self.state.finetune,
        )
        return live.to_extra()

    def _write_run_record(self) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.checkpoint is None:
            record = {"spec": asdict(self.spec), "checkpoint_freq": self.checkpoint_freq}
            atomic_write(self.folder / RUN_FILE, json.dumps(record, indent=2).encode())

    def _reference(self, key: str) -> float:
        """The teacher's (or a random policy's) return on the final evaluation's episodes,
        measured once."""
        value = self.state.references.get(key)
        if value is None:
            spec, seed = self.spec, self.seeds.final_evaluation
            if key == "teacher":
                value = evaluate(
                    self.teacher, self.teacher_env, spec.final_episodes, spec.deterministic, seed=seed
                ).mean
            else:
                value = random_policy_score(self.teacher_env, spec.final_episodes, seed=seed)
            self.state.references[key] = value
        return float(value)

    def _lambda_schedule(self) -> Schedule | None:
        """PPD's λ schedule of the spec (None: a plain λ), recorded for results.json."""
        spec = self.spec
        name = spec.hp.get("lambda_schedule")
        if name is None or spec.method != "ppd":
            return None
        kind, _ = parse_schedule_name(name)
        value = float(spec.hp.get("distill_lambda", 1.0))
        self.schedule_record = {"name": name, "lambda": value}
        teacher = random = None
        if kind == "performance":  # needs both returns first; a resumed run keeps the ones it began with
            teacher, random = self._reference("teacher"), self._reference("random")
            self.schedule_record.update(teacher_return=teacher, random_return=random)
        try:
            return named_schedule(name, value, teacher, random)
        except ValueError as exc:
            raise PPDistillError(f"lambda_schedule {name}: {exc}") from exc

    def _agreement(self, model: BaseAlgorithm, final: EvalResult) -> float | None:
        """Teacher-student action agreement on the final evaluation's observations (None for a
        recurrent teacher or student, whose outputs depend on the episode so far, not on one
        observation)."""
        if self.teacher.recurrent or isinstance(model.policy, RecurrentActorCriticPolicy):
            return None
        return action_agreement_on(model, self.teacher, final.observations, final.teacher_observations)

    def _finish(self, model: BaseAlgorithm) -> dict[str, Any]:
        """Final evaluation of student and teacher on the same episodes; outputs written."""
        spec = self.spec
        train_time = self._train_time()
        if not self.evaluation.rows or self.evaluation.rows[-1]["timesteps"] < model.num_timesteps:
            self.evaluation.evaluate_now()
        keep = int(spec.hp.get("finetune_keep_better") or 0)
        if keep and self.distilled is not None and self.state.finetune is not None:
            self.state.finetune["keep_better"] = self._keep_better(model, keep)
        final = self._on_final_episodes(model, record_observations=True)
        teacher_score = self._reference("teacher")
        if self.distilled is not None and self.state.finetune is not None:
            self.state.finetune["distilled_final"] = self._distilled_final(model)
        result = summarize(
            spec,
            model,
            self.teacher,
            final,
            teacher_score,
            self._reference("random"),
            self._agreement(model, final),
            curve=self.evaluation.rows,
            train_time=train_time,
            checkpoint_freq=self.checkpoint_freq if self.folder is not None else 0,
            checkpoint_write_times=[t for c in self.checkpointers for t in c.write_times],
            resumes=self.state.resumes,
            schedule=self.schedule_record,
            finetune=self.state.finetune,
        )
        if not (self.teacher_env.plain and self.student_env.plain):  # what each acted in
            result["env"] = {"teacher": self.teacher_env.as_dict(), "student": self.student_env.as_dict()}
        if self.out is not None:
            files = {DISTILLED_NAME: self.distilled} if self.distilled is not None else {}
            write_outputs(Path(self.out), spec, model, self.evaluation.rows, teacher_score, result, files)
            shutil.rmtree(Path(self.out) / CHECKPOINT_DIR, ignore_errors=True)
        return result


def check_outside_teacher(out: Path, teacher: str | Path) -> None:
    """Refuse an output folder that is the teacher's own: an rl-zoo run folder given as the
    teacher (or one inside it), the folder of a teacher zip, or its ``<stem>/`` side folder,
    where the run would overwrite the teacher's files or sit beside its ``vecnormalize.pkl``.

    :param out: the output folder
    :param teacher: the teacher's path (a zip or a folder)
    """
    path = Path(teacher).expanduser()
    if not path.exists():
        return  # loading it says so
    path, target = path.resolve(), Path(out).expanduser().resolve()
    inside = [path] if path.is_dir() else [path.parent / path.stem]
    equal = [path] if path.is_dir() else [path.parent, path.parent / path.stem]
    if target in equal or any(folder in target.parents for folder in inside):
        raise PPDistillError(
            f"--out {out} is inside the teacher's folder ({path if path.is_dir() else path.parent}); "
            "write the run somewhere else"
        )


def _load_teacher(spec: RunSpec) -> Teacher:
    target = {k: spec.hp[k] for k in TARGET_KEYWORDS if k in spec.hp}
    return load_teacher(spec.teacher, env_id=spec.env_id, **target)


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
    force: bool = False,
) -> dict[str, Any]:
    """Execute ``spec``; write its outputs to ``out`` (if given); return the results record.

    :param spec: the run
    :param out: output folder
    :param progress_bar: show SB3's progress bar
    :param verbose: SB3 verbosity
    :param teacher: an already loaded teacher (else loaded from ``spec.teacher``)
    :param teacher_score: the teacher's return on this run's final-evaluation episodes
        (``SeedPlan(spec.seed).final_evaluation``), if already known
    :param on_model: called with each model before it trains (e.g. to add a logger; twice
        in a pipeline: the distilling student, then the fine-tuning PPO)
    :param checkpoint_freq: env steps between checkpoints in ``out/checkpoint`` (None: a tenth
        of the budget; 0: none)
    :param random_score: a random policy's return on the same episodes, if already known (else
        measured)
    :param force: replace a finished run in ``out``
    """
    references = {"teacher": teacher_score, "random": random_score}
    options = {"progress_bar": progress_bar, "verbose": verbose, "on_model": on_model}
    return Run.start(spec, out, teacher, references, checkpoint_freq, force, **options).execute()


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
    options = {"progress_bar": progress_bar, "verbose": verbose, "on_model": on_model}
    return Run.resume(Path(out), teacher, **options).execute()
