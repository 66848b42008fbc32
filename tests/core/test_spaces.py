"""core.spaces: whether a space is a flat vector (entry views, running statistics, MLP presets)."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ppdistill.core.spaces import is_flat_box


def test_only_a_one_dimensional_box_is_a_flat_vector():
    assert is_flat_box(spaces.Box(-1.0, 1.0, (4,), np.float32))
    assert not is_flat_box(spaces.Box(0, 255, (10, 10, 3), np.uint8))  # an image
    assert not is_flat_box(spaces.Box(-1.0, 1.0, (), np.float32))  # a scalar
    assert not is_flat_box(spaces.MultiBinary(4))  # shape (4,), not a Box
    assert not is_flat_box(spaces.MultiDiscrete([2, 3]))
    assert not is_flat_box(spaces.Dict({"a": spaces.Box(-1.0, 1.0, (2,), np.float32)}))
