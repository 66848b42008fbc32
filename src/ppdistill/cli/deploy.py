"""``ppdistill export`` and ``ppdistill compare``."""

from __future__ import annotations

import argparse
import json

from ppdistill.cli.tables import print_table
from ppdistill.core.files import atomic_write, check_out_file


def cmd_export(args: argparse.Namespace) -> int:
    from ppdistill.deploy.export import export_onnx

    out = args.out or args.student.with_suffix(".onnx")
    check_out_file(out, force=args.force)
    report = export_onnx(args.student, out, n_check=args.check, seed=args.seed)
    print(f"{report.path}: {report.input} -> {', '.join(report.outputs)}")
    if report.view is not None:
        print(f"  obs is {report.view}")
    print(f"  observation normalization: {report.normalization}")
    print(f"  ONNX Runtime against PyTorch on {report.parity}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ppdistill.deploy.compare import COLUMNS, compare, environment_note, table_rows

    if args.json:
        check_out_file(args.json, force=args.force, what="--json")  # before the episodes, not after
    deterministic = not args.stochastic
    stats = compare(
        args.teacher,
        args.student,
        args.env,
        episodes=args.episodes,
        seed=args.seed,
        threads=args.threads,
        deterministic=deterministic,
    )
    mode = "deterministic episodes" if deterministic else "episodes with sampled actions"
    print_table(
        f"{args.env}: teacher against student ({args.episodes} {mode}; {environment_note(args.threads)})",
        COLUMNS,
        table_rows(stats),
    )
    if args.json:
        payload = {
            "env_id": args.env,
            "threads": args.threads,
            "deterministic": deterministic,
            "agents": [s.as_dict() for s in stats],
        }
        atomic_write(args.json, json.dumps(payload, indent=2).encode())
    return 0
