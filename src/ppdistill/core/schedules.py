"""Picklable schedules of SB3's ``progress_remaining`` (1 at the start of training, 0 at the end).

They are plain objects rather than lambdas so that a saved student carries its schedule and
a resumed run continues where it stopped (SB3 computes ``progress_remaining`` from the
model's own step counter and the total budget, not from a counter local to one ``learn()``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Schedule = Callable[[float], float]


@dataclass(frozen=True)
class Constant:
    """Always ``value``."""

    value: float

    def __call__(self, progress_remaining: float) -> float:
        return self.value


@dataclass(frozen=True)
class Linear:
    """From ``start`` (progress 1) to ``end`` (progress 0), linearly."""

    start: float
    end: float = 0.0

    def __call__(self, progress_remaining: float) -> float:
        return self.end + (self.start - self.end) * progress_remaining


@dataclass(frozen=True)
class Phase:
    """``inner`` run over the last ``share`` of the budget, as if that phase were the whole of
    it: a fine-tuning phase's rl_zoo3 ``lin_X`` then falls from X at the switch to 0 at the
    end, as it does from the start of the zoo's own PPO training (SB3's ``progress_remaining``
    counts the whole run, whose step counter continues across the switch).

    :param inner: the phase's own schedule
    :param share: the phase's share of the budget, in (0, 1]
    """

    inner: Schedule
    share: float

    def __post_init__(self) -> None:
        if not 0.0 < self.share <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {self.share}")

    def __call__(self, progress_remaining: float) -> float:
        return self.inner(min(1.0, progress_remaining / self.share))


@dataclass(frozen=True)
class DistillThenFinetune:
    """``value`` for the first ``fraction`` of the budget, then 0: the student goes on as plain PPO.

    :param value: λ during the distillation phase
    :param fraction: share of the total budget spent distilling, in (0, 1]
    """

    value: float
    fraction: float

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")

    def __call__(self, progress_remaining: float) -> float:
        return self.value if (1.0 - progress_remaining) < self.fraction else 0.0


@dataclass(frozen=True)
class Fading:
    """``value`` until the fraction ``begin`` of the budget has passed, then linearly to 0 at
    ``end``, then 0: the KL anchor of a fine-tuning phase that fades out (``begin == end``: a
    step from ``value`` to 0).

    :param value: λ at and before ``begin``
    :param begin: share of the budget where the fading starts, in [0, 1]
    :param end: share of the budget where λ reaches 0, in [``begin``, 1]
    """

    value: float
    begin: float
    end: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.begin <= self.end <= 1.0:
            raise ValueError(f"need 0 <= begin <= end <= 1, got begin {self.begin}, end {self.end}")
        if self.value < 0:
            raise ValueError(f"value must be >= 0, got {self.value}")

    def __call__(self, progress_remaining: float) -> float:
        elapsed = 1.0 - progress_remaining
        if elapsed <= self.begin:
            return self.value
        if elapsed >= self.end:
            return 0.0
        return self.value * (self.end - elapsed) / (self.end - self.begin)


@dataclass
class PerformanceBased:
    """λ from how far the student is from the teacher, as in QDagger (Agarwal et al. 2022).

    ``λ = scale · clip(1 − (G_student − G_random) / (G_teacher − G_random), 0, 1)``, with
    ``G_student`` the mean return of the student's recent episodes (the algorithm calls
    :meth:`observe` with them before each update). With ``random_return = 0`` this is
    QDagger's ``max(0, 1 − G_student / G_teacher)``; the random baseline keeps it meaningful
    for negative returns. Before any episode has finished, λ = ``scale``. The state (the last
    λ) is part of the object, so it is saved with the student and resumes.

    :param teacher_return: the teacher's mean return
    :param random_return: a random policy's mean return
    :param scale: λ when the student is no better than random
    """

    teacher_return: float
    random_return: float = 0.0
    scale: float = 1.0
    last: float | None = None

    def observe(self, returns: list[float]) -> None:
        """Update from the student's recent episode returns."""
        if not returns:
            return
        span = self.teacher_return - self.random_return
        if span == 0:
            raise ValueError("teacher_return and random_return must differ")
        progress = (sum(returns) / len(returns) - self.random_return) / span
        self.last = self.scale * min(1.0, max(0.0, 1.0 - progress))

    def __call__(self, progress_remaining: float) -> float:
        return self.scale if self.last is None else self.last


SCHEDULE_NAMES = ("constant", "linear", "distill-then-finetune:FRACTION", "performance")


def parse_schedule_name(text: str) -> tuple[str, float | None]:
    """Check a schedule name (``--lambda-schedule``); return its kind and, for
    ``distill-then-finetune:FRACTION``, the fraction.

    :param text: one of :data:`SCHEDULE_NAMES`
    :raises ValueError: naming the valid forms
    """
    kind, sep, arg = str(text).strip().partition(":")
    if kind in ("constant", "linear", "performance") and not sep:
        return kind, None
    if kind == "distill-then-finetune" and sep:
        try:
            fraction = float(arg)
        except ValueError:
            fraction = float("nan")
        if 0.0 < fraction <= 1.0:
            return kind, fraction
        raise ValueError(f"distill-then-finetune:FRACTION needs a fraction in (0, 1], got {arg!r}")
    raise ValueError(f"unknown λ schedule {text!r}; use one of {', '.join(SCHEDULE_NAMES)}")


def named_schedule(
    text: str, value: float, teacher_return: float | None = None, random_return: float | None = None
) -> Schedule:
    """The schedule a name stands for, around λ = ``value``.

    ``constant``: λ; ``linear``: λ → 0 over the budget; ``distill-then-finetune:F``: λ for the
    first fraction F of the budget, then 0; ``performance``: :class:`PerformanceBased` with
    ``scale`` λ, which needs the teacher's and a random policy's mean returns.

    :param text: one of :data:`SCHEDULE_NAMES`
    :param value: λ
    :param teacher_return: the teacher's mean return (``performance`` only)
    :param random_return: a random policy's mean return (``performance`` only)
    """
    kind, fraction = parse_schedule_name(text)
    if value < 0:
        raise ValueError(f"distill_lambda must be >= 0, got {value}")
    if kind == "linear":
        return Linear(value, 0.0)
    if kind == "distill-then-finetune":
        assert fraction is not None
        return DistillThenFinetune(value, fraction)
    if kind == "performance":
        if teacher_return is None or random_return is None:
            raise ValueError("the performance schedule needs the teacher's and a random policy's returns")
        if not teacher_return > random_return:
            raise ValueError(
                "the performance schedule needs a teacher better than a random policy "
                f"(teacher {teacher_return:.4g}, random {random_return:.4g})"
            )
        return PerformanceBased(float(teacher_return), float(random_return), scale=value)
    return Constant(value)


def zoo_schedule(value: Any) -> Any:
    """rl_zoo3's ``lin_X`` (a learning rate or clip range falling linearly from X to 0 over
    the budget) as a :class:`Linear`; any other value unchanged.

    :param value: a hyperparameter's value, e.g. ``"lin_0.001"`` or ``3e-4``
    :raises ValueError: ``lin_`` followed by something other than a number
    """
    if isinstance(value, str) and value.startswith("lin_"):
        return Linear(float(value[4:]), 0.0)
    return value


def as_schedule(value: float | Schedule) -> Schedule:
    """A float becomes :class:`Constant`; a callable is returned unchanged.

    :param value: number or schedule
    """
    if callable(value):
        return value
    value = float(value)
    if value < 0:
        raise ValueError(f"distill_lambda must be >= 0, got {value}")
    return Constant(value)
