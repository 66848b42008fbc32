"""Finding NaN and infinite values in arrays, tensors and dicts of them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch as th

from ppdistill.core.errors import NonFiniteError


def first_nonfinite(values: Any) -> str | None:
    """ "NaN" or "infinite" when ``values`` holds one (floating point only), else None."""
    if isinstance(values, dict):
        for v in values.values():
            bad = first_nonfinite(v)
            if bad is not None:
                return bad
        return None
    if isinstance(values, th.Tensor):
        if not values.is_floating_point() or bool(th.isfinite(values).all()):
            return None
        return "NaN" if bool(th.isnan(values).any()) else "infinite"
    arr = np.asarray(values)
    if arr.dtype.kind not in "fc" or bool(np.isfinite(arr).all()):
        return None
    return "NaN" if bool(np.isnan(arr).any()) else "infinite"


def first_nonfinite_named(values: Iterable[tuple[str, Any]]) -> tuple[str, str] | None:
    """The first ``(name, "NaN" or "infinite")`` among named arrays or tensors (weights), or None.

    :param values: ``(name, array or tensor)`` pairs, e.g. ``module.named_parameters()``
    """
    for name, value in values:
        bad = first_nonfinite(value.detach() if isinstance(value, th.Tensor) else value)
        if bad is not None:
            return name, bad
    return None


def check_finite(values: Any, what: str, where: str, hint: str) -> None:
    """Raise :class:`NonFiniteError` if ``values`` holds a NaN or an infinity.

    :param values: array, tensor, or dict of them
    :param what: what the values are ("the teacher's output")
    :param where: when ("at env step 1536")
    :param hint: what to do about it
    """
    bad = first_nonfinite(values)
    if bad is not None:
        raise NonFiniteError(f"{what} is {bad} {where}; {hint}")
