"""Export a student's deterministic policy to ONNX, with its observation normalization folded in.

The exported graph takes raw observations (what the environment returns) and gives the
action the student takes with ``deterministic=True``, plus the distribution parameters the
action comes from:

========================  ===============================  ==============================
action space              ``action``                       second output
========================  ===============================  ==============================
``Discrete(n)``           int64 ``(batch,)``               ``logits`` ``(batch, n)``
``MultiDiscrete(nvec)``   int64 ``(batch, len(nvec))``     ``logits`` ``(batch, sum(nvec))``
``MultiBinary(n)``        int64 ``(batch, n)``             ``logits`` ``(batch, n)``
``Box(d)``                float32 ``(batch, d)``           ``mean`` ``(batch, d)``
========================  ===============================  ==============================

Categorical ``logits`` are normalized (log-probabilities, what ``torch.distributions``
keeps); Bernoulli ``logits`` are the raw ones; ``mean`` is the Gaussian's mean before the
action is clipped to the bounds (or squashed, for a gSDE policy with ``squash_output``).
The batch axis is dynamic.

Normalization: a student that inherited its teacher's VecNormalize statistics carries them
inside its network (:class:`~ppdistill.networks.NormalizedFlattenExtractor`); a student
trained on a normalizing VecEnv has a ``vecnormalize.pkl`` beside its zip (found as
:func:`~ppdistill.teachers.loading.load_agent` finds it), which is folded in front of the network as a
frozen :class:`~ppdistill.networks.ObsNormalizer`. Either way the ONNX model takes raw
observations.

A recurrent student (an LSTM policy: RecurrentPPD, RecurrentStudentDistill,
RecurrentTeacherDistill, RecurrentPPO) is exported one step at a time with its memory as
inputs and outputs: besides ``obs`` it takes ``state_h`` and ``state_c``, the actor LSTM's
hidden and cell states ``(layers, batch, hidden)`` (zeros at the start), and ``episode_start``
``(batch,)`` (1.0 where an episode starts: the state is reset there, as RecurrentPPO does);
besides the action and its parameters it returns ``state_h_out`` and ``state_c_out``, to feed
back at the next step. Its parity check runs ONNX Runtime and PyTorch side by side over
sequences of steps, each step from the state PyTorch reached (an LSTM amplifies float rounding
over many steps; the check is that each step computes the same function, states included).

The exporter is PyTorch's ``torch.export``-based one (``dynamo=True``): the TorchScript
exporter is deprecated since PyTorch 2.9 and warns that it will be removed. It needs
``onnxscript``, installed with the ``[onnx]`` extra, and works offline.
"""

from __future__ import annotations

import importlib
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from torch import nn

from ppdistill.core.distributions import params_from_distribution
from ppdistill.core.errors import PPDistillError, one_line
from ppdistill.core.extras import require_extra
from ppdistill.core.files import atomic_write
from ppdistill.envs.recipe import agent_recipe
from ppdistill.networks.forward import actor_critic_forward
from ppdistill.networks.normalization import (
    NormalizedFlattenExtractor,
    ObsNormalizer,
    RunningNormalizedFlattenExtractor,
)
from ppdistill.teachers.actor_critic import ActorCriticTeacher
from ppdistill.teachers.base import Teacher
from ppdistill.teachers.loading import load_agent
from ppdistill.teachers.recurrent import RecurrentTeacher

PARITY_TOLERANCE = 1e-5
"""Largest absolute difference between ONNX Runtime and PyTorch that an export accepts."""

_EXTRA_MODULES = ("onnx", "onnxruntime", "onnxscript")


class ExportError(PPDistillError, ValueError):
    """The model cannot be exported, or the export does not reproduce it."""


def require_onnx(what: str = "ONNX export") -> None:
    """Raise :class:`MissingExtraError` naming ``[onnx]`` when one of its modules cannot be imported."""
    for module in _EXTRA_MODULES:
        require_extra(module, "onnx", what)


def obs_dtype(space: spaces.Space) -> np.dtype:
    """dtype of the raw observations an exported model takes (int64 for discrete spaces)."""
    if isinstance(space, spaces.Discrete | spaces.MultiDiscrete):
        return np.dtype(np.int64)
    return np.dtype(space.dtype)


