"""One distillation run, end to end: what ``ppdistill distill`` and the benchmark harness execute.

A run loads the teacher, builds the student (a preset size relative to the teacher), trains
with periodic evaluation, evaluates the final student and the teacher on the same seeded
episodes, and writes to its output folder:

- ``student.zip``: the trained student (SB3 format; ``PPD.load`` & co. read it)
- ``eval.csv``: env steps, wall time, mean and std of the return at each evaluation
- ``learning_curve.png``: student return against env steps, the teacher as a line
- ``results.json``: the configuration, final scores, ratio, agreement, timings, versions
- ``config.yml``: the resolved hyperparameters

Everything is written to a temporary folder first and moved into place at the end, so an
interrupted run leaves the output folder as it was.
"""

from __future__ import annotations

import csv
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

from ppdistill.config import RUNNER_KEYS, algorithm_class, check_keys
from ppdistill.envs import make_vec_env
from ppdistill.errors import PPDistillError
from ppdistill.evaluation import action_agreement_on, evaluate
from ppdistill.networks import NormalizedFlattenExtractor, image_student_kwargs, mlp_student_arch
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

    def _evaluate(self) -> None:
        result = evaluate(self.model, self.env_id, self.n_episodes, self.deterministic, seed=self.seed)
        self.rows.append(
            {
                "timesteps": int(self.num_timesteps),
                "wall_time_s": round(time.perf_counter() - self._start, 3),
                "mean": result.mean,
                "std": result.std,
            }
        )
        self.logger.record("eval/mean_reward", result.mean)
        self._next = self.num_timesteps + self.freq

    def _on_training_start(self) -> None:
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


def build_model(spec: RunSpec, teacher: Teacher, verbose: int = 0) -> BaseAlgorithm:
    """The student model of ``spec.method``, on fresh training environments."""
    hp = {k: v for k, v in spec.hp.items() if k not in RUNNER_KEYS and k != "policy_kwargs"}
    n_envs = int(spec.hp.get("n_envs", 1))
    env = make_vec_env(spec.env_id, n_envs=n_envs, seed=spec.seed)
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
    curves: dict[str, list[dict[str, float]]], teacher_score: float | None, title: str, path: Path
) -> None:
    """Return against env steps, one line per curve, the teacher as a dashed line."""
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


def run(
    spec: RunSpec,
    out: Path | None = None,
    progress_bar: bool = False,
    verbose: int = 0,
    teacher: Teacher | None = None,
    teacher_score: float | None = None,
    on_model: Callable[[BaseAlgorithm], None] | None = None,
) -> dict[str, Any]:
    """Execute ``spec``; write its outputs to ``out`` (if given); return the results record.

    :param spec: the run
    :param out: output folder
    :param progress_bar: show SB3's progress bar
    :param verbose: SB3 verbosity
    :param teacher: an already loaded teacher (else loaded from ``spec.teacher``)
    :param teacher_score: the teacher's final-evaluation mean, if already known
    :param on_model: called with the model before training (e.g. to add a logger)
    """
    staged = StagedOutput(out) if out is not None else None
    try:
        temperature = float(spec.hp.get("temperature", DEFAULT_Q_TEMPERATURE))
        if teacher is None:
            teacher = load_teacher(spec.teacher, env_id=spec.env_id, temperature=temperature)
        model = build_model(spec, teacher, verbose=verbose)
        if on_model is not None:
            on_model(model)
        freq = spec.eval_freq or max(1, spec.timesteps // 10)
        evaluation = PeriodicEvaluation(
            spec.env_id, freq, spec.eval_episodes, spec.deterministic, spec.seed + 10_000
        )
        callbacks: list[BaseCallback] = [evaluation]
        t0 = time.perf_counter()
        model.learn(spec.timesteps, callback=CallbackList(callbacks), progress_bar=progress_bar)
        train_time = time.perf_counter() - t0
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
        if teacher_score is None:
            teacher_score = evaluate(
                teacher, spec.env_id, spec.final_episodes, spec.deterministic, seed=spec.seed + 20_000
            ).mean
        agreement = action_agreement_on(model, teacher, final.observations)
        policy_kwargs = student_policy_kwargs(spec, teacher)
        n_params = sum(p.numel() for p in model.policy.parameters())
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
            "versions": _versions(),
            "machine": machine_description(),
        }
        if staged is not None:
            model.save(staged.path("student.zip"))
            with staged.path("eval.csv").open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=["timesteps", "wall_time_s", "mean", "std"])
                writer.writeheader()
                writer.writerows(evaluation.rows)
            plot_curves(
                {spec.method: evaluation.rows},
                float(teacher_score),
                f"{spec.method} on {spec.env_id} ({spec.student} student)",
                staged.path("learning_curve.png"),
            )
            staged.path("config.yml").write_text(yaml.safe_dump(asdict(spec), sort_keys=False))
            staged.path("results.json").write_text(json.dumps(result, indent=2))
            staged.commit()
        return result
    except BaseException:
        if staged is not None:
            staged.discard()
        raise
