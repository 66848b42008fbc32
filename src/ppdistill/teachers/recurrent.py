"""RecurrentPPO teachers (sb3-contrib's LSTM policies): a hidden state carried through time.

A recurrent teacher's outputs at a step depend on every step of its episode so far, so the
teacher is run over a whole rollout at once, env by env, in time order (one call: the LSTM
takes the rollout as ``n_envs`` sequences of ``n_steps``), resetting its state where an
episode starts, and its state at the end of the rollout is carried into the next one
(:class:`RecurrentState`). Acting (teacher-distill, evaluation) steps it one observation at a
time with the same state. Its distribution is the actor-critic's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.preprocessing import maybe_transpose
from stable_baselines3.common.utils import is_vectorized_observation, obs_as_tensor

from ppdistill.core.distributions import params_from_distribution
from ppdistill.networks.forward import TensorObs
from ppdistill.teachers.base import BuildOptions, Teacher, TeacherKind, TeacherOutput


@dataclass
class RecurrentState:
    """The LSTM states of a recurrent teacher for ``n_envs`` environments: the actor's and the
    critic's (hidden, cell), each ``(layers, n_envs, hidden)``.

    :param actor: the actor LSTM's (hidden, cell)
    :param critic: the critic LSTM's (hidden, cell), the actor's when the critic has none
    """

    actor: tuple[th.Tensor, th.Tensor]
    critic: tuple[th.Tensor, th.Tensor]

    def as_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays, for checkpoints."""
        return {name: t.detach().cpu().numpy().copy() for name, t in self._named()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], device: th.device | str) -> RecurrentState:
        """Read :meth:`as_arrays` back."""

        def get(name: str) -> th.Tensor:
            return th.as_tensor(np.asarray(arrays[name]), dtype=th.float32, device=device)

        return cls((get("actor_h"), get("actor_c")), (get("critic_h"), get("critic_c")))

    def _named(self) -> list[tuple[str, th.Tensor]]:
        return [("actor_h", self.actor[0]), ("actor_c", self.actor[1]),
                ("critic_h", self.critic[0]), ("critic_c", self.critic[1])]  # fmt: skip


class RecurrentTeacher(Teacher):
    """A RecurrentPPO policy as a teacher (see the module docstring).

    :param policy: the sb3-contrib recurrent actor-critic policy
    """

    has_value = True
    recurrent = True

    def __init__(self, policy: RecurrentActorCriticPolicy, **kwargs: Any) -> None:
        super().__init__(policy.observation_space, policy.action_space, **kwargs)
        self.policy = policy

    def initial_state(self, n_envs: int) -> RecurrentState:
        """Zero states for ``n_envs`` environments (what an episode starts from)."""
        layers, _, hidden = self.policy.lstm_hidden_state_shape
        zeros = th.zeros(layers, n_envs, hidden, device=self.device)
        return RecurrentState((zeros, zeros.clone()), (zeros.clone(), zeros.clone()))

    def sequence(
        self, obs: TensorObs, episode_starts: th.Tensor, state: RecurrentState, with_values: bool = False
    ) -> tuple[TeacherOutput, RecurrentState]:
        """Outputs for ``n_envs`` sequences of observations, and the state after them.

        :param obs: raw observations in env-major order (``env * n_steps + step``), on the
            teacher's device
        :param episode_starts: 1.0 where an observation starts an episode, same order
        :param state: the state before the first step of each sequence
        :param with_values: also the values
        """
        with th.no_grad():
            if self.obs_normalizer is not None:
                obs = self.obs_normalizer(obs)
            policy: Any = self.policy  # sb3-contrib's private LSTM helpers are loosely typed
            features = policy.extract_features(obs, policy.pi_features_extractor)
            latent_pi, actor = policy._process_sequence(
                features, state.actor, episode_starts, policy.lstm_actor
            )
            distribution = policy._get_action_dist_from_latent(policy.mlp_extractor.forward_actor(latent_pi))
            critic = actor
            values = None
            if policy.lstm_critic is not None:
                vf_features = policy.extract_features(obs, policy.vf_features_extractor)
                latent_vf, critic = policy._process_sequence(
                    vf_features, state.critic, episode_starts, policy.lstm_critic
                )
            elif policy.shared_lstm:
                latent_vf = latent_pi
            else:
                latent_vf = policy.critic(features)
            if with_values:
                values = policy.value_net(policy.mlp_extractor.forward_critic(latent_vf)).reshape(-1)
                values = values * self.value_scale
        self.n_calls += 1
        first = next(iter(obs.values())) if isinstance(obs, dict) else obs
        self.n_samples += int(first.shape[0])
        return TeacherOutput(params_from_distribution(distribution), values), RecurrentState(actor, critic)

    def _forward(self, obs: TensorObs, with_values: bool) -> TeacherOutput:
        raise TypeError(
            "a recurrent teacher needs its state: use sequence() (distillation) or predict() (acting)"
        )

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Act like SB3's RecurrentPPO: actions and the next state (``evaluate`` passes them on).

        :param observation: a batch of raw observations (or one)
        :param state: the previous state (None: zeros)
        :param episode_start: where a new episode starts
        :param deterministic: take the mode
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
        obs = obs_as_tensor(observation, self.device)
        first = next(iter(obs.values())) if isinstance(obs, dict) else obs
        n_envs = int(first.shape[0])
        current = self.initial_state(n_envs) if state is None else _state_from_tuple(state, self.device)
        starts = np.zeros(n_envs) if episode_start is None else np.asarray(episode_start, dtype=np.float32)
        out, following = self.sequence(
            obs, th.as_tensor(starts, dtype=th.float32, device=self.device), current
        )
        actions = self.act(out.params, deterministic)
        if not vectorized:
            actions = actions[0]
        return actions, _state_to_tuple(following)


def _state_to_tuple(state: RecurrentState) -> tuple[np.ndarray, ...]:
    arrays = state.as_arrays()
    return tuple(arrays[k] for k in ("actor_h", "actor_c", "critic_h", "critic_c"))


def _state_from_tuple(state: tuple[np.ndarray, ...], device: th.device) -> RecurrentState:
    names = ("actor_h", "actor_c", "critic_h", "critic_c")
    return RecurrentState.from_arrays(dict(zip(names, state)), device)


def _build(policy: RecurrentActorCriticPolicy, options: BuildOptions) -> Teacher:
    return RecurrentTeacher(policy, info={**options.info, "kind": "recurrent"}, **options.common)


KINDS = (
    TeacherKind(
        "recurrent",
        (RecurrentActorCriticPolicy,),
        "recurrent (RecurrentPPO)",
        _build,
        "its own action distribution, its LSTM run over each rollout in time order (state carried, "
        "reset at episode starts)",
    ),
)
"""The SB3 policy kinds this module reads (see :class:`~ppdistill.teachers.base.TeacherKind`)."""
