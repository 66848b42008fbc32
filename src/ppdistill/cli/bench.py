"""``ppdistill bench run`` and ``ppdistill bench report``."""

from __future__ import annotations

import argparse

from ppdistill.cli.args import CLIError


def cmd_bench_run(args: argparse.Namespace) -> int:
    from ppdistill.bench import dry_run, load_suite, run_suite

    suite = load_suite(args.suite)
    if args.half is not None:
        suite = suite.half(args.half)
    elif suite.halves:
        raise CLIError(
            f"{args.suite} has a tune and a verify half: run one with --half tune or --half verify"
        )
    if args.env:
        suite = suite.only_envs(args.env)
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
