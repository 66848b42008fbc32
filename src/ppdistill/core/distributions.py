"""A flat, canonical layout for action-distribution parameters.

Teachers and students may be built differently (an SB3 ``ActorCriticPolicy``, a DQN's
Q-network, a plain callable), so everything that crosses between them is expressed as one
float tensor of shape ``(batch, param_dim(action_space))``:

========================  ==========================================================
action space              parameters
========================  ==========================================================
``Discrete(n)``           ``n`` logits (unnormalized log-probabilities)
``MultiDiscrete(nvec)``   ``sum(nvec)`` logits, one block per component
``MultiBinary(n)``        ``n`` Bernoulli logits
``Box(d)``                ``d`` means followed by ``d`` log standard deviations
========================  ==========================================================

For ``Box`` the Gaussian is the *pre-squash* distribution: actions are clipped to the
bounds when the policy acts, never squashed.
"""

from __future__ import annotations

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    MultiCategoricalDistribution,
    StateDependentNoiseDistribution,
)

SUPPORTED_ACTION_SPACES = (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary, spaces.Box)


def param_dim(action_space: spaces.Space) -> int:
    """Width of the flat parameter vector for ``action_space``.

    :param action_space: the (shared) action space of teacher and student
    :return: number of floats per sample
    """
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, spaces.MultiDiscrete):
        return int(np.sum(action_space.nvec))
    if isinstance(action_space, spaces.MultiBinary):
        return int(np.prod(action_space.shape))
    if isinstance(action_space, spaces.Box):
        return 2 * int(np.prod(action_space.shape))
    raise ValueError(
        f"unsupported action space {action_space}: "
        "ppdistill handles Discrete, MultiDiscrete, MultiBinary and Box"
    )


def params_from_distribution(dist: Distribution) -> th.Tensor:
    """Flat parameters of an SB3 distribution, keeping the autograd graph.

    :param dist: a distribution produced by an SB3 policy (``proba_distribution`` already called)
    :return: tensor ``(batch, param_dim)``
    """
    if isinstance(dist, CategoricalDistribution | BernoulliDistribution):
        return dist.distribution.logits
    if isinstance(dist, MultiCategoricalDistribution):
        return th.cat([d.logits for d in dist.distribution], dim=1)
    if isinstance(dist, DiagGaussianDistribution | StateDependentNoiseDistribution):
        # gSDE's per-state std is folded into a plain diagonal Gaussian: the marginal that
        # the action is drawn from, which is what the KL is about.
        normal = dist.distribution
        return th.cat([normal.mean, normal.stddev.log()], dim=1)
    raise TypeError(f"cannot read parameters from {type(dist).__name__}")


def split_gaussian(params: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """Split Box parameters into ``(mean, log_std)``."""
    d = params.shape[-1] // 2
    return params[..., :d], params[..., d:]


def distribution_from_params(action_space: spaces.Space, params: th.Tensor) -> Distribution:
    """Build an SB3 distribution from flat parameters (used to act and to evaluate).

    :param action_space: action space the parameters belong to
    :param params: tensor ``(batch, param_dim)``
    :return: an SB3 distribution ready to ``sample()``, ``mode()`` or ``log_prob()``
    """
    if isinstance(action_space, spaces.Discrete):
        return CategoricalDistribution(int(action_space.n)).proba_distribution(action_logits=params)
    if isinstance(action_space, spaces.MultiDiscrete):
        return MultiCategoricalDistribution(list(action_space.nvec)).proba_distribution(action_logits=params)
    if isinstance(action_space, spaces.MultiBinary):
        return BernoulliDistribution(int(np.prod(action_space.shape))).proba_distribution(
            action_logits=params
        )
    if isinstance(action_space, spaces.Box):
        mean, log_std = split_gaussian(params)
        dist = DiagGaussianDistribution(mean.shape[-1])
        # SB3's DiagGaussian takes one log_std row; ours is per sample, so set the torch
        # distribution directly rather than broadcasting through proba_distribution().
        dist.distribution = th.distributions.Normal(mean, log_std.exp())
        return dist
    raise ValueError(f"unsupported action space {action_space}")


def actions_from_params(action_space: spaces.Space, params: th.Tensor, deterministic: bool) -> np.ndarray:
    """Sample (or take the mode of) actions and shape them for ``env.step``.

    :param action_space: action space of the environment
    :param params: tensor ``(batch, param_dim)``
    :param deterministic: take the mode instead of sampling
    :return: numpy actions, clipped to the bounds for ``Box``
    """
    dist = distribution_from_params(action_space, params)
    actions = dist.get_actions(deterministic=deterministic).cpu().numpy()
    if isinstance(action_space, spaces.Box):
        actions = actions.reshape((-1, *action_space.shape))
        actions = np.clip(actions, action_space.low, action_space.high)
    elif isinstance(action_space, spaces.Discrete):
        actions = actions.reshape(-1)
    return actions
