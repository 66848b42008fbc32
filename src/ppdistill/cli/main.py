"""The ``ppdistill`` command line.

Every bad input ends with one line on stderr (``ppdistill: error: ...``) that says what is
wrong and what to do, and exit status 2; nothing half-written is left in ``--out``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from ppdistill.cli.args import Parser, Terminated, non_negative_float, non_negative_int, positive_int
from ppdistill.cli.bench import cmd_bench_report, cmd_bench_run
from ppdistill.cli.deploy import cmd_compare, cmd_export
from ppdistill.cli.distill import cmd_distill, cmd_quickstart
from ppdistill.cli.info import cmd_evaluate, cmd_students
from ppdistill.cli.teacher import cmd_teacher_corrupt, cmd_teacher_inspect, cmd_teacher_train
from ppdistill.core.errors import PPDistillError
from ppdistill.core.version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="ppdistill", description="Policy distillation for stable-baselines3 (PPD and baselines)."
    )
    parser.add_argument("--version", action="version", version=f"ppdistill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("quickstart", help="distill the bundled teacher with all three methods (2-3 minutes)")
    p.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="output folder")
    p.add_argument("--timesteps", type=positive_int, default=80_000, help="env steps per method")
    p.add_argument("--episodes", type=positive_int, default=20, help="final evaluation episodes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--force", action="store_true", help="replace the results of an earlier quickstart in --out"
    )
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("distill", help="distill a teacher into a student")
    # sources are strings: hf://ORG/NAME would lose a slash as a Path
    p.add_argument(
        "--teacher", help="teacher .zip, rl-zoo run folder, exported .onnx or hf://ORG/NAME (required)"
    )
    p.add_argument("--env", help="gymnasium environment id (required)")
    p.add_argument("--method", choices=["ppd", "student-distill", "teacher-distill", "ppo"], default="ppd")
    p.add_argument(
        "--student",
        default="smaller",
        help="tiny (MLP only), smaller, same, larger, or hidden sizes like 64,64",
    )
    p.add_argument(
        "--student-obs",
        default="teacher",
        metavar="teacher|raw|positions|positions-change|KEYS",
        help="what the student sees: the teacher's observation; the environment's own where the "
        "teacher's adds inputs (an rl-zoo time feature or frame stack); the positions without the "
        "velocities; the positions and their change since the step before; or groups of a Dict "
        "observation, comma separated (e.g. policy)",
    )
    p.add_argument(
        "--teacher-obs",
        default=None,
        metavar="KEYS",
        help="with --student-obs KEYS: the groups the teacher reads, comma separated "
        "(e.g. policy,privileged; default: those of the teacher's observation space)",
    )
    p.add_argument(
        "--student-policy",
        choices=["feedforward", "lstm"],
        default=None,
        help="the student's network: feedforward (MLP or CNN, default) or lstm (sb3-contrib's "
        "RecurrentPPO policy; ppo: RecurrentPPO)",
    )
    p.add_argument("--timesteps", type=positive_int, help="env steps (required)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--n-envs", type=positive_int, default=None, help="parallel environments (config default: 8)"
    )
    p.add_argument("--lambda", dest="distill_lambda", type=non_negative_float, default=None, help="PPD's λ")
    p.add_argument(
        "--lambda-schedule",
        default=None,
        metavar="NAME",
        help="PPD's λ over training: constant, linear, distill-then-finetune:FRACTION, performance",
    )
    p.add_argument(
        "--then-finetune",
        type=positive_int,
        default=None,
        metavar="N",
        help="ppd, student-/teacher-distill: then N more env steps of PPO fine-tuning of the same student",
    )
    p.add_argument(
        "--critic-warmup",
        type=non_negative_int,
        default=None,
        metavar="M",
        help="with --then-finetune: only the critic learns in the first M fine-tuning steps",
    )
    p.add_argument(
        "--finetune-critic-reset",
        action="store_true",
        default=None,
        help="with --then-finetune: the fine-tuning starts from a newly initialized critic "
        "(the actor kept): a distilled critic can be saturated, its values constant",
    )
    p.add_argument(
        "--finetune-anchor",
        type=non_negative_float,
        default=None,
        metavar="LAMBDA",
        help="with --then-finetune: hold the fine-tuned policy to the distilled student with a KL "
        "term of this λ, fading to 0 (default 0: plain PPO)",
    )
    p.add_argument(
        "--finetune-anchor-steps",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="with --finetune-anchor: env steps over which λ fades to 0 (default: all of the fine-tuning)",
    )
    p.add_argument(
        "--finetune-keep-better",
        type=non_negative_int,
        default=None,
        metavar="K",
        help="with --then-finetune: score the distilled and the fine-tuned student on K validation "
        "episodes at the end and keep the better one (default 0: the fine-tuned one)",
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
    p.add_argument("--eval-freq", type=positive_int, default=None, help="env steps between evaluations")
    p.add_argument("--eval-episodes", type=positive_int, default=10, help="episodes per periodic evaluation")
    p.add_argument("--final-episodes", type=positive_int, default=20, help="episodes of the final evaluation")
    p.add_argument("--stochastic", action="store_true", help="evaluate with sampled actions (Procgen's rule)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="count", default=0, help="print SB3's training log")
    p.add_argument(
        "--checkpoint-freq",
        type=non_negative_int,
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
    p.add_argument("--force", action="store_true", help="replace a finished run in --out")
    p.set_defaults(func=cmd_distill)

    teacher = sub.add_parser("teacher", help="train or corrupt a teacher")
    tsub = teacher.add_subparsers(dest="teacher_command", required=True, parser_class=Parser)
    p = tsub.add_parser("train", help="train a teacher with tuned settings")
    p.add_argument("--env", required=True)
    p.add_argument("--algo", choices=["ppo", "dqn", "qrdqn", "td3", "sac", "tqc"], default="ppo")
    p.add_argument("--timesteps", type=positive_int, default=None, help="default: the tuned budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", type=Path, required=True, help="path of the .zip to write")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.set_defaults(func=cmd_teacher_train)
    p = tsub.add_parser(
        "corrupt", help="perturb every weight with Gaussian noise (the paper's imperfect teacher)"
    )
    p.add_argument("input", type=Path, help="teacher .zip or rl-zoo folder")
    p.add_argument("output", type=Path, help="path of the corrupted .zip")
    p.add_argument("--sigma", type=non_negative_float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--target-fraction",
        type=float,
        default=None,
        help="instead of --sigma: find the σ that keeps this fraction of the teacher's score (needs --env)",
    )
    p.add_argument("--env", default=None, help="environment for --target-fraction")
    p.add_argument("--force", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=cmd_teacher_corrupt)
    p = tsub.add_parser("inspect", help="how a teacher will be read: kind, target, spaces, wrappers, network")
    p.add_argument("path", help="teacher .zip, rl-zoo run folder, or another model the loader reads")
    p.add_argument("--env", default=None, help="check its spaces against this environment and score it there")
    p.add_argument("--episodes", type=positive_int, default=10, help="episodes of the score (with --env)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write what was found to this JSON file")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=cmd_teacher_inspect)

    p = sub.add_parser("evaluate", help="evaluate a teacher or a student")
    p.add_argument("--model", required=True, help=".zip, rl-zoo folder, exported .onnx or hf://ORG/NAME")
    p.add_argument("--env", required=True)
    p.add_argument("--episodes", type=positive_int, default=20)
    p.add_argument("--stochastic", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=cmd_evaluate)

    bench = sub.add_parser("bench", help="run benchmark suites and report on them")
    bsub = bench.add_subparsers(dest="bench_command", required=True, parser_class=Parser)
    p = bsub.add_parser("run", help="run (or resume) a suite: env x method x student size x seed")
    p.add_argument("suite", type=Path, help="suite YAML (see benchmarks/suites/)")
    p.add_argument("--out", type=Path, required=True, help="output folder (resumed if it exists)")
    p.add_argument("--jobs", type=positive_int, default=max(1, (os.cpu_count() or 2)), help="runs at a time")
    p.add_argument("--backend", choices=["local", "ray"], default="local")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local instance)")
    p.add_argument("--dry-run", action="store_true", help="list the grid and check teachers without running")
    p.add_argument(
        "--half",
        choices=["tune", "verify"],
        default=None,
        help="run one half of a suite whose envs name theirs (verify: only on its frozen defaults)",
    )
    p.add_argument(
        "--env",
        action="append",
        default=None,
        metavar="ENV_ID",
        help="run only this env's entries, or ENV[TAG] for one teacher's (repeatable); the rest "
        "can run later into the same --out",
    )
    p.set_defaults(func=cmd_bench_run)
    p = bsub.add_parser("report", help="tables, IQM with bootstrap CIs, curves and a Markdown report")
    p.add_argument("dir", type=Path, help="a folder written by `bench run`")
    p.add_argument("--reps", type=positive_int, default=2000, help="bootstrap resamples")
    p.set_defaults(func=cmd_bench_report)

    p = sub.add_parser("students", help="list the smaller / same / larger student presets")
    p.add_argument("--env", required=True)
    p.add_argument("--teacher", default=None)
    p.set_defaults(func=cmd_students)

    p = sub.add_parser("export", help="export a student's deterministic policy to ONNX (extra [onnx])")
    p.add_argument("student", type=Path, help="the student's .zip")
    p.add_argument("--out", type=Path, default=None, help="the .onnx file (default: beside the student)")
    p.add_argument("--check", type=positive_int, default=1000, help="observations for the parity check")
    p.add_argument("--seed", type=int, default=0, help="seed of those observations")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("compare", help="teacher against student: size, CPU latency, return")
    p.add_argument("teacher", help="teacher .zip, rl-zoo folder, exported .onnx or hf://ORG/NAME")
    p.add_argument("student", type=Path, help="student .zip")
    p.add_argument("--env", required=True)
    p.add_argument("--episodes", type=positive_int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads while timing")
    p.add_argument("--stochastic", action="store_true", help="play both with sampled actions, not argmax")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=cmd_compare)
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # SIGTERM (timeout, schedulers, kill) stops a command as Ctrl-C does: with the resume hint
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args))
    except PPDistillError as exc:
        sys.stderr.write(f"ppdistill: error: {exc}\n")
        return 2
    except Terminated:
        sys.stderr.write("ppdistill: terminated\n")
        return 143
    except KeyboardInterrupt:
        sys.stderr.write("ppdistill: interrupted\n")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
