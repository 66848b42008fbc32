"""Checking spaces: whether two (teacher and student, or model and environment) fit together,
and whether one is a flat vector."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from typing_extensions import TypeIs  # narrows both ways (typing's from Python 3.13)

from ppdistill.core.errors import SpaceMismatchError


def is_flat_box(space: spaces.Space) -> TypeIs[spaces.Box]:
    """Whether ``space`` is a flat vector: a one-dimensional ``Box`` (what entry views, running
    input statistics and the MLP presets take).

    :param space: any gymnasium space
    """
    return isinstance(space, spaces.Box) and len(space.shape) == 1


def check_spaces_compatible(
    kind: str, stored: spaces.Space, env: spaces.Space, where: str, other: str = "the environment"
) -> None:
    """Raise SpaceMismatchError unless ``stored`` and ``env`` describe the same data.

    :param kind: "observation" or "action" (actions also compare Box bounds)
    :param stored: the space of ``where``
    :param env: the space it must match, that of ``other``
    :param where: who has ``stored`` (for the message)
    :param other: who has ``env`` (for the message)
    """
    ok = type(stored) is type(env)
    if ok and isinstance(stored, spaces.Box) and isinstance(env, spaces.Box):
        ok = stored.shape == env.shape
        if ok and kind == "action":
            ok = bool(np.allclose(stored.low, env.low) and np.allclose(stored.high, env.high))
        if ok and kind == "observation":
            # Image spaces (uint8) are scaled by SB3; a float/uint8 mix is a real mismatch.
            ok = (stored.dtype == np.uint8) == (env.dtype == np.uint8)
    elif ok and isinstance(stored, spaces.Discrete) and isinstance(env, spaces.Discrete):
        ok = stored.n == env.n
    elif ok and isinstance(stored, spaces.MultiDiscrete) and isinstance(env, spaces.MultiDiscrete):
        ok = bool(np.array_equal(stored.nvec, env.nvec))
    elif ok and isinstance(stored, spaces.MultiBinary) and isinstance(env, spaces.MultiBinary):
        ok = stored.shape == env.shape
    elif ok and isinstance(stored, spaces.Dict) and isinstance(env, spaces.Dict):
        ok = set(stored.spaces) == set(env.spaces)
        if ok:
            for k in stored.spaces:
                check_spaces_compatible(kind, stored.spaces[k], env.spaces[k], where, other)
    if not ok:
        raise SpaceMismatchError(f"{kind} spaces differ: {where} has {stored}, {other} has {env}")
