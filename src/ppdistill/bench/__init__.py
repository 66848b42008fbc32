"""The benchmark harness: suites, their execution (local processes or Ray) and reports."""

from ppdistill.bench.execute import dry_run, read_records, run_suite
from ppdistill.bench.report import build_report
from ppdistill.bench.suite import Suite, load_suite

__all__ = ["Suite", "build_report", "dry_run", "load_suite", "read_records", "run_suite"]
