"""Frozen teachers, and the loaders that build them from files or callables.

A :class:`Teacher` maps raw observations (what the environment returns, before any
normalization of the student's) to action-distribution parameters in the flat layout of
:mod:`ppdistill.distributions`, and optionally to state values. It applies its own frozen
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
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.qrdqn.policies import QRDQNPolicy
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.preprocessing import maybe_transpose
from stable_baselines3.common.utils import is_vectorized_observation, obs_as_tensor
from stable_baselines3.dqn.policies import DQNPolicy
from torch import nn

from ppdistill.distributions import (
    SUPPORTED_ACTION_SPACES,
    actions_from_params,
    param_dim,
    params_from_distribution,
)
from ppdistill.envs import canonical_env_id, env_spaces
from ppdistill.errors import PPDistillError, TeacherLoadError
from ppdistill.networks import ObsNormalizer, TensorObs, actor_critic_forward
from ppdistill.serialization import (
    check_spaces_compatible,
    construct_policy,
    decode_entry,
    load_policy_state,
    locate,
    one_line,
    read_sb3_zip,
    read_vecnormalize,
    space_from_record,
)

DEFAULT_Q_TEMPERATURE = 0.01
"""τ in softmax(Q/τ) for value-based teachers (Rusu et al. 2016 found 0.01 best)."""


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
            raise TeacherLoadError(
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
    def hidden_layers(self) -> list[int] | None:
        """The actor's hidden layer sizes when the teacher is an SB3 MLP (for student presets)."""
        policy = getattr(self, "policy", None) or getattr(self, "module", None)
        arch = getattr(policy, "net_arch", None)
        if arch is None:
            return None
        from ppdistill.networks import teacher_mlp_width

        return teacher_mlp_width(arch)

    def extra_repr(self) -> str:
        kind = self.info.get("kind", type(self).__name__)
        return f"kind={kind}, obs={self.observation_space}, act={self.action_space}"


class ActorCriticTeacher(Teacher):
    """An SB3 actor-critic policy (PPO, A2C, TRPO; gSDE included) as a teacher."""

    has_value = True

    def __init__(self, policy: ActorCriticPolicy, **kwargs: Any) -> None:
        super().__init__(policy.observation_space, policy.action_space, **kwargs)
        self.policy = policy

    def _forward(self, obs: TensorObs, with_values: bool) -> TeacherOutput:
        dist, values = actor_critic_forward(self.policy, obs, with_values=with_values)
        return TeacherOutput(params_from_distribution(dist), values)


class QValueTeacher(Teacher):
    """A value-based teacher (DQN, QR-DQN): policy = softmax(Q / τ).

    τ applies to the teacher only; the student keeps its own logits. Small τ (the default,
    0.01) makes the teacher's policy nearly greedy, so the forward KL is close to the
    cross-entropy on the teacher's best action; a larger τ passes on how the teacher ranks
    the other actions. The value is E_π[Q].

    :param q_function: maps normalized observations to Q-values ``(batch, n_actions)``
    :param module: the network(s) behind ``q_function`` (frozen and moved with the teacher)
    :param temperature: τ > 0
    """

    has_value = True

    def __init__(
        self,
        q_function: Callable[[TensorObs], th.Tensor],
        module: nn.Module,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        temperature: float = DEFAULT_Q_TEMPERATURE,
        **kwargs: Any,
    ) -> None:
        if not isinstance(action_space, spaces.Discrete):
            raise TeacherLoadError(f"a value-based teacher needs a Discrete action space, got {action_space}")
        if not temperature > 0:
            raise TeacherLoadError(f"temperature must be > 0, got {temperature}")
        super().__init__(observation_space, action_space, **kwargs)
        self.q_function = q_function
        self.module = module
        self.temperature = float(temperature)

    def _forward(self, obs: TensorObs, with_values: bool) -> TeacherOutput:
        q = self.q_function(obs)
        logits = q / self.temperature
        values = (th.softmax(logits, dim=-1) * q).sum(-1) if with_values else None
        return TeacherOutput(logits, values)


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
                f"{self.action_space} needs {self.param_dim} (see ppdistill.distributions)"
            )
        values = self.value_fn(obs) if (with_values and self.value_fn is not None) else None
        return TeacherOutput(params, values)


