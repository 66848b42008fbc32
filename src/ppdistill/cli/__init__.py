"""The ``ppdistill`` command line: a module per group of commands, the parser in :mod:`ppdistill.cli.main`."""

from ppdistill.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
