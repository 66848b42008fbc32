"""The ``ppdistill`` command line.

Every bad input ends with one line on stderr (``ppdistill: error: ...``) that says what is
wrong and what to do, and exit status 2; nothing half-written is left in ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from ppdistill.errors import PPDistillError

QUICKSTART_TEACHER = "assets/quickstart-teacher.zip"
QUICKSTART_ENV = "LunarLander-v3"


class CLIError(PPDistillError):
    """Bad command-line input."""


def _positive_int(text: str) -> int:
    try:
        value = int(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


# --------------------------------------------------------------------------------------
# table printing
# --------------------------------------------------------------------------------------


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


def _result_row(result: dict[str, Any]) -> list[str]:
    spec = result["spec"]
    ratio = result["ratio"]
    return [
        spec["method"] + (" → ppo" if result.get("finetune_start") is not None else ""),
        f"{result['score']:.1f} ± {result['score_std']:.1f}",
        f"{result['teacher_score']:.1f}",
        f"{ratio:.2f}" if ratio is not None else "-",
        f"{result['agreement']:.2f}",
        f"{result['env_steps']}",
        f"{result['train_time_s']:.0f}s",
    ]


RESULT_COLUMNS = [
    "method",
    "student return",
    "teacher",
    "student/teacher",
    "agreement",
    "env steps",
    "wall time",
]


# --------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------


# Options that define a run: --resume takes them from the run's folder instead.
_RUN_OPTIONS = ("teacher", "env", "timesteps", "out")
_SPEC_OPTIONS = ("lambda_schedule", "then_finetune", "critic_warmup", "finetune_hp")


def cmd_distill(args: argparse.Namespace) -> int:
    from ppdistill.config import parse_overrides, run_hyperparameters
    from ppdistill.runs import RunSpec, resume, run

    if args.resume is not None:
        given = [f"--{name}" for name in _RUN_OPTIONS if getattr(args, name) is not None]
        given += [f"--{name.replace('_', '-')}" for name in _SPEC_OPTIONS if getattr(args, name)]
        if given:
            raise CLIError(f"--resume continues the run saved in {args.resume}; drop {', '.join(given)}")
        _check_out(args.resume)
        with _pointing_at_checkpoint(args.resume):
            result = resume(args.resume, progress_bar=not args.no_progress, verbose=args.verbose)
        print_table(f"{result['spec']['method']} on {result['spec']['env_id']}", RESULT_COLUMNS,
                    [_result_row(result)])  # fmt: skip
        print(f"resumed; student, eval.csv, learning_curve.png and results.json in {args.resume}")
        return 0
    missing = [f"--{name}" for name in _RUN_OPTIONS if getattr(args, name) is None]
    if missing:
        raise CLIError(f"the following arguments are required: {', '.join(missing)} (or --resume DIR)")
    if args.tensorboard is not None:
        import importlib.util

        from ppdistill.errors import MissingExtraError

        if importlib.util.find_spec("tensorboard") is None:
            raise MissingExtraError("tensorboard", "--tensorboard", "tensorboard")
    overrides: dict[str, Any] = {}
    if args.n_envs is not None:
        overrides["n_envs"] = args.n_envs
    if args.distill_lambda is not None:
        if args.method != "ppd":
            raise CLIError("--lambda applies to --method ppd only")
        overrides["distill_lambda"] = args.distill_lambda
    if args.temperature is not None:
        overrides["temperature"] = args.temperature
    overrides.update(parse_overrides(args.hp))
    if args.lambda_schedule is not None:
        if args.method != "ppd":
            raise CLIError("--lambda-schedule applies to --method ppd only")
        overrides["lambda_schedule"] = args.lambda_schedule
    if args.then_finetune is None and (args.critic_warmup is not None or args.finetune_hp):
        raise CLIError("--critic-warmup and --finetune-hp need --then-finetune N")
    if args.then_finetune is not None:
        if args.method not in ("student-distill", "teacher-distill"):
            raise CLIError(
                "--then-finetune applies to --method student-distill or teacher-distill "
                "(PPD: --lambda-schedule distill-then-finetune:FRACTION)"
            )
        overrides["then_finetune"] = args.then_finetune
        overrides["critic_warmup"] = args.critic_warmup or 0
        finetune = {"n_envs": args.n_envs} if args.n_envs is not None else {}
        overrides["finetune_hp"] = {**finetune, **parse_overrides(args.finetune_hp)}
    hp = run_hyperparameters(args.env, args.method, overrides, args.config)
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
    )
    _check_out(args.out)
    with _pointing_at_checkpoint(args.out):
        result = run(
            spec,
            out=args.out,
            progress_bar=not args.no_progress,
            verbose=args.verbose,
            checkpoint_freq=args.checkpoint_freq,
        )
    print_table(f"{args.method} on {args.env}", RESULT_COLUMNS, [_result_row(result)])
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
    from ppdistill.errors import NonFiniteError
    from ppdistill.runs import unfinished_run

    try:
        yield
    except NonFiniteError as exc:
        if unfinished_run(out) is None:
            raise
        raise NonFiniteError(f"{exc} (the last good checkpoint is in {out}/checkpoint)") from exc
    except KeyboardInterrupt:
        if unfinished_run(out) is not None:
            sys.stderr.write(f"ppdistill: interrupted; continue with: ppdistill distill --resume {out}\n")
            raise SystemExit(130) from None
        raise


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; give a folder path")


def cmd_quickstart(args: argparse.Namespace) -> int:
    from ppdistill.config import hyperparameters
    from ppdistill.evaluation import evaluate
    from ppdistill.runs import RunSpec, StagedOutput, plot_curves, run
    from ppdistill.teachers import load_teacher

    _check_out(args.out)
    teacher_path = resources.files("ppdistill").joinpath(QUICKSTART_TEACHER)
    env_id = QUICKSTART_ENV
    teacher = load_teacher(Path(str(teacher_path)), env_id=env_id)
    staged = StagedOutput(args.out)
    try:
        t0 = time.perf_counter()
        teacher_score = evaluate(teacher, env_id, args.episodes, True, seed=args.seed + 20_000).mean
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
                hp=hyperparameters(env_id, method),
                eval_episodes=5,
                final_episodes=args.episodes,
            )
            print(f"distilling with {method} ({budget} env steps)...", flush=True)
            result = run(
                spec, out=staged.path(method), teacher=teacher, teacher_score=teacher_score, checkpoint_freq=0
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
        [_result_row(r) for r in results],
    )
    print(
        f"total {summary['wall_time_s']:.0f}s; results.json, students and learning_curves.png in {args.out}"
    )
    return 0


def cmd_teacher_train(args: argparse.Namespace) -> int:
    from ppdistill.config import parse_overrides
    from ppdistill.evaluation import evaluate
    from ppdistill.teacher_tools import train_teacher
    from ppdistill.teachers import load_teacher

    if args.out.exists() and args.out.is_dir():
        raise CLIError(f"--out {args.out} is a folder; give the path of the .zip to write")
    out = args.out if args.out.suffix == ".zip" else args.out.with_suffix(".zip")
    t0 = time.perf_counter()
    train_teacher(
        args.env,
        args.algo,
        out,
        args.timesteps,
        args.seed,
        parse_overrides(args.hp),
        progress_bar=not args.no_progress,
    )
    score = evaluate(load_teacher(out, env_id=args.env), args.env, n_episodes=20, seed=args.seed + 20_000)
    print(f"teacher saved to {out} ({time.perf_counter() - t0:.0f}s); deterministic return {score}")
    return 0


def cmd_teacher_corrupt(args: argparse.Namespace) -> int:
    from ppdistill.teacher_tools import calibrate_sigma, corrupt_teacher

    out = args.output if args.output.suffix == ".zip" else args.output.with_suffix(".zip")
    sigma = args.sigma
    if args.target_fraction is not None:
        if args.env is None:
            raise CLIError("--target-fraction needs --env to score the corrupted teachers on")
        found = calibrate_sigma(args.input, args.env, args.target_fraction, seed=args.seed, log=print)
        sigma = found["sigma"]
        print(f"sigma {sigma:.4g} keeps {found['fraction']:.2f} of the teacher's normalized score")
    summary = corrupt_teacher(args.input, out, sigma=sigma, seed=args.seed)
    print(
        f"{out}: {summary['weights']} weights in {summary['tensors']} tensors "
        f"perturbed with N(0, {sigma:.4g}²)"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ppdistill.evaluation import evaluate
    from ppdistill.teachers import load_teacher

    agent = load_teacher(args.model, env_id=args.env)
    result = evaluate(
        agent, args.env, n_episodes=args.episodes, deterministic=not args.stochastic, seed=args.seed
    )
    mode = "stochastic" if args.stochastic else "deterministic"
    print(f"{args.model} on {args.env}, {result.n_episodes} {mode} episodes:")
    print(f"  mean {result.mean:.2f}  std {result.std:.2f}  IQM {result.iqm:.2f}")
    if args.json:
        payload = {
            "model": str(args.model),
            "env_id": args.env,
            "deterministic": not args.stochastic,
            **result.as_dict(),
        }
        from ppdistill.teacher_tools import _atomic_write

        _atomic_write(args.json, json.dumps(payload, indent=2).encode())
    return 0


def cmd_students(args: argparse.Namespace) -> int:
    import numpy as np
    from gymnasium import spaces
    from stable_baselines3.common.preprocessing import is_image_space

    from ppdistill.distributions import param_dim
    from ppdistill.envs import env_spaces
    from ppdistill.networks import STUDENT_SIZES, image_student_kwargs, mlp_param_count, mlp_student_arch
    from ppdistill.teachers import load_teacher

    obs_space, act_space = env_spaces(args.env)
    # the actor's output: logits, or means (log-stds are one free vector)
    out_dim = param_dim(act_space) // 2 if isinstance(act_space, spaces.Box) else param_dim(act_space)
    if is_image_space(obs_space):
        rows = []
        for size in STUDENT_SIZES:
            kwargs = image_student_kwargs(size)
            net = kwargs["features_extractor_class"](obs_space, **kwargs["features_extractor_kwargs"])
            trunk = sum(p.numel() for p in net.parameters())
            fc = kwargs["features_extractor_kwargs"]["features_dim"]
            name = f"{kwargs['features_extractor_class'].__name__.replace('Extractor', '')} "
            name += f"{tuple(kwargs['features_extractor_kwargs']['channels'])} + FC {fc}"
            rows.append(
                [size, name, f"{trunk + fc * out_dim + out_dim}", f"{trunk + fc + 1}", "shared trunk"]
            )
        print_table(
            f"Image student presets for {args.env} (input {obs_space.shape}), "
            "around an IMPALA (16, 32, 32) teacher",
            ["size", "network", "actor params", "critic params", "note"],
            rows,
        )
        return 0
    if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
        raise CLIError(
            f"{args.env} has structured observations {obs_space}; the presets need flat or image ones"
        )
    teacher_arch = [64, 64]
    source = "SB3's default MlpPolicy (64, 64)"
    if args.teacher is not None:
        teacher = load_teacher(args.teacher, env_id=args.env)
        teacher_arch = teacher.hidden_layers or teacher_arch
        source = f"{args.teacher} ({', '.join(map(str, teacher_arch))})"
    obs_dim = int(np.prod(obs_space.shape))
    teacher_actor = mlp_param_count(obs_dim, teacher_arch, out_dim)
    rows = []
    for size in STUDENT_SIZES:
        arch = mlp_student_arch(size, teacher_arch)
        actor = mlp_param_count(obs_dim, arch, out_dim)
        critic = mlp_param_count(obs_dim, arch, 1)
        rows.append([size, str(tuple(arch)), f"{actor}", f"{critic}", f"{actor / teacher_actor:.2f}x"])
    print_table(
        f"Student presets for {args.env}, relative to {source}",
        ["size", "hidden layers", "actor params", "critic params", "actor vs teacher"],
        rows,
    )
    return 0


def cmd_bench_run(args: argparse.Namespace) -> int:
    from ppdistill.bench import dry_run, load_suite, run_suite

    suite = load_suite(args.suite)
    if args.dry_run:
        problems = dry_run(suite)
        for p in problems:
            print(f"  warning: {p}")
        return 0
    records = run_suite(suite, args.out, jobs=args.jobs, backend=args.backend, address=args.address)
    failed = [r for r in records if r.get("status") != "ok"]
    print(
        f"{len(records) - len(failed)} runs ok, {len(failed)} failed; "
        f"`ppdistill bench report {args.out}` next"
    )
    return 0


def cmd_bench_report(args: argparse.Namespace) -> int:
    from ppdistill.bench import build_report

    path = build_report(args.dir, reps=args.reps)
    print(f"report written to {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ppdistill.export import export_onnx

    out = args.out or args.student.with_suffix(".onnx")
    report = export_onnx(args.student, out, n_check=args.check, seed=args.seed)
    print(f"{report.path}: {report.input} -> {', '.join(report.outputs)}")
    print(f"  observation normalization: {report.normalization}")
    print(f"  ONNX Runtime against PyTorch on {report.parity}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ppdistill.compare import COLUMNS, compare, environment_note, table_rows

    stats = compare(
        args.teacher, args.student, args.env, episodes=args.episodes, seed=args.seed, threads=args.threads
    )
    print_table(
        f"{args.env}: teacher against student ({args.episodes} deterministic episodes; "
        f"{environment_note(args.threads)})",
        COLUMNS,
        table_rows(stats),
    )
    if args.json:
        from ppdistill.teacher_tools import _atomic_write

        payload = {"env_id": args.env, "threads": args.threads, "agents": [s.as_dict() for s in stats]}
        _atomic_write(args.json, json.dumps(payload, indent=2).encode())
    return 0


# --------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ppdistill", description="Policy distillation for stable-baselines3 (PPD and baselines)."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("quickstart", help="distill the bundled teacher with all three methods (2-3 minutes)")
    p.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="output folder")
    p.add_argument("--timesteps", type=_positive_int, default=80_000, help="env steps per method")
    p.add_argument("--episodes", type=_positive_int, default=20, help="final evaluation episodes")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("distill", help="distill a teacher into a student")
    p.add_argument("--teacher", type=Path, help="teacher .zip or rl-zoo run folder (required)")
    p.add_argument("--env", help="gymnasium environment id (required)")
    p.add_argument("--method", choices=["ppd", "student-distill", "teacher-distill", "ppo"], default="ppd")
    p.add_argument("--student", default="smaller", help="smaller, same, larger, or hidden sizes like 64,64")
    p.add_argument("--timesteps", type=_positive_int, help="env steps (required)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--n-envs", type=_positive_int, default=None, help="parallel environments (config default: 8)"
    )
    p.add_argument("--lambda", dest="distill_lambda", type=_non_negative_float, default=None, help="PPD's λ")
    p.add_argument(
        "--lambda-schedule",
        default=None,
        metavar="NAME",
        help="PPD's λ over training: constant, linear, distill-then-finetune:FRACTION, performance",
    )
    p.add_argument(
        "--then-finetune",
        type=_positive_int,
        default=None,
        metavar="N",
        help="student-/teacher-distill: then N more env steps of PPO fine-tuning of the same student",
    )
    p.add_argument(
        "--critic-warmup",
        type=_non_negative_int,
        default=None,
        metavar="M",
        help="with --then-finetune: only the critic learns in the first M fine-tuning steps",
    )
    p.add_argument(
        "--finetune-hp",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyperparameter of the fine-tuning PPO (default: the config's ppo section)",
    )
    p.add_argument("--temperature", type=float, default=None, help="τ of softmax(Q/τ) for DQN teachers")
    p.add_argument("--config", type=Path, default=None, help="hyperparameter YAML (default: the shipped one)")
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE", help="override a hyperparameter")
    p.add_argument("--tensorboard", type=Path, default=None, help="TensorBoard log folder")
    p.add_argument("--eval-freq", type=_positive_int, default=None, help="env steps between evaluations")
    p.add_argument("--eval-episodes", type=_positive_int, default=10, help="episodes per periodic evaluation")
    p.add_argument(
        "--final-episodes", type=_positive_int, default=20, help="episodes of the final evaluation"
    )
    p.add_argument("--stochastic", action="store_true", help="evaluate with sampled actions (Procgen's rule)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="count", default=0, help="print SB3's training log")
    p.add_argument(
        "--checkpoint-freq",
        type=_non_negative_int,
        default=None,
        help="env steps between checkpoints in OUT/checkpoint (default: a tenth of --timesteps; 0: none)",
    )
    p.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="DIR",
        help="continue the unfinished run in DIR (instead of the required options)",
    )
    p.add_argument("--out", type=Path, help="output folder (required)")
    p.set_defaults(func=cmd_distill)

    teacher = sub.add_parser("teacher", help="train or corrupt a teacher")
    tsub = teacher.add_subparsers(dest="teacher_command", required=True, parser_class=_Parser)
    p = tsub.add_parser("train", help="train a teacher with tuned settings")
    p.add_argument("--env", required=True)
    p.add_argument("--algo", choices=["ppo", "dqn", "td3", "sac"], default="ppo")
    p.add_argument("--timesteps", type=_positive_int, default=None, help="default: the tuned budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", type=Path, required=True, help="path of the .zip to write")
    p.set_defaults(func=cmd_teacher_train)
    p = tsub.add_parser(
        "corrupt", help="perturb every weight with Gaussian noise (the paper's imperfect teacher)"
    )
    p.add_argument("input", type=Path, help="teacher .zip or rl-zoo folder")
    p.add_argument("output", type=Path, help="path of the corrupted .zip")
    p.add_argument("--sigma", type=_non_negative_float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--target-fraction",
        type=float,
        default=None,
        help="instead of --sigma: find the σ that keeps this fraction of the teacher's score (needs --env)",
    )
    p.add_argument("--env", default=None, help="environment for --target-fraction")
    p.set_defaults(func=cmd_teacher_corrupt)

    p = sub.add_parser("evaluate", help="evaluate a teacher or a student")
    p.add_argument("--model", type=Path, required=True, help=".zip or rl-zoo folder")
    p.add_argument("--env", required=True)
    p.add_argument("--episodes", type=_positive_int, default=20)
    p.add_argument("--stochastic", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    p.set_defaults(func=cmd_evaluate)

    bench = sub.add_parser("bench", help="run benchmark suites and report on them")
    bsub = bench.add_subparsers(dest="bench_command", required=True, parser_class=_Parser)
    p = bsub.add_parser("run", help="run (or resume) a suite: env x method x student size x seed")
    p.add_argument("suite", type=Path, help="suite YAML (see benchmarks/suites/)")
    p.add_argument("--out", type=Path, required=True, help="output folder (resumed if it exists)")
    p.add_argument("--jobs", type=_positive_int, default=max(1, (os.cpu_count() or 2)), help="runs at a time")
    p.add_argument("--backend", choices=["local", "ray"], default="local")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local instance)")
    p.add_argument("--dry-run", action="store_true", help="list the grid and check teachers without running")
    p.set_defaults(func=cmd_bench_run)
    p = bsub.add_parser("report", help="tables, IQM with bootstrap CIs, curves and a Markdown report")
    p.add_argument("dir", type=Path, help="a folder written by `bench run`")
    p.add_argument("--reps", type=_positive_int, default=2000, help="bootstrap resamples")
    p.set_defaults(func=cmd_bench_report)

    p = sub.add_parser("students", help="list the smaller / same / larger student presets")
    p.add_argument("--env", required=True)
    p.add_argument("--teacher", type=Path, default=None)
    p.set_defaults(func=cmd_students)

    p = sub.add_parser("export", help="export a student's deterministic policy to ONNX (extra [onnx])")
    p.add_argument("student", type=Path, help="the student's .zip")
    p.add_argument("--out", type=Path, default=None, help="the .onnx file (default: beside the student)")
    p.add_argument("--check", type=_positive_int, default=1000, help="observations for the parity check")
    p.add_argument("--seed", type=int, default=0, help="seed of those observations")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("compare", help="teacher against student: size, CPU latency, return")
    p.add_argument("teacher", type=Path, help="teacher .zip or rl-zoo folder")
    p.add_argument("student", type=Path, help="student .zip")
    p.add_argument("--env", required=True)
    p.add_argument("--episodes", type=_positive_int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_positive_int, default=1, help="torch threads while timing")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except PPDistillError as exc:
        sys.stderr.write(f"ppdistill: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("ppdistill: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