def load_teacher(
    source: str | Path | Callable[[TensorObs], th.Tensor],
    env_id: str | None = None,
    *,
    temperature: float = DEFAULT_Q_TEMPERATURE,
    vecnormalize: str | Path | None = None,
    observation_space: spaces.Space | None = None,
    action_space: spaces.Space | None = None,
    value_fn: Callable[[TensorObs], th.Tensor] | None = None,
    device: th.device | str = "cpu",
    trust_pickle: bool = False,
    target_std: float = 0.1,
) -> Teacher:
    """Load a frozen teacher.

    Accepts an SB3 zip of an actor-critic algorithm (PPO, A2C, TRPO) or a value-based one
    (DQN, QR-DQN), an rl-zoo run folder (zip + ``config.yml`` + ``vecnormalize.pkl``), zips
    pickled with the old ``gym`` package, or a plain callable from observation tensors to
    distribution parameters (see :mod:`ppdistill.distributions` for the layout).

    :param source: path to a zip or folder, or a callable
    :param env_id: environment the teacher will be used on; its spaces are checked against
        the teacher's. Legacy ids (``LunarLander-v2``) are mapped to today's. When omitted,
        an rl-zoo folder's ``args.yml`` names it.
    :param temperature: τ of softmax(Q/τ) for value-based teachers
    :param vecnormalize: a ``vecnormalize.pkl`` to use (found automatically in zoo folders)
    :param observation_space: for a callable teacher without ``env_id``
    :param action_space: for a callable teacher without ``env_id``
    :param value_fn: for a callable teacher: observations → values
    :param device: where the teacher runs (distillation algorithms move it to the student's device)
    :param trust_pickle: allow arbitrary unpickling for zips with custom classes
    :param target_std: TD3/DDPG teachers: std of the Gaussian target around the teacher's
        action, as a fraction of half the action range (see :mod:`ppdistill.offpolicy`)
    :return: the teacher, frozen, in eval mode
    """
    env_obs = env_act = None
    if env_id is not None:
        env_obs, env_act = env_spaces(env_id)

    if callable(source) and not isinstance(source, str | Path):
        obs_space = observation_space or env_obs
        act_space = action_space or env_act
        if obs_space is None or act_space is None:
            raise TeacherLoadError(
                "a callable teacher needs env_id=, or observation_space= and action_space="
            )
        teacher: Teacher = CallableTeacher(
            source, obs_space, act_space, value_fn=value_fn, info={"kind": "callable", "env_id": env_id}
        )
        return teacher.to(device).freeze()

    path = Path(source).expanduser()
    try:
        teacher = _load_from_file(
            path, env_id, env_obs, env_act, temperature, vecnormalize, trust_pickle, target_std
        )
    except PPDistillError:
        raise
    except Exception as exc:  # anything a damaged or hostile file provokes besides our own checks
        raise TeacherLoadError(
            f"{path} cannot be loaded as a teacher ({one_line(exc)}); the file is damaged or unsupported"
        ) from exc
    return teacher.to(device).freeze()


