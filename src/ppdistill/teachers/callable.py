"""Teachers from plain functions of observation tensors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch as th
from gymnasium import spaces
from torch import nn

from ppdistill.core.errors import TeacherLoadError
from ppdistill.networks.forward import TensorObs
from ppdistill.teachers.base import Teacher, TeacherOutput


class CallableTeacher(Teacher):
    """A teacher from plain functions of (normalized) observation tensors.

    :param params_fn: observations → distribution parameters (flat layout)
    :param value_fn: observations → values, optional
    """

    def __init__(
        self,
        params_fn: Callable[[TensorObs], th.Tensor],
        observation_space: spaces.Space,
        action_space: spaces.Space,
        value_fn: Callable[[TensorObs], th.Tensor] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(observation_space, action_space, **kwargs)
        self.params_fn = params_fn
        self.value_fn = value_fn
        self.has_value = value_fn is not None
        # A callable that is an nn.Module is registered so that .to() and freeze() reach it.
        self.modules_held = nn.ModuleList([f for f in (params_fn, value_fn) if isinstance(f, nn.Module)])

    def _forward(self, obs: TensorObs, with_values: bool) -> TeacherOutput:
        params = self.params_fn(obs)
        if params.shape[-1] != self.param_dim:
            raise TeacherLoadError(
                f"teacher callable returned {params.shape[-1]} parameters per sample; "
                f"{self.action_space} needs {self.param_dim} (see ppdistill.core.distributions)"
            )
        values = self.value_fn(obs) if (with_values and self.value_fn is not None) else None
        return TeacherOutput(params, values)
