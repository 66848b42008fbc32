"""``ppdistill distill`` and ``ppdistill quickstart``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from ppdistill.cli.args import CLIError, Terminated
from ppdistill.cli.tables import RESULT_COLUMNS, print_table, result_row
from ppdistill.core.files import check_out_folder, check_writable
from ppdistill.core.seeds import SeedPlan

QUICKSTART_TEACHER = "assets/quickstart-teacher.zip"


QUICKSTART_ENV = "LunarLander-v3"


# Options that define a run: --resume takes them from the run's folder instead.
_RUN_OPTIONS = ("teacher", "env", "timesteps", "out")


# Options that --resume refuses besides those: the run's settings (the pipeline's keys come
# from ppdistill.experiment.config.PIPELINE_KEYS, imported when the command runs).
_SPEC_OPTIONS = ("lambda_schedule", "teacher_obs", "student_policy")


def cmd_distill(args: argparse.Namespace) -> int:
    from ppdistill.experiment.config import PIPELINE_KEYS, parse_overrides, run_hyperparameters
    from ppdistill.experiment.runner import Run, resume
    from ppdistill.experiment.spec import RunSpec, student_reads_vector
    from ppdistill.teachers.loading import kind_of_source

    if args.resume is not None:
        given = [f"--{name}" for name in _RUN_OPTIONS if getattr(args, name) is not None]
        given += [
            f"--{name.replace('_', '-')}" for name in (*_SPEC_OPTIONS, *PIPELINE_KEYS) if getattr(args, name)
        ]
        if given:
            raise CLIError(f"--resume continues the run saved in {args.resume}; drop {', '.join(given)}")
        with _pointing_at_checkpoint(args.resume):
            result = resume(args.resume, progress_bar=not args.no_progress, verbose=args.verbose)
        print_table(f"{result['spec']['method']} on {result['spec']['env_id']}", RESULT_COLUMNS,
                    [result_row(result)])  # fmt: skip
        print(f"resumed; student, eval.csv, learning_curve.png and results.json in {args.resume}")
        return 0
    missing = [f"--{name}" for name in _RUN_OPTIONS if getattr(args, name) is None]
    if missing:
        raise CLIError(f"the following arguments are required: {', '.join(missing)} (or --resume DIR)")
    if args.tensorboard is not None:
        import importlib.util

        from ppdistill.core.errors import MissingExtraError

        if importlib.util.find_spec("tensorboard") is None:
            raise MissingExtraError("tensorboard", "--tensorboard", "tensorboard")
        check_writable(args.tensorboard, f"--tensorboard {args.tensorboard}")
    overrides: dict[str, Any] = {}
    if args.n_envs is not None:
        overrides["n_envs"] = args.n_envs
    if args.distill_lambda is not None:
        if args.method != "ppd":
            raise CLIError("--lambda applies to --method ppd only")
        overrides["distill_lambda"] = args.distill_lambda
    if args.temperature is not None:
        overrides["temperature"] = args.temperature
    if args.student_policy is not None:
        overrides["student_policy"] = args.student_policy
    overrides.update(parse_overrides(args.hp))
    if args.lambda_schedule is not None:
        if args.method != "ppd":
            raise CLIError("--lambda-schedule applies to --method ppd only")
        overrides["lambda_schedule"] = args.lambda_schedule
    pipeline_options = (
        args.critic_warmup,
        args.finetune_critic_reset,
        args.finetune_anchor,
        args.finetune_anchor_steps,
        args.finetune_keep_better,
    )
    if args.then_finetune is None and (any(o is not None for o in pipeline_options) or args.finetune_hp):
        raise CLIError(
            "--critic-warmup, --finetune-critic-reset, --finetune-anchor(-steps), "
            "--finetune-keep-better and --finetune-hp "
            "need --then-finetune N"
        )
    if args.then_finetune is not None:
        if args.method == "ppo":
            raise CLIError("--then-finetune applies to --method ppd, student-distill or teacher-distill")
        overrides["then_finetune"] = args.then_finetune
        overrides["critic_warmup"] = args.critic_warmup or 0
        if args.finetune_critic_reset is not None:
            overrides["finetune_critic_reset"] = True
        if args.finetune_anchor is not None:
            overrides["finetune_anchor"] = args.finetune_anchor
        if args.finetune_anchor_steps is not None:
            overrides["finetune_anchor_steps"] = args.finetune_anchor_steps
        if args.finetune_keep_better is not None:
            overrides["finetune_keep_better"] = args.finetune_keep_better
        finetune = {"n_envs": args.n_envs} if args.n_envs is not None else {}
        overrides["finetune_hp"] = {**finetune, **parse_overrides(args.finetune_hp, option="--finetune-hp")}
    hp = run_hyperparameters(
        args.env,
        args.method,
        overrides,
        args.config,
        kind_of_source(args.teacher),
        vector_observations=student_reads_vector(args.teacher, args.env, args.student_obs),
    )
    spec = RunSpec(
        env_id=args.env,
        method=args.method,
        teacher=str(args.teacher),
        timesteps=args.timesteps,
        student=args.student,
        seed=args.seed,
        hp=hp,
        eval_freq=args.eval_freq or 0,
        eval_episodes=args.eval_episodes,
        final_episodes=args.final_episodes,
        deterministic=not args.stochastic,
        tensorboard=str(args.tensorboard) if args.tensorboard else None,
        student_obs=args.student_obs,
        teacher_obs=args.teacher_obs,
    )
    check_out_folder(args.out, force=args.force)
    with _pointing_at_checkpoint(args.out):
        started = Run.start(
            spec,
            out=args.out,
            checkpoint_freq=args.checkpoint_freq,
            force=args.force,
            progress_bar=not args.no_progress,
            verbose=args.verbose,
        )
        envs = started.describe_envs()
        if envs is not None:
            print(envs, flush=True)
        result = started.execute()
    print_table(f"{args.method} on {args.env}", RESULT_COLUMNS, [result_row(result)])
    if result.get("finetune_start") is not None:
        print(
            f"PPO fine-tuning from env step {result['finetune_start']}; "
            "distilled.zip is the student before it"
        )
    print(f"student, eval.csv, learning_curve.png and results.json in {args.out}")
    return 0


@contextlib.contextmanager
def _pointing_at_checkpoint(out: Path) -> Iterator[None]:
    """A run stopped by a NaN or by Ctrl-C says that it can be resumed (in its one line)."""
    from ppdistill.core.errors import NonFiniteError
    from ppdistill.experiment.runner import unfinished_run

    try:
        yield
    except NonFiniteError as exc:
        if unfinished_run(out) is None:
            raise
        raise NonFiniteError(f"{exc} (the last good checkpoint is in {out}/checkpoint)") from exc
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        if unfinished_run(out) is not None:
            terminated = isinstance(exc, Terminated)
            what = "terminated" if terminated else "interrupted"
            sys.stderr.write(f"ppdistill: {what}; continue with: ppdistill distill --resume {out}\n")
            raise SystemExit(143 if terminated else 130) from None
        raise


def cmd_quickstart(args: argparse.Namespace) -> int:
    from ppdistill.core.files import StagedOutput
    from ppdistill.evaluation import evaluate, random_policy_score
    from ppdistill.experiment.config import hyperparameters
    from ppdistill.experiment.outputs import plot_curves
    from ppdistill.experiment.runner import run
    from ppdistill.experiment.spec import RunSpec
    from ppdistill.teachers.loading import kind_of_source, load_teacher

    check_out_folder(args.out, force=args.force)
    teacher_path = resources.files("ppdistill").joinpath(QUICKSTART_TEACHER)
    env_id = QUICKSTART_ENV
    teacher = load_teacher(Path(str(teacher_path)), env_id=env_id)
    staged = StagedOutput(args.out)
    try:
        t0 = time.perf_counter()
        episodes_seed = SeedPlan(args.seed).final_evaluation  # the runs' own final-evaluation episodes
        teacher_score = evaluate(teacher, env_id, args.episodes, True, seed=episodes_seed).mean
        random_score = random_policy_score(env_id, args.episodes, seed=episodes_seed)
        print(
            f"teacher ({teacher_path.name}, hidden {teacher.hidden_layers}): {teacher_score:.1f} on {env_id}"
        )
        results = []
        budgets = {
            "ppd": args.timesteps,
            "student-distill": args.timesteps,
            "teacher-distill": args.timesteps,
        }
        for method, budget in budgets.items():
            spec = RunSpec(
                env_id=env_id,
                method=method,
                teacher=str(teacher_path),
                timesteps=budget,
                student="smaller",
                seed=args.seed,
                hp=hyperparameters(env_id, method, teacher_kind=kind_of_source(teacher_path)),
                eval_episodes=5,
                final_episodes=args.episodes,
            )
            print(f"distilling with {method} ({budget} env steps)...", flush=True)
            result = run(
                spec,
                out=staged.path(method),
                teacher=teacher,
                teacher_score=teacher_score,
                random_score=random_score,
                checkpoint_freq=0,
            )
            os.replace(staged.path(method) / "student.zip", staged.path(f"student-{method}.zip"))
            results.append(result)
        plot_curves(
            {r["spec"]["method"]: r["curve"] for r in results},
            teacher_score,
            f"{env_id}: (64, 64) teacher into a {results[0]['student_net_arch']['pi']} student",
            staged.path("learning_curves.png"),
        )
        summary = {
            "env_id": env_id,
            "teacher": str(teacher_path),
            "teacher_score": teacher_score,
            "random_score": random_score,
            "runs": results,
            "wall_time_s": round(time.perf_counter() - t0, 1),
        }
        staged.path("results.json").write_text(json.dumps(summary, indent=2))
        staged.commit()
    except BaseException:
        staged.discard()
        raise
    print_table(
        f"{env_id}: (64, 64) teacher → {results[0]['student_net_arch']['pi']} student, "
        f"{args.episodes} deterministic episodes",
        RESULT_COLUMNS,
        [result_row(r) for r in results],
    )
    print(
        f"total {summary['wall_time_s']:.0f}s; results.json, students and learning_curves.png in {args.out}"
    )
    return 0
