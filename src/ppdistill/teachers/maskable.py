"""MaskablePPO teachers (sb3-contrib's invalid-action masking): a distribution with the
environment's action masks applied.

A MaskablePPO policy acts on the legal actions of each state only: the environment says which
(``action_masks()``, as :class:`sb3_contrib.common.wrappers.ActionMasker` provides), and the
policy's distribution gives every illegal action the logit −1e8 (probability exactly 0 in
float32). Its distillation target is that masked distribution, formed here the way
sb3-contrib's ``MaskableCategorical`` forms it (:func:`mask_params`): the log-softmax stays
finite and p·log p = 0 on illegal actions, so the forward KL never teaches the student an
illegal action. The algorithms record the masks of every step of a rollout with it and pass
them to the teacher when it runs once per rollout (:meth:`MaskedTeacher.forward`); a teacher
called without masks gives its unmasked distribution, as MaskablePPO's ``predict`` does
without ``action_masks``. (The reverse KL, ``kl_direction="reverse"``, charges an unmasked
student about 1e8 nats per unit of probability it puts on an illegal action: a hard penalty; a
MaskablePPD student puts none there.)

Flat layout (:mod:`ppdistill.core.distributions`): Discrete and MultiDiscrete as usual (the
masks have the same width as the logits); MultiBinary as one Bernoulli logit per bit, where
sb3-contrib's policy has two logits per bit and two masks per bit (outcome 0, outcome 1): the
Bernoulli logit is the difference of the pair's log-probabilities, ±1e8 where one outcome is
illegal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import (
    MaskableBernoulliDistribution,
    MaskableCategoricalDistribution,
    MaskableDistribution,
    MaskableMultiCategoricalDistribution,
)
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.preprocessing import maybe_transpose
from stable_baselines3.common.utils import is_vectorized_observation, obs_as_tensor

from ppdistill.core.errors import PPDistillError
from ppdistill.networks.forward import TensorObs, actor_critic_forward
from ppdistill.teachers.base import BuildOptions, Teacher, TeacherKind, TeacherOutput

MASKED_LOGIT = -1e8
"""The logit of an illegal action: sb3-contrib's ``MaskableCategorical`` value, finite so that
log-softmax stays finite, and far enough below any real logit that exp() of it is 0."""

Masks = np.ndarray | th.Tensor


def mask_width(action_space: spaces.Space) -> int:
    """Width of one step's action mask (sb3-contrib's layout): n for Discrete(n), sum(nvec) for
    MultiDiscrete, 2 per bit for MultiBinary (outcome 0, outcome 1).

    :param action_space: a Discrete, MultiDiscrete or MultiBinary space
    """
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, spaces.MultiDiscrete):
        return int(np.sum(action_space.nvec))
    if isinstance(action_space, spaces.MultiBinary):
        return 2 * int(np.prod(action_space.shape))
    raise PPDistillError(
        f"action masks need a Discrete, MultiDiscrete or MultiBinary action space, not {action_space}"
    )


def as_mask_tensor(masks: Masks, action_space: spaces.Space, device: th.device | str) -> th.Tensor:
    """Masks as a boolean tensor ``(batch, mask_width)``, their width checked.

    :param masks: one step's masks for a batch of observations (or for one), True where legal
    :param action_space: the action space they mask
    :param device: where the tensor goes
    """
    width = mask_width(action_space)
    tensor = th.as_tensor(np.asarray(masks) if not isinstance(masks, th.Tensor) else masks, device=device)
    if tensor.numel() % width != 0:
        raise PPDistillError(
            f"action masks of shape {tuple(tensor.shape)} do not fit {action_space}: each step needs {width}"
        )
    return tensor.reshape(-1, width).bool()


def mask_params(action_space: spaces.Space, params: th.Tensor, masks: th.Tensor) -> th.Tensor:
    """Flat distribution parameters with the illegal actions' probability set to 0.

    Discrete and MultiDiscrete: each illegal logit becomes :data:`MASKED_LOGIT`, exactly as
    sb3-contrib's ``MaskableCategorical`` does it (so the masked distribution acts as
    MaskablePPO's). MultiBinary: a bit whose outcome 1 is illegal gets the Bernoulli logit
    −1e8 (and +1e8 where outcome 0 is), the Bernoulli logit being read as the pair of
    categorical logits (0, l).

    :param action_space: Discrete, MultiDiscrete or MultiBinary
    :param params: ``(batch, param_dim)``
    :param masks: boolean ``(batch, mask_width)``, True where an action is legal
    """
    huge_neg = th.tensor(MASKED_LOGIT, dtype=params.dtype, device=params.device)
    masks = masks.to(params.device)
    if isinstance(action_space, spaces.Discrete | spaces.MultiDiscrete):
        return th.where(masks.reshape(params.shape), params, huge_neg)
    if isinstance(action_space, spaces.MultiBinary):
        pairs = th.stack([th.zeros_like(params), params], dim=-1)
        pairs = th.where(masks.reshape(pairs.shape), pairs, huge_neg)
        log_p = th.log_softmax(pairs, dim=-1)
        return log_p[..., 1] - log_p[..., 0]
    raise PPDistillError(
        f"action masks need a Discrete, MultiDiscrete or MultiBinary action space, not {action_space}"
    )


def params_from_maskable(dist: MaskableDistribution) -> th.Tensor:
    """Flat parameters of an sb3-contrib maskable distribution (its masks applied, if any),
    keeping the autograd graph: the logits; for MultiBinary the Bernoulli logit of each bit,
    the difference of its two outcomes' log-probabilities.

    :param dist: a maskable distribution with ``proba_distribution`` called
    """
    if isinstance(dist, MaskableBernoulliDistribution):  # (a MaskableMultiCategorical: first)
        return th.stack([d.logits[:, 1] - d.logits[:, 0] for d in dist.distributions], dim=1)
    if isinstance(dist, MaskableMultiCategoricalDistribution):
        return th.cat([d.logits for d in dist.distributions], dim=1)
    if isinstance(dist, MaskableCategoricalDistribution):
        return dist.distribution.logits
    raise TypeError(f"cannot read parameters from {type(dist).__name__}")


class MaskedTeacher(Teacher):
    """A MaskablePPO policy as a teacher (see the module docstring).

    Called with ``action_masks=`` (one row per observation, True where legal), its parameters
    are its masked distribution; without, its unmasked one.

    :param policy: the sb3-contrib maskable actor-critic policy
    """

    has_value = True
    needs_action_masks = True
    """The algorithms record the environment's action masks with each rollout for it."""

    def __init__(self, policy: MaskableActorCriticPolicy, **kwargs: Any) -> None:
        super().__init__(policy.observation_space, policy.action_space, **kwargs)
        self.policy = policy
        self._masks: th.Tensor | None = None

    def forward(
        self, obs: TensorObs, with_values: bool = False, action_masks: Masks | None = None
    ) -> TeacherOutput:
        """Distribution parameters (and values) for raw observations, masked where masks are given.

        :param obs: raw observations on the teacher's device
        :param with_values: also return the values
        :param action_masks: the environment's masks for these observations
            (``(batch, mask_width)``, True where an action is legal), or None: unmasked
        """
        self._masks = (
            None if action_masks is None else as_mask_tensor(action_masks, self.action_space, self.device)
        )
        try:
            return super().forward(obs, with_values=with_values)
        finally:
            self._masks = None

    def _forward(self, obs: TensorObs, with_values: bool) -> TeacherOutput:
        # MaskableActorCriticPolicy is not an ActorCriticPolicy subclass, but has the same parts
        # in the same order: the shared pass gives its (unmasked) MaskableDistribution
        distribution, values = actor_critic_forward(self.policy, obs, with_values=with_values)  # type: ignore[arg-type]
        assert isinstance(distribution, MaskableDistribution)
        params = params_from_maskable(distribution)
        if self._masks is not None:
            if self._masks.shape[0] != params.shape[0]:
                raise PPDistillError(
                    f"action masks for {self._masks.shape[0]} observations, "
                    f"given {params.shape[0]} observations"
                )
            params = mask_params(self.action_space, params, self._masks)
        return TeacherOutput(params, values)

    def act_on(
        self,
        obs: TensorObs,
        deterministic: bool,
        with_values: bool = False,
        action_masks: Masks | None = None,
    ) -> tuple[np.ndarray, TeacherOutput]:
        """Environment actions for raw observations, only legal ones where masks are given.

        :param obs: raw observations on the teacher's device
        :param deterministic: act with the mode
        :param with_values: also compute the values
        :param action_masks: the environment's current masks (None: unmasked)
        """
        out = self(obs, with_values=with_values, action_masks=action_masks)
        return self.act(out.params, deterministic), out

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: Masks | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Act like MaskablePPO's ``predict``: with ``action_masks`` only legal actions.

        :param observation: one observation or a batch of them (raw)
        :param state: unused
        :param episode_start: unused
        :param deterministic: take the mode
        :param action_masks: the masks for these observations (e.g.
            ``sb3_contrib.common.maskable.utils.get_action_masks(env)``), or None: unmasked
        """
        if isinstance(observation, np.ndarray):
            observation = maybe_transpose(observation, self.observation_space)
        vectorized = is_vectorized_observation(observation, self.observation_space)  # type: ignore[arg-type]
        if not vectorized:
            observation = (
                {k: np.asarray(v)[None] for k, v in observation.items()}
                if isinstance(observation, dict)
                else np.asarray(observation)[None]
            )
        actions, _ = self.act_on(
            obs_as_tensor(observation, self.device), deterministic, action_masks=action_masks
        )
        if not vectorized:
            actions = actions[0]
        return actions, None


def _build(policy: MaskableActorCriticPolicy, options: BuildOptions) -> Teacher:
    return MaskedTeacher(policy, info={**options.info, "kind": "maskable"}, **options.common)


KINDS = (
    TeacherKind(
        "maskable",
        (MaskableActorCriticPolicy,),
        "maskable (MaskablePPO)",
        _build,
        "its own distribution with the environment's action masks applied (each step's masks "
        "recorded with the rollout): illegal actions get the logit -1e8, probability 0",
    ),
)
"""The SB3 policy kinds this module reads (see :class:`~ppdistill.teachers.base.TeacherKind`)."""
