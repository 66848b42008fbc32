"""The exceptions ppdistill raises on bad input.

Every one of them carries a message of one line that says what is wrong and what to do;
the command line prints that line and exits with status 2.
"""

from __future__ import annotations


class PPDistillError(Exception):
    """Base class: a problem with what the user asked for, not a bug."""


class ModelLoadError(PPDistillError, ValueError):
    """A model file or folder (a teacher, a student, any SB3 agent) cannot be read or is not a
    usable policy."""


class TeacherLoadError(ModelLoadError):
    """The teacher cannot be read or is not a usable policy (what :func:`ppdistill.load_teacher` raises)."""


class SpaceMismatchError(PPDistillError, ValueError):
    """Teacher and student (or environment) spaces disagree."""


class MissingTeacherError(PPDistillError, RuntimeError):
    """A distillation algorithm was asked to train without a teacher."""


class MissingExtraError(PPDistillError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, extra: str, what: str, module: str | None = None, hint: str | None = None) -> None:
        hint = hint or f"pip install 'ppdistill[{extra}]'"
        missing = f" (module {module!r} not found)" if module else ""
        super().__init__(f"{what} needs the optional extra [{extra}]{missing}: run {hint}")
        self.extra = extra


class NonFiniteError(PPDistillError, FloatingPointError):
    """A NaN or infinity reached training (teacher output, reward, observation or loss)."""


def one_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, shortened: for our one-line errors."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