def _load_from_file(
    path: Path,
    env_id: str | None,
    env_obs: spaces.Space | None,
    env_act: spaces.Space | None,
    temperature: float,
    vecnormalize: str | Path | None,
    trust_pickle: bool,
    target_std: float,
) -> Teacher:
    teacher: Teacher
    located = locate(path)
    if env_id is None and located.env_id is not None:
        env_id = canonical_env_id(located.env_id)
        env_obs, env_act = env_spaces(env_id)
    contents = read_sb3_zip(located.zip_path)
    data = contents.data
    policy_class = decode_entry(data, "policy_class", located.zip_path, trust_pickle)
    if not isinstance(policy_class, type) or not issubclass(policy_class, BasePolicy):
        raise TeacherLoadError(f"{located.zip_path}: 'policy_class' is not an SB3 policy class")
    from stable_baselines3.sac.policies import SACPolicy
    from stable_baselines3.td3.policies import TD3Policy

    # refused before rebuilding, so an unsupported kind is not reported as a damaged file
    if not issubclass(policy_class, (ActorCriticPolicy, DQNPolicy, QRDQNPolicy, SACPolicy, TD3Policy)):
        raise TeacherLoadError(
            f"{policy_class.__name__} teachers are not supported: use an actor-critic (PPO, A2C, TRPO), "
            "value-based (DQN, QR-DQN), SAC or TD3 model, or wrap your policy in a callable"
        )
    policy_kwargs = decode_entry(data, "policy_kwargs", located.zip_path, trust_pickle) or {}
    if not isinstance(policy_kwargs, dict):
        raise TeacherLoadError(f"{located.zip_path}: 'policy_kwargs' is not a mapping; the file is damaged")
    obs_space = act_space = None
    for key in ("observation_space", "action_space"):
        try:
            space = space_from_record(decode_entry(data, key, located.zip_path, trust_pickle=False))
        except Exception:  # unreadable: the environment's space is used (or we say so below)
            space = None
        if key == "observation_space":
            obs_space = space
        else:
            act_space = space
    where = f"teacher {located.zip_path.name}"
    if obs_space is not None and env_obs is not None:
        check_spaces_compatible("observation", obs_space, env_obs, where)
    if act_space is not None and env_act is not None:
        check_spaces_compatible("action", act_space, env_act, where)
    # Prefer the environment's own space objects (today's bounds); fall back on the stored ones.
    obs_space = env_obs or obs_space
    act_space = env_act or act_space
    if obs_space is None or act_space is None:
        raise TeacherLoadError(
            f"{located.zip_path}: its spaces cannot be read; pass env_id= so they come from the environment"
        )

    if issubclass(policy_class, ActorCriticPolicy):
        policy_kwargs = {**policy_kwargs, "use_sde": bool(data.get("use_sde", False))}
    n_weights = sum(t.numel() for t in contents.policy_state.values())
    policy = construct_policy(policy_class, obs_space, act_space, policy_kwargs, n_weights=n_weights)
    load_policy_state(policy, contents.policy_state, located.zip_path)
    for name, tensor in contents.policy_state.items():
        if tensor.is_floating_point() and not bool(th.isfinite(tensor).all()):
            raise TeacherLoadError(
                f"{located.zip_path}: the weight {name} holds NaN or infinite values; the file is damaged"
            )
    policy.set_training_mode(False)

    vec_path = Path(vecnormalize) if vecnormalize is not None else located.vecnormalize
    normalizer, value_scale = read_vecnormalize(vec_path) if vec_path is not None else (None, 1.0)
    if normalizer is not None and normalizer.keys is None and isinstance(obs_space, spaces.Box):
        norm_shape = tuple(normalizer.stats()["mean"].shape)
        if norm_shape != obs_space.shape:
            raise TeacherLoadError(
                f"{vec_path} normalizes observations of shape {norm_shape}, but the teacher takes "
                f"{obs_space.shape}; pass the vecnormalize.pkl saved with this model"
            )
    info = {
        "path": str(located.zip_path.resolve()),
        "vecnormalize": str(vec_path.resolve()) if vec_path else None,
        "algo_policy": policy_class.__name__,
        "env_id": env_id,
        "sb3_version": contents.sb3_version,
    }
    common = {"obs_normalizer": normalizer, "value_scale": value_scale}
    if isinstance(policy, ActorCriticPolicy):
        teacher = ActorCriticTeacher(policy, info={**info, "kind": "actor-critic"}, **common)
    elif isinstance(policy, DQNPolicy):
        teacher = QValueTeacher(
            policy.q_net,
            policy,
            obs_space,
            act_space,  # type: ignore[arg-type]
            temperature=temperature,
            info={**info, "kind": "q-values", "temperature": temperature},
            **common,
        )
    elif isinstance(policy, QRDQNPolicy):
        quantile_net = policy.quantile_net

        def mean_q(obs: TensorObs) -> th.Tensor:
            return quantile_net(obs).mean(dim=1)

        teacher = QValueTeacher(
            mean_q,
            policy,
            obs_space,
            act_space,  # type: ignore[arg-type]
            temperature=temperature,
            info={**info, "kind": "quantiles", "temperature": temperature},
            **common,
        )
    else:
        from ppdistill.offpolicy import offpolicy_teacher

        teacher = offpolicy_teacher(policy, info=info, target_std=target_std, **common)
    return teacher