class DeterministicPolicy(nn.Module):
    """The acting path of an SB3 actor-critic: raw observation → (action, logits or mean).

    Holds only what acting needs (normalization, the actor's features extractor, hidden
    layers and action head), so its parameters are the deployed policy's.

    :param policy: an SB3 ``ActorCriticPolicy`` (flat or image observations)
    :param obs_normalizer: frozen normalization applied to raw observations first
    """

    low: th.Tensor
    high: th.Tensor

    def __init__(self, policy: ActorCriticPolicy, obs_normalizer: ObsNormalizer | None = None) -> None:
        super().__init__()
        obs_space, act_space = policy.observation_space, policy.action_space
        if not isinstance(
            obs_space, spaces.Box | spaces.Discrete | spaces.MultiDiscrete | spaces.MultiBinary
        ):
            raise ExportError(
                f"observation space {obs_space} cannot be exported yet: use Box, Discrete, "
                "MultiDiscrete or MultiBinary observations"
            )
        if not isinstance(
            act_space, spaces.Box | spaces.Discrete | spaces.MultiDiscrete | spaces.MultiBinary
        ):
            raise ExportError(f"action space {act_space} cannot be exported")
        policy_net = getattr(policy.mlp_extractor, "policy_net", None)
        if not isinstance(policy_net, nn.Module):
            raise ExportError(
                f"{type(policy.mlp_extractor).__name__} has no policy_net: "
                "export takes SB3's MlpExtractor (MlpPolicy, CnnPolicy)"
            )
        self.observation_space = obs_space
        self.action_space = act_space
        self.normalize_images = bool(policy.normalize_images)
        self.obs_normalizer = obs_normalizer
        self.features_extractor = policy.pi_features_extractor
        self.policy_net = policy_net
        self.action_net = policy.action_net
        self.squash = bool(policy.squash_output)
        if isinstance(act_space, spaces.Box):
            self.register_buffer("low", th.as_tensor(act_space.low, dtype=th.float32).reshape(-1))
            self.register_buffer("high", th.as_tensor(act_space.high, dtype=th.float32).reshape(-1))
        self.output_names: tuple[str, ...] = (
            "action",
            "mean" if isinstance(act_space, spaces.Box) else "logits",
        )

    @property
    def obs_dtype(self) -> np.dtype:
        """dtype of the raw observations the model takes."""
        return obs_dtype(self.observation_space)

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Shape of one raw observation."""
        return tuple(self.observation_space.shape or ())

    def forward(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Action and distribution parameters for a batch of raw observations.

        :param obs: ``(batch, *obs_shape)`` raw observations
        :return: ``(action, logits)`` or ``(action, mean)`` (see the module's table)
        """
        return self._head(self.action_net(self.policy_net(self._features(obs))))

    def _features(self, obs: th.Tensor) -> th.Tensor:
        """The actor's features of raw observations (normalized, preprocessed, extracted)."""
        if self.obs_normalizer is not None:
            normalized = self.obs_normalizer(obs)
            assert isinstance(normalized, th.Tensor)
            obs = normalized
        x = preprocess_obs(obs, self.observation_space, normalize_images=self.normalize_images)
        assert isinstance(x, th.Tensor)
        features = self.features_extractor(x)
        assert isinstance(features, th.Tensor)
        return features

    def _head(self, out: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """The deterministic action and the distribution parameters from the action net's output."""
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            logits = th.log_softmax(out, dim=-1)
            return th.argmax(logits, dim=-1), logits
        if isinstance(space, spaces.MultiDiscrete):
            blocks = [th.log_softmax(b, dim=-1) for b in th.split(out, [int(n) for n in space.nvec], dim=-1)]
            actions = th.stack([th.argmax(b, dim=-1) for b in blocks], dim=-1)
            return actions, th.cat(blocks, dim=-1)
        if isinstance(space, spaces.MultiBinary):
            # SB3's Bernoulli mode is round(sigmoid(logit)); the same ops give the same ties
            actions = th.round(th.sigmoid(out)).to(th.int64)
            return actions.reshape(-1, *space.shape), out
        if self.squash:  # gSDE with squash_output: tanh, then scaled to the bounds
            action = self.low + 0.5 * (th.tanh(out) + 1.0) * (self.high - self.low)
        else:
            action = th.minimum(th.maximum(out, self.low), self.high)
        return action.reshape(-1, *space.shape), out


class RecurrentDeterministicPolicy(DeterministicPolicy):
    """The acting path of sb3-contrib's recurrent actor-critic, one step at a time: raw
    observation, LSTM state and episode start → (action, logits or mean, next LSTM state).

    :param policy: an sb3-contrib ``RecurrentActorCriticPolicy`` (flat or image observations)
    :param obs_normalizer: frozen normalization applied to raw observations first
    """

    def __init__(
        self, policy: RecurrentActorCriticPolicy, obs_normalizer: ObsNormalizer | None = None
    ) -> None:
        super().__init__(policy, obs_normalizer)
        self.lstm = policy.lstm_actor
        self.state_shape = tuple(policy.lstm_hidden_state_shape)  # (layers, 1, hidden)
        self.output_names = (*self.output_names, "state_h_out", "state_c_out")

    def forward(  # type: ignore[override]
        self, obs: th.Tensor, state_h: th.Tensor, state_c: th.Tensor, episode_start: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
        """One step of the policy for a batch of environments.

        :param obs: ``(batch, *obs_shape)`` raw observations
        :param state_h: ``(layers, batch, hidden)`` the actor LSTM's hidden state before the step
        :param state_c: ``(layers, batch, hidden)`` its cell state
        :param episode_start: ``(batch,)`` 1.0 where the observation starts an episode (state reset)
        :return: ``(action, logits or mean, state_h_out, state_c_out)``
        """
        keep = (1.0 - episode_start.float()).view(1, -1, 1)
        latent, (h, c) = self.lstm(self._features(obs).unsqueeze(0), (keep * state_h, keep * state_c))
        action, params = self._head(self.action_net(self.policy_net(latent.squeeze(0))))
        return action, params, h, c


@dataclass
class LoadedStudent:
    """An actor-critic policy ready to act on raw observations.

    :param policy: the SB3 policy, in eval mode
    :param obs_normalizer: normalization to apply before it (from a ``vecnormalize.pkl``), or None
    :param source: where it came from (a path, or the model's class name)
    :param normalizer_source: where ``obs_normalizer`` comes from
    :param view: what part of its environment's observation it sees, in words, when it does not
        see all of it (a ppdistill run's recorded ``env_recipe``)
    """

    policy: ActorCriticPolicy
    obs_normalizer: ObsNormalizer | None
    source: str
    normalizer_source: str | None = None
    view: str | None = None

    @property
    def recurrent(self) -> bool:
        """Whether the policy has an LSTM (its export takes and returns the state)."""
        return isinstance(self.policy, RecurrentActorCriticPolicy)

    @property
    def normalization(self) -> str:
        """Which observation normalization the exported model applies, in words."""
        parts = []
        if self.obs_normalizer is not None:
            parts.append(f"frozen, from {self.normalizer_source}")
        if isinstance(self.policy.pi_features_extractor, NormalizedFlattenExtractor):
            parts.append("the teacher's, inside the student's network")
        if isinstance(self.policy.pi_features_extractor, RunningNormalizedFlattenExtractor):
            parts.append("the student's own statistics of its rollouts, inside its network")
        return "; ".join(parts) or "none"

    def module(self) -> DeterministicPolicy:
        """The deterministic acting path as a torch module, in eval mode."""
        if isinstance(self.policy, RecurrentActorCriticPolicy):
            return RecurrentDeterministicPolicy(self.policy, self.obs_normalizer).eval()
        return DeterministicPolicy(self.policy, self.obs_normalizer).eval()


def load_student(student: str | Path | BaseAlgorithm | Teacher, env_id: str | None = None) -> LoadedStudent:
    """Get the policy (and external normalization) of an actor-critic student.

    :param student: a saved zip (PPD, StudentDistill, TeacherDistill, PPO, A2C, ...), an SB3
        model in memory (its VecNormalize statistics, if any, are frozen as they are now), or
        an actor-critic teacher from :func:`~ppdistill.load_teacher`
    :param env_id: check the student's spaces against this environment
    """
    if isinstance(student, str | Path):
        path = Path(student).expanduser()
        if not path.exists():
            raise ExportError(f"student file {path} does not exist; check the path")
        student = load_agent(path, env_id=env_id, role="student")
    if isinstance(student, BaseAlgorithm):
        if not isinstance(student.policy, ActorCriticPolicy):
            raise ExportError(
                f"{type(student).__name__} has a {type(student.policy).__name__}; "
                "export takes actor-critic students (PPD, StudentDistill, TeacherDistill, PPO, A2C)"
            )
        vecnorm = student.get_vec_normalize_env()
        normalizer = None
        if vecnorm is not None and vecnorm.norm_obs:
            if isinstance(vecnorm.obs_rms, dict):
                raise ExportError("Dict observations normalized by VecNormalize cannot be exported yet")
            normalizer = ObsNormalizer(
                vecnorm.obs_rms.mean, vecnorm.obs_rms.var, vecnorm.clip_obs, vecnorm.epsilon
            )
        policy = student.policy
        policy.set_training_mode(False)
        return LoadedStudent(
            policy, normalizer, type(student).__name__, "the model's VecNormalize", _view_words(student)
        )
    if isinstance(student, ActorCriticTeacher | RecurrentTeacher):
        return LoadedStudent(
            student.policy,
            student.obs_normalizer,
            str(student.info.get("path") or "an actor-critic teacher"),
            student.info.get("vecnormalize"),
            _view_words(student),
        )
    if isinstance(student, Teacher):
        kind = student.info.get("kind", type(student).__name__)
        where = student.info.get("path") or "the model"
        raise ExportError(
            f"{where} is a {kind} model, not an actor-critic student; export takes PPD, "
            "StudentDistill, TeacherDistill, PPO or A2C zips (distill a DQN or SAC into one first)"
        )
    raise TypeError(f"cannot export a {type(student).__name__}")


def _view_words(agent: Any) -> str | None:
    recipe = agent_recipe(agent)
    if recipe is None or recipe.student_view is None:
        return None
    whole = replace(recipe, student_view=None, teacher_view=None).describe()  # with its wrappers
    return f"{recipe.student_view.describe()} of the observation of {whole}"


def recurrent_inputs(
    student: LoadedStudent, n: int, seed: int = 0, n_envs: int = 8
) -> list[dict[str, np.ndarray]]:
    """Steps to check a recurrent export on: ``n`` observations from the space as sequences of
    ``n_envs`` environments, each step with its episode starts (all at the first step, then one
    in ten at random), seeded.

    :return: one ``{"obs": ..., "episode_start": ...}`` per step
    """
    n_envs = max(1, min(n_envs, n))
    observations = sample_observations(student, -(-n // n_envs) * n_envs, seed)
    rng = np.random.default_rng(seed)
    steps = []
    for t, start in enumerate(range(0, len(observations), n_envs)):
        starts = np.ones(n_envs, np.float32) if t == 0 else (rng.random(n_envs) < 0.1).astype(np.float32)
        steps.append({"obs": observations[start : start + n_envs], "episode_start": starts})
    return steps


RecurrentStates = list[tuple[np.ndarray, np.ndarray]]


def recurrent_torch_outputs(
    student: LoadedStudent, steps: list[dict[str, np.ndarray]]
) -> tuple[dict[str, np.ndarray], RecurrentStates]:
    """A recurrent student's outputs over ``steps``, computed the sb3-contrib way (``predict``
    with the state fed back; parameters from ``get_distribution``), concatenated over steps.

    :param student: from :func:`load_student`, a recurrent one
    :param steps: from :func:`recurrent_inputs`
    :return: ``{"action", "logits" or "mean", "state_h_out", "state_c_out"}``, and the state
        ``(h, c)`` before each step
    """
    policy = student.policy
    assert isinstance(policy, RecurrentActorCriticPolicy)
    layers, _, hidden = policy.lstm_hidden_state_shape
    zeros = np.zeros((layers, len(steps[0]["episode_start"]), hidden), np.float32)
    state: tuple[np.ndarray, ...] = (zeros, zeros)
    befores: RecurrentStates = []
    parts: dict[str, list[np.ndarray]] = {}
    for step in steps:
        obs = step["obs"]
        if student.obs_normalizer is not None:
            with th.no_grad():
                normalized = student.obs_normalizer(th.as_tensor(obs))
            assert isinstance(normalized, th.Tensor)
            obs = normalized.numpy()
        h, c = state
        befores.append((np.asarray(h, np.float32), np.asarray(c, np.float32)))
        actions, following = policy.predict(
            obs, state, step["episode_start"].astype(bool), deterministic=True
        )
        assert following is not None
        state = following
        with th.no_grad():
            obs_t, _ = policy.obs_to_tensor(obs)
            dist, _ = policy.get_distribution(
                obs_t,  # type: ignore[arg-type]
                (th.as_tensor(h, dtype=th.float32), th.as_tensor(c, dtype=th.float32)),
                th.as_tensor(step["episode_start"]),
            )
            params = params_from_distribution(dist).cpu().numpy()
        name = "mean" if isinstance(policy.action_space, spaces.Box) else "logits"
        values = {
            "action": actions,
            name: params[:, : params.shape[1] // 2] if name == "mean" else params,
            "state_h_out": state[0],
            "state_c_out": state[1],
        }
        for key, value in values.items():
            parts.setdefault(key, []).append(np.asarray(value).reshape(-1))
    return {k: np.concatenate(v) for k, v in parts.items()}, befores


def recurrent_onnx_outputs(
    onnx_path: str | Path,
    steps: list[dict[str, np.ndarray]],
    state_shape: tuple[int, ...],
    states: RecurrentStates | None = None,
) -> dict[str, np.ndarray]:
    """Run a recurrent export with ONNX Runtime over ``steps``, its own states fed back, or
    each step from ``states``.

    :param onnx_path: the ``.onnx`` file
    :param steps: from :func:`recurrent_inputs`
    :param state_shape: ``(layers, 1, hidden)``, the shape of one environment's state
    :param states: the state ``(h, c)`` before each step (None: zeros, then the model's own)
    :return: as :func:`recurrent_torch_outputs` (the outputs)
    """
    require_onnx("running an ONNX model")
    ort = importlib.import_module("onnxruntime")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    n = len(steps[0]["episode_start"])
    h = np.zeros((state_shape[0], n, state_shape[2]), np.float32)
    c = h.copy()
    parts: dict[str, list[np.ndarray]] = {}
    for i, step in enumerate(steps):
        if states is not None:
            h, c = states[i]
        feed = {"obs": step["obs"], "state_h": h, "state_c": c, "episode_start": step["episode_start"]}
        out = dict(zip(names, session.run(names, feed)))
        h, c = out["state_h_out"], out["state_c_out"]
        for key, value in out.items():
            parts.setdefault(key, []).append(np.asarray(value).reshape(-1))
    return {k: np.concatenate(v) for k, v in parts.items()}


def sample_observations(student: LoadedStudent, n: int, seed: int = 0) -> np.ndarray:
    """``n`` observations drawn from the student's observation space (seeded).

    Unbounded Box dimensions are drawn from N(0, 1), as gymnasium does.
    """
    space = student.policy.observation_space
    space.seed(seed)
    return np.stack([np.asarray(space.sample()) for _ in range(n)]).astype(obs_dtype(space))


def torch_outputs(student: LoadedStudent, observations: np.ndarray) -> dict[str, np.ndarray]:
    """The student's outputs computed the SB3 way, independently of :class:`DeterministicPolicy`.

    Actions come from ``policy.predict(..., deterministic=True)``; logits or mean from the
    policy's action distribution.

    :param student: from :func:`load_student`
    :param observations: raw observations ``(batch, *obs_shape)``
    :return: ``{"action": ..., "logits" or "mean": ...}``
    """
    policy = student.policy
    obs = observations
    if student.obs_normalizer is not None:
        with th.no_grad():
            normalized = student.obs_normalizer(th.as_tensor(observations))
        assert isinstance(normalized, th.Tensor)
        obs = normalized.numpy()
    actions, _ = policy.predict(obs, deterministic=True)
    with th.no_grad():
        obs_t, _ = policy.obs_to_tensor(obs)
        dist, _ = actor_critic_forward(policy, obs_t, with_values=False)
        params = params_from_distribution(dist).cpu().numpy()
    if isinstance(policy.action_space, spaces.Box):
        return {"action": actions, "mean": params[:, : params.shape[1] // 2]}
    return {"action": actions, "logits": params}


def onnx_outputs(onnx_path: str | Path, observations: np.ndarray) -> dict[str, np.ndarray]:
    """Run an exported model with ONNX Runtime on the CPU.

    :param onnx_path: the ``.onnx`` file
    :param observations: raw observations ``(batch, *obs_shape)`` of the model's input dtype
    :return: the outputs by name
    """
    require_onnx("running an ONNX model")
    ort = importlib.import_module("onnxruntime")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {session.get_inputs()[0].name: observations})
    return dict(zip(names, values))


@dataclass
class Parity:
    """How closely an ONNX export reproduces PyTorch.

    :param n_observations: observations compared
    :param max_abs_diff: largest absolute difference over every float output (and Box actions)
    :param actions_identical: for discrete spaces, every action equal (Box: within tolerance)
    """

    n_observations: int
    max_abs_diff: float
    actions_identical: bool

    @property
    def ok(self) -> bool:
        return self.actions_identical and self.max_abs_diff <= PARITY_TOLERANCE

    def __str__(self) -> str:
        same = "identical" if self.actions_identical else "DIFFERENT"
        return f"{self.n_observations} observations: max |diff| {self.max_abs_diff:.2e}, actions {same}"


def compare_outputs(reference: dict[str, np.ndarray], exported: dict[str, np.ndarray]) -> Parity:
    """Compare ONNX outputs with PyTorch's (see :func:`torch_outputs`, :func:`onnx_outputs`;
    a recurrent model's states too)."""
    diff = 0.0
    for name in ("logits", "mean", "state_h_out", "state_c_out"):
        if name in reference:
            diff = max(diff, float(np.max(np.abs(reference[name] - exported[name]))))
    ref_a, out_a = np.asarray(reference["action"]), np.asarray(exported["action"])
    if ref_a.dtype.kind == "f" and out_a.dtype.kind == "f":  # Box
        action_diff = float(np.max(np.abs(ref_a - out_a)))
        diff = max(diff, action_diff)
        identical = action_diff <= PARITY_TOLERANCE
    else:
        identical = ref_a.shape == out_a.shape and bool(np.all(ref_a.astype(np.int64) == out_a))
    return Parity(int(ref_a.shape[0]), diff, identical)


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote.

    :param path: the ``.onnx`` file
    :param input: name, shape and dtype of the input (a recurrent model's: all of them)
    :param outputs: name, shape and dtype of each output
    :param normalization: the observation normalization folded in, in words
    :param parity: ONNX Runtime against PyTorch on sampled observations
    :param view: the part of its environment's observation the student sees, when not all of it
        (also in the file's metadata, ``ppdistill.observation``)
    """

    path: Path
    input: str
    outputs: list[str]
    normalization: str
    parity: Parity
    view: str | None = None


def _signature(name: str, shape: tuple[int, ...], dtype: Any) -> str:
    dims = ", ".join(["batch", *map(str, shape)])
    return f"{name} ({dims}) {np.dtype(dtype).name}"


def export_onnx(
    student: str | Path | BaseAlgorithm | Teacher,
    out: str | Path,
    *,
    n_check: int = 1000,
    seed: int = 0,
    opset: int | None = None,
) -> ExportReport:
    """Export a student's deterministic policy to ONNX and check it against PyTorch.

    The file is written only when ONNX Runtime reproduces PyTorch on ``n_check`` sampled
    observations within :data:`PARITY_TOLERANCE` (discrete actions identical).

    :param student: a saved student zip, an SB3 actor-critic model, or an actor-critic teacher
    :param out: path of the ``.onnx`` file to write (replaced atomically)
    :param n_check: observations sampled from the observation space for the check (>= 1)
    :param seed: seed of those observations
    :param opset: ONNX opset (default: the exporter's)
    :return: what was written and how closely it matches
    """
    require_onnx()
    if n_check < 1:
        raise ExportError(f"n_check must be at least 1, got {n_check}")
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"{out} is a folder; give the path of the .onnx file to write")
    loaded = load_student(student)
    module = loaded.module()
    example: tuple[th.Tensor, ...] = (th.as_tensor(sample_observations(loaded, 2, seed)),)
    if isinstance(module, RecurrentDeterministicPolicy):
        layers, _, hidden = module.state_shape
        zeros = th.zeros(layers, 2, hidden)
        example = (*example, zeros, zeros.clone(), th.ones(2))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".onnx", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _torch_export(module, example, tmp, opset)
        onnx = importlib.import_module("onnx")
        model = onnx.load(str(tmp))
        onnx.checker.check_model(model)
        meta = {
            "ppdistill.source": loaded.source,
            "ppdistill.observation_space": str(module.observation_space),
            "ppdistill.action_space": str(module.action_space),
            "ppdistill.outputs": ", ".join(module.output_names),
        }
        if loaded.view is not None:  # what to feed it (positions, then their change, say)
            meta["ppdistill.observation"] = loaded.view
        if isinstance(module, RecurrentDeterministicPolicy):
            layers, _, hidden = module.state_shape
            meta["ppdistill.recurrent"] = (
                f"state_h, state_c ({layers}, batch, {hidden}): zeros at the start, fed back from "
                "state_h_out, state_c_out; episode_start (batch,) 1.0 resets them"
            )
        for key, value in meta.items():
            prop = model.metadata_props.add()
            prop.key, prop.value = key, value
        onnx.save(model, str(tmp))

        if isinstance(module, RecurrentDeterministicPolicy):
            steps = recurrent_inputs(loaded, n_check, seed)
            reference, befores = recurrent_torch_outputs(loaded, steps)
            exported = recurrent_onnx_outputs(tmp, steps, module.state_shape, befores)
            parity = compare_outputs(reference, exported)
            parity = replace(parity, n_observations=sum(len(step["obs"]) for step in steps))
        else:
            observations = sample_observations(loaded, n_check, seed)
            parity = compare_outputs(torch_outputs(loaded, observations), onnx_outputs(tmp, observations))
        if not parity.ok:
            raise ExportError(f"the ONNX model does not reproduce PyTorch ({parity}); nothing was written")
        atomic_write(out, tmp.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)

    with th.no_grad():
        action, params, *_ = module(*example)
    inputs = [_signature("obs", module.obs_shape, module.obs_dtype)]
    outputs = [
        _signature("action", tuple(action.shape[1:]), action.numpy().dtype),
        _signature(module.output_names[1], tuple(params.shape[1:]), params.numpy().dtype),
    ]
    if isinstance(module, RecurrentDeterministicPolicy):
        layers, _, hidden = module.state_shape
        states = [f"{name} ({layers}, batch, {hidden}) float32" for name in ("state_h", "state_c")]
        inputs += [*states, "episode_start (batch) float32"]
        outputs += [f"{name}_out{text[len(name) :]}" for name, text in zip(("state_h", "state_c"), states)]
    return ExportReport(
        path=out,
        input=", ".join(inputs),
        outputs=outputs,
        normalization=loaded.normalization,
        parity=parity,
        view=loaded.view,
    )


def _torch_export(
    module: DeterministicPolicy, example: tuple[th.Tensor, ...], path: Path, opset: int | None
) -> None:
    batch = th.export.Dim("batch")
    names = ["obs"]
    dynamic: dict[str, dict[int, Any]] = {"obs": {0: batch}}
    if isinstance(module, RecurrentDeterministicPolicy):
        names += ["state_h", "state_c", "episode_start"]
        dynamic.update(state_h={1: batch}, state_c={1: batch}, episode_start={0: batch})
    # The exporter logs missing optional ops (torchvision's) and warns about internals: noise here.
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._export")]
    levels = [lg.level for lg in quiet]
    try:
        for lg in quiet:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            th.onnx.export(
                module,
                example,
                str(path),
                dynamo=True,
                external_data=False,
                input_names=names,
                output_names=list(module.output_names),
                dynamic_shapes=dynamic,
                opset_version=opset,
                verbose=False,
            )
    except PPDistillError:
        raise
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed: {one_line(exc)}") from exc
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
