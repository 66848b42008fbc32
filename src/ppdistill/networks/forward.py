"""One pass through an SB3 actor-critic (or sb3-contrib's recurrent one): the distribution and
the values together."""

from __future__ import annotations

from typing import Any

import torch as th
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
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


def recurrent_actor_critic_forward(
    policy: RecurrentActorCriticPolicy,
    obs: TensorObs,
    lstm_states: RNNStates,
    episode_starts: th.Tensor,
    with_values: bool = True,
) -> tuple[Distribution, th.Tensor | None, RNNStates]:
    """One pass through sb3-contrib's recurrent actor-critic over sequences: the action
    distribution, the values and the LSTM states after them.

    The same operations, in the same order, as ``RecurrentActorCriticPolicy.evaluate_actions``
    (which gives no access to the distribution) and its ``forward`` (the states), so that a
    distillation step needs one forward pass and matches RecurrentPPO's numbers bit for bit.

    :param policy: an sb3-contrib ``RecurrentActorCriticPolicy`` (MlpLstm, CnnLstm, MultiInputLstm)
    :param obs: observations of ``n_seq`` sequences, sequence-major (``seq * length + step``), as
        RecurrentPPO's buffers pad them (one step per sequence when acting)
    :param lstm_states: the actor's and the critic's states before the first step of each sequence
    :param episode_starts: 1.0 where an observation starts an episode (the state is reset there)
    :param with_values: also run the critic
    :return: the distribution, the values ``(batch, 1)`` (or None) and the states after the sequences
    """
    distribution, values, states, _ = recurrent_forward_with_memory(
        policy, obs, lstm_states, episode_starts, with_values
    )
    return distribution, values, states


def recurrent_forward_with_memory(
    policy: RecurrentActorCriticPolicy,
    obs: TensorObs,
    lstm_states: RNNStates,
    episode_starts: th.Tensor,
    with_values: bool = True,
) -> tuple[Distribution, th.Tensor | None, RNNStates, th.Tensor]:
    """:func:`recurrent_actor_critic_forward`, also giving the actor's LSTM output at every step
    (``(batch, lstm_hidden_size)``, in the observations' order): the student's memory, which an
    auxiliary loss can ask to predict what the student does not see.

    :param policy: as in :func:`recurrent_actor_critic_forward`
    :param obs: as there
    :param lstm_states: as there
    :param episode_starts: as there
    :param with_values: as there
    :return: the distribution, the values (or None), the states after the sequences, the actor's
        LSTM output
    """
    p: Any = policy  # sb3-contrib's LSTM helpers are loosely typed
    features = p.extract_features(obs)
    if p.share_features_extractor:
        pi_features = vf_features = features
    else:
        pi_features, vf_features = features
    latent_pi, states_pi = p._process_sequence(pi_features, lstm_states.pi, episode_starts, p.lstm_actor)
    values = None
    if p.lstm_critic is not None:
        if with_values:
            latent_vf, states_vf = p._process_sequence(
                vf_features, lstm_states.vf, episode_starts, p.lstm_critic
            )
        else:
            latent_vf, states_vf = None, lstm_states.vf
    elif p.shared_lstm:
        latent_vf = latent_pi.detach()
        states_vf = (states_pi[0].detach(), states_pi[1].detach())
    else:
        latent_vf = p.critic(vf_features) if with_values else None
        states_vf = states_pi
    memory = latent_pi
    latent_pi = p.mlp_extractor.forward_actor(latent_pi)
    if with_values:
        latent_vf = p.mlp_extractor.forward_critic(latent_vf)
    distribution = p._get_action_dist_from_latent(latent_pi)
    if with_values:
        values = p.value_net(latent_vf)
    return distribution, values, RNNStates(states_pi, states_vf), memory
