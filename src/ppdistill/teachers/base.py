"""Frozen teachers, and the loaders that build them from files or callables.

A :class:`Teacher` maps raw observations (what the environment returns, before any
normalization of the student's) to action-distribution parameters in the flat layout of
:mod:`ppdistill.core.distributions`, and optionally to state values. It applies its own frozen
observation normalization, runs in eval mode, and has every parameter's
``requires_grad`` off.

Loaders read SB3 zips without instantiating the algorithm and without arbitrary
unpickling: the zip's ``data`` entries are decoded with an allow-list unpickler that also
reads agents pickled with the old ``gym`` package (the RL Baselines3 Zoo's), mapping their
spaces onto gymnasium's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import maybe_transpose
from stable_baselines3.common.utils import is_vectorized_observation, obs_as_tensor
from torch import nn

from ppdistill.core.distributions import (
    SUPPORTED_ACTION_SPACES,
    actions_from_params,
    param_dim,
)
from ppdistill.core.errors import ModelLoadError
from ppdistill.envs.recipe import EnvRecipe
from ppdistill.networks.forward import TensorObs
from ppdistill.networks.normalization import ObsNormalizer
from ppdistill.networks.presets import teacher_mlp_width


@dataclass
class TeacherOutput:
    """What a teacher says about a batch of observations.

    :param params: distribution parameters ``(batch, param_dim)``
    :param values: state values ``(batch,)`` in the environment's reward units, or None
    """

    params: th.Tensor
    values: th.Tensor | None


class Teacher(nn.Module):
    """A frozen policy to distill from.

    Subclasses implement :meth:`_forward` on normalized observations. Calling the
    teacher (``teacher(obs)``) normalizes, runs without gradients and counts the call in
    :attr:`n_calls` and the samples in :attr:`n_samples`.

    :param observation_space: observation space the teacher expects (raw, before normalization)
    :param action_space: action space of its distribution
    :param obs_normalizer: frozen observation normalization (from the teacher's VecNormalize)
    :param value_scale: multiplies the values to undo reward normalization
    :param info: JSON-friendly description (kind, algo, path, options), saved with students
    """

    has_value: bool = False
    recurrent: bool = False
    """Whether its outputs depend on a state carried through time (:mod:`ppdistill.teachers.recurrent`)."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        obs_normalizer: ObsNormalizer | None = None,
        value_scale: float = 1.0,
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(action_space, SUPPORTED_ACTION_SPACES):
            raise ModelLoadError(
                f"teacher action space {action_space} is not supported: "
                "use Discrete, MultiDiscrete, MultiBinary or Box"
            )
        self.observation_space = observation_space
        self.action_space = action_space
        self.obs_normalizer = obs_normalizer
        self.value_scale = float(value_scale)
        self.info: dict[str, Any] = dict(info or {})
        self.n_calls = 0
        self.n_samples = 0

    # -- what subclasses provide -------------------------------------------------------
    def _forward(self, obs: TensorObs, with_values: bool) -> TeacherOutput:
        raise NotImplementedError

    # -- public ------------------------------------------------------------------------
    def freeze(self) -> Teacher:
        """Eval mode, no gradients: what every loader returns."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    @property
    def device(self) -> th.device:
        for tensor in [*self.parameters(), *self.buffers()]:
            return tensor.device
        return th.device("cpu")

    def forward(self, obs: TensorObs, with_values: bool = False) -> TeacherOutput:
        """Distribution parameters (and values) for raw observations.

        :param obs: raw observations on the teacher's device (tensor or dict of tensors)
        :param with_values: also return state values (None where the teacher has no critic)
        """
        with th.no_grad():
            if self.obs_normalizer is not None:
                obs = self.obs_normalizer(obs)
            out = self._forward(obs, with_values and self.has_value)
            if out.values is not None:
                out.values = out.values.reshape(-1) * self.value_scale
        self.n_calls += 1
        first = next(iter(obs.values())) if isinstance(obs, dict) else obs
        self.n_samples += int(first.shape[0])
        return out

    def train(self, mode: bool = True) -> Teacher:
        # A teacher stays in eval mode: dropout or batch-norm statistics must not move.
        return super().train(False)

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Act like an SB3 model (so ``evaluate_policy`` and our ``evaluate`` take teachers).

        :param observation: one observation or a batch of them (raw)
        :param state: unused (teachers are not recurrent)
        :param episode_start: unused
        :param deterministic: take the distribution's mode
        :return: actions and None
        """
        if isinstance(observation, np.ndarray):
            # images from the env come channels-last; SB3 policies take them channels-first
            observation = maybe_transpose(observation, self.observation_space)
        vectorized = is_vectorized_observation(observation, self.observation_space)  # type: ignore[arg-type]
        if not vectorized:
            if isinstance(observation, dict):
                observation = {k: np.asarray(v)[None] for k, v in observation.items()}
            else:
                observation = np.asarray(observation)[None]
        actions, _ = self.act_on(obs_as_tensor(observation, self.device), deterministic)
        if not vectorized:
            actions = actions[0]
        return actions, None

    def act_on(
        self, obs: TensorObs, deterministic: bool, with_values: bool = False
    ) -> tuple[np.ndarray, TeacherOutput]:
        """Environment actions for raw observations, with the teacher's outputs for them.

        Usually the actions come from the outputs' distribution; a teacher whose
        distillation target differs from how it acts (SAC) overrides this.

        :param obs: raw observations on the teacher's device
        :param deterministic: act with the mode
        :param with_values: also compute the values
        """
        out = self(obs, with_values=with_values)
        return self.act(out.params, deterministic), out

    def act(self, params: th.Tensor, deterministic: bool) -> np.ndarray:
        """Environment actions from distribution parameters.

        :param params: ``(batch, param_dim)``
        :param deterministic: mode instead of a sample
        """
        return actions_from_params(self.action_space, params, deterministic)

    @property
    def param_dim(self) -> int:
        return param_dim(self.action_space)

    @property
    def env_recipe(self) -> EnvRecipe | None:
        """The environment it acts in, when it is more than an id: the wrappers, frame stack
        and ``gym.make`` arguments of its training (an rl-zoo run's ``config.yml``)."""
        env = self.info.get("env")
        return EnvRecipe.from_dict(env) if env else None

    @property
    def hidden_layers(self) -> list[int] | None:
        """The actor's hidden layer sizes when the teacher is an SB3 MLP (for student presets)."""
        policy = getattr(self, "policy", None) or getattr(self, "module", None)
        arch = getattr(policy, "net_arch", None)
        if arch is None:
            return None

        return teacher_mlp_width(arch)

    def extra_repr(self) -> str:
        kind = self.info.get("kind", type(self).__name__)
        return f"kind={kind}, obs={self.observation_space}, act={self.action_space}"


@dataclass
class BuildOptions:
    """What a teacher kind's builder gets besides the rebuilt policy (see :class:`TeacherKind`).

    :param observation_space: the teacher's observation space (the environment's when named)
    :param action_space: its action space
    :param info: description saved with students (path, algorithm, env id, ...)
    :param obs_normalizer: frozen observation normalization (its VecNormalize statistics)
    :param value_scale: multiplies values to undo reward normalization
    :param temperature: τ of softmax(Q/τ), for value-based teachers
    :param target_std: σ_T of deterministic teachers, as a fraction of half the action range
    :param squashed_target: the mean of a squashed-Gaussian teacher's target, "moments" or "mode"
    :param squashed_std_scale: multiplies a squashed-Gaussian teacher's target std
    """

    observation_space: spaces.Space
    action_space: spaces.Space
    info: dict[str, Any]
    obs_normalizer: ObsNormalizer | None = None
    value_scale: float = 1.0
    temperature: float = 0.01
    target_std: float = 0.1
    squashed_target: str = "moments"
    squashed_std_scale: float = 1.0

    @property
    def common(self) -> dict[str, Any]:
        """The keyword arguments every :class:`Teacher` takes."""
        return {"obs_normalizer": self.obs_normalizer, "value_scale": self.value_scale}


@dataclass(frozen=True)
class TeacherKind:
    """One kind of SB3 policy that :func:`~ppdistill.teachers.loading.load_agent` reads.

    Each teacher module declares the kinds it handles; the loader refuses a policy class that
    no kind claims, before rebuilding it.

    :param name: the kind's name, recorded in ``teacher.info["kind"]`` (may be refined by ``build``)
    :param policy_classes: the SB3 policy classes it reads
    :param described: how an error message names it ("actor-critic (PPO, A2C, TRPO)")
    :param build: the rebuilt policy and :class:`BuildOptions` → the teacher
    :param target: how its distillation target (the distribution the student is taught) is
        formed, in words (``ppdistill teacher inspect`` shows it)
    """

    name: str
    policy_classes: tuple[type, ...]
    described: str
    build: Callable[[Any, BuildOptions], Teacher]
    target: str = ""

    def claims(self, policy_class: type) -> bool:
        return issubclass(policy_class, self.policy_classes)
