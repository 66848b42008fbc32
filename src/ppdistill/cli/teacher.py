"""``ppdistill teacher train`` and ``ppdistill teacher corrupt``."""

from __future__ import annotations

import argparse
import json
import time

from ppdistill.cli.args import CLIError
from ppdistill.cli.tables import print_table
from ppdistill.core.files import atomic_write, check_out_file
from ppdistill.core.seeds import SeedPlan


def cmd_teacher_train(args: argparse.Namespace) -> int:
    from ppdistill.evaluation import evaluate
    from ppdistill.experiment.config import parse_overrides
    from ppdistill.experiment.teacher_prep import train_teacher
    from ppdistill.teachers.loading import load_teacher

    if args.out.is_dir():
        raise CLIError(f"--out {args.out} is a folder; give the path of the .zip to write")
    out = args.out if args.out.suffix == ".zip" else args.out.with_suffix(".zip")
    check_out_file(out, force=args.force)  # before hours of training, not after
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
    score = evaluate(
        load_teacher(out, env_id=args.env), args.env, n_episodes=20, seed=SeedPlan(args.seed).final_evaluation
    )
    print(f"teacher saved to {out} ({time.perf_counter() - t0:.0f}s); deterministic return {score}")
    return 0


def cmd_teacher_corrupt(args: argparse.Namespace) -> int:
    from ppdistill.experiment.teacher_prep import calibrate_sigma, corrupt_teacher

    out = args.output if args.output.suffix == ".zip" else args.output.with_suffix(".zip")
    check_out_file(out, force=args.force, what="OUT")
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
    if summary.get("left_out"):
        print(f"  left out (not plain data, SB3 uses its defaults): {', '.join(summary['left_out'])}")
    return 0


def cmd_teacher_inspect(args: argparse.Namespace) -> int:
    from ppdistill.evaluation import evaluate
    from ppdistill.teachers.describe import describe_teacher
    from ppdistill.teachers.loading import load_teacher

    if args.json:
        check_out_file(args.json, force=args.force, what="--json")
    teacher = load_teacher(args.path, env_id=args.env)
    described = describe_teacher(teacher)
    if args.env is not None:
        result = evaluate(teacher, args.env if teacher.env_recipe is None else teacher.env_recipe,
                          n_episodes=args.episodes, seed=SeedPlan(args.seed).final_evaluation)  # fmt: skip
        described["score"] = (
            f"{result.mean:.2f} ± {result.std:.2f} over {result.n_episodes} deterministic episodes"
        )
    print_table(f"teacher {args.path}", ["aspect", "found"], [[k, str(v)] for k, v in described.items()])
    if args.json:
        atomic_write(args.json, json.dumps(described, indent=2, default=str).encode())
    return 0
