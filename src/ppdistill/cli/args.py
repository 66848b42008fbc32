"""Argument parsing with one-line errors, and the value types of the options."""

from __future__ import annotations

import argparse
import math
import sys

from ppdistill.core.errors import PPDistillError


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is so that it stops as Ctrl-C stops it (exit 143)."""


class CLIError(PPDistillError):
    """Bad command-line input."""


def _whole_number(text: str, what: str) -> int:
    """A whole number written as ``1000``, ``1e5`` or ``2048.0``; anything else (``1.5``, ``inf``,
    ``nan``, ``abc``) is refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return int(value)


def positive_int(text: str) -> int:
    value = _whole_number(text, "a positive whole number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _whole_number(text, "a whole number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)
