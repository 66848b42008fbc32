"""One pass through an SB3 actor-critic: the distribution and the values together."""

from __future__ import annotations

import torch as th
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy

TensorObs = th.Tensor | dict[str, th.Tensor]


def actor_critic_forward(
    policy: ActorCriticPolicy, obs: TensorObs, with_values: bool = True
) -> tuple[Distribution, th.Tensor | None]:
    """One pass through an SB3 actor-critic: the action distribution and the values.

    The same operations, in the same order, as ``ActorCriticPolicy.evaluate_actions``, which
    gives no access to the distribution itself; so a distillation step needs one forward
    pass, not two, and matches PPO's numbers bit for bit.

    :param policy: an SB3 ``ActorCriticPolicy`` (Mlp, Cnn or MultiInput)
    :param obs: preprocessed-by-SB3-convention observation tensor(s)
    :param with_values: also run the critic
    :return: the distribution and the values ``(batch, 1)`` (or None)
    """
    features = policy.extract_features(obs)
    if policy.share_features_extractor:
        latent_pi, latent_vf = policy.mlp_extractor(features)
    else:
        pi_features, vf_features = features
        latent_pi = policy.mlp_extractor.forward_actor(pi_features)
        latent_vf = policy.mlp_extractor.forward_critic(vf_features) if with_values else None
    distribution = policy._get_action_dist_from_latent(latent_pi)
    values = policy.value_net(latent_vf) if with_values else None
    return distribution, values
