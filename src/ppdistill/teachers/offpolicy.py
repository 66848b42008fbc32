"""Teachers from off-policy continuous-control agents and deterministic policies.

SAC, TQC and CrossQ (squashed Gaussians), TD3 and DDPG (deterministic), and ARS (a
deterministic policy, on Box or Discrete actions).

A PPO student's policy is an unsquashed diagonal Gaussian over the environment's actions
(clipped to the bounds when acting). The teachers' policies are not Gaussians in that space,
so each is turned into one *distillation target* in the flat Box layout (mean, log-std):

- **SAC, TQC, CrossQ** act with ``a = unscale(tanh(u))``, ``u ~ N(μ(s), σ(s))``: TQC's and
  CrossQ's actors are SAC's (CrossQ's with batch renormalization, always in eval mode here,
  on its running statistics). The target is the
  Gaussian with the same mean and variance as the teacher's action distribution
  (per dimension, in env units), computed by quadrature over the normal's quantiles —
  deterministic, no sampling. (Gauss–Hermite converges badly here: SAC's stds reach e² ≈ 7,
  where tanh is nearly a step function.) Moment matching is not an arbitrary choice: the
  Gaussian q minimizing the forward KL(p ‖ q) to any p is the one with p's mean and
  covariance, so distilling this
  target with the forward KL leads the student to the same Gaussian as the forward KL to
  SAC's true squashed distribution would. The teacher still *acts* through its real tanh.
  With ``squashed_target="mode"`` the target keeps that std but is centred on the teacher's
  deterministic action ``unscale(tanh(μ(s)))`` instead of the mean of its actions: a student
  evaluated deterministically then acts where the teacher does (the two differ where σ(s) is
  wide and tanh saturates, where the mean is pulled towards the middle of the range).
  ``squashed_std_scale`` multiplies the target's std (default 1). SAC's entropy bonus keeps its
  actions spread (0.25-0.28 of half the action range on a TQC Hopper teacher, where TD3's target
  takes 0.1). A PPO student's std is one per action dimension, not per state, so a narrower
  target does not move the best fit of the student's mean; it narrows the student's std (the
  spread of its rollouts' actions) and, in the KL, scales up the mean's term (weighted by
  1/σ_student²) against the reward's. Whether that helps is measured, not assumed.
- **TD3, DDPG** (SB3's DDPG is TD3 with one critic, no policy delay and no target noise; it
  saves a ``TD3Policy``) are deterministic: ``a = μ(s)``. The target is ``N(μ(s), σ_T²)`` with a
  fixed ``σ_T`` (``target_std`` × half the action range, default 0.1): the forward KL is
  then a Gaussian likelihood of the teacher's action plus a term that holds the student's
  std at ``σ_T`` instead of letting it collapse to zero (which the bare likelihood would).
  Acting stochastically samples that Gaussian, like TD3's exploration noise. A zip whose
  ``data`` records ``policy_delay == 1`` and ``target_noise_clip == 0`` (what DDPG saves) is
  recorded as kind ``ddpg``, any other as ``td3``.
- **ARS** (``ARSPolicy``, ``ARSLinearPolicy``) is deterministic too. On Box actions it is
  read like TD3: ``μ(s)`` is the action ARS takes (its output rescaled from ``[-1, 1]``
  when the policy squashes with tanh, its output clipped to the bounds when it does not) and
  the target is ``N(μ(s), σ_T²)``. On Discrete actions ARS takes the argmax of its outputs;
  the target is the near-greedy categorical ``softmax(outputs / τ)`` (``temperature``, as
  for value-based teachers), whose mode is ARS's action.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.ars.policies import ARSPolicy
from sb3_contrib.crossq.policies import CrossQPolicy
from sb3_contrib.tqc.policies import TQCPolicy
from stable_baselines3.sac.policies import SACPolicy
from stable_baselines3.td3.policies import TD3Policy

from ppdistill.core.distributions import distribution_from_params
from ppdistill.core.errors import ModelLoadError
from ppdistill.networks.forward import TensorObs
from ppdistill.teachers.base import BuildOptions, Teacher, TeacherKind, TeacherOutput
from ppdistill.teachers.sb3_zip import MAX_DATA_BYTES, MODEL_ZIP, open_regular_file

QUADRATURE_POINTS = 256
DEFAULT_TARGET_STD = 0.1

SQUASHED_TARGETS = ("moments", "mode")
"""Where a squashed-Gaussian teacher's target is centred (see the module docstring)."""

SquashedGaussianPolicy = SACPolicy | TQCPolicy | CrossQPolicy
"""Policies whose actor is SAC's: ``actor.get_action_dist_params``, a squashed Gaussian."""


def squashed_gaussian_moments(
    mean: th.Tensor, std: th.Tensor, low: th.Tensor, high: th.Tensor, n_points: int = QUADRATURE_POINTS
) -> tuple[th.Tensor, th.Tensor]:
    """Mean and std (env units) of ``low + (tanh(u) + 1) / 2 · (high − low)`` for ``u ~ N(mean, std²)``.

    :param mean: pre-tanh means ``(batch, d)``
    :param std: pre-tanh stds ``(batch, d)``
    :param low: action lower bounds ``(d,)``
    :param high: action upper bounds ``(d,)``
    :param n_points: quadrature points
    :return: ``(mean, std)`` of the action, each ``(batch, d)``
    """
    # midpoint rule in probability space: E[f(U)] ≈ mean_i f(μ + σ Φ⁻¹((i + ½) / n))
    u = (th.arange(n_points, dtype=th.float64) + 0.5) / n_points
    nodes = th.special.ndtri(u).to(dtype=mean.dtype, device=mean.device)
    t = th.tanh(mean.unsqueeze(-1) + std.unsqueeze(-1) * nodes)
    m1 = t.mean(-1)
    m2 = (t * t).mean(-1)
    t_std = (m2 - m1 * m1).clamp_min(1e-12).sqrt()
    half = (high - low) / 2
    return low + (m1 + 1) * half, t_std * half


class SquashedGaussianTeacher(Teacher):
    """A SAC, TQC or CrossQ actor as a teacher; its distillation target is moment-matched,
    centred on the mean of its actions or on its deterministic action (module docstring).

    :param policy: the SAC, TQC or CrossQ policy
    :param target: "moments" or "mode"
    :param std_scale: multiplies the target's std (> 0)
    """

    low: th.Tensor
    high: th.Tensor

    def __init__(
        self, policy: SquashedGaussianPolicy, target: str = "moments", std_scale: float = 1.0, **kwargs: Any
    ) -> None:
        if target not in SQUASHED_TARGETS:
            raise ModelLoadError(
                f"squashed_target must be one of {', '.join(SQUASHED_TARGETS)}, got {target!r}"
            )
        if not (std_scale > 0 and math.isfinite(std_scale)):
            raise ModelLoadError(f"squashed_std_scale must be a finite number > 0, got {std_scale}")
        super().__init__(policy.observation_space, policy.action_space, **kwargs)
        self.target = target
        self.std_scale = float(std_scale)
        assert isinstance(self.action_space, spaces.Box)
        self.policy = policy
        self.register_buffer("low", th.as_tensor(self.action_space.low, dtype=th.float32))
        self.register_buffer("high", th.as_tensor(self.action_space.high, dtype=th.float32))

    def pre_tanh(self, obs: TensorObs) -> tuple[th.Tensor, th.Tensor]:
        """Mean and std of the Gaussian before the tanh."""
        actor = self.policy.actor
        mean, log_std, extra = actor.get_action_dist_params(obs)
        normal = actor.action_dist.proba_distribution(mean, log_std, **extra).distribution
        return normal.mean, normal.stddev

    def _forward(self, obs: TensorObs, with_values: bool) -> TeacherOutput:
        mean, std = self.pre_tanh(obs)
        m, s = squashed_gaussian_moments(mean, std, self.low, self.high)
        if self.target == "mode":
            m = self.low + (th.tanh(mean) + 1) * (self.high - self.low) / 2
        return TeacherOutput(th.cat([m, s.log() + math.log(self.std_scale)], dim=1), None)

    def act_on(
        self, obs: TensorObs, deterministic: bool, with_values: bool = False
    ) -> tuple[np.ndarray, TeacherOutput]:
        out = self(obs, with_values=with_values)
        with th.no_grad():
            normalized = self.obs_normalizer(obs) if self.obs_normalizer is not None else obs
            mean, std = self.pre_tanh(normalized)
            u = mean if deterministic else mean + std * th.randn_like(std)
        return self.policy.unscale_action(th.tanh(u).cpu().numpy()), out


class DeterministicTeacher(Teacher):
    """A TD3, DDPG or ARS (Box actions) policy as a teacher: target ``N(μ(s), σ_T²)``
    (module docstring).

    :param policy: the TD3 policy (DDPG's too), or an ARS policy on Box actions
    :param target_std: ``σ_T`` as a fraction of half the action range
    """

    low: th.Tensor
    high: th.Tensor
    half_range: th.Tensor

    def __init__(
        self, policy: TD3Policy | ARSPolicy, target_std: float = DEFAULT_TARGET_STD, **kwargs: Any
    ) -> None:
        super().__init__(policy.observation_space, policy.action_space, **kwargs)
        assert isinstance(self.action_space, spaces.Box)
        if not target_std > 0:
            raise ModelLoadError(f"target_std must be > 0, got {target_std}")
        self.policy = policy
        self.target_std = float(target_std)
        low = th.as_tensor(self.action_space.low, dtype=th.float32)
        high = th.as_tensor(self.action_space.high, dtype=th.float32)
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        self.register_buffer("half_range", (high - low) / 2)

    def deterministic_action(self, obs: TensorObs) -> th.Tensor:
        """``μ(s)``: the action the policy takes, in env units (as its ``predict`` returns it)."""
        policy = self.policy
        if isinstance(policy, ARSPolicy):
            out = policy(obs)
            if not policy.squash_output:  # ARS clips an unsquashed output to the bounds
                return th.minimum(th.maximum(out, self.low), self.high)
            scaled = out
        else:
            scaled = policy.actor(obs)
        return self.low + (scaled + 1) * self.half_range  # tanh output in [-1, 1], rescaled

    def _forward(self, obs: TensorObs, with_values: bool) -> TeacherOutput:
        action = self.deterministic_action(obs)
        log_std = (self.target_std * self.half_range).log().expand_as(action)
        return TeacherOutput(th.cat([action, log_std], dim=1), None)

    def act(self, params: th.Tensor, deterministic: bool) -> np.ndarray:
        dist = distribution_from_params(self.action_space, params)
        actions = dist.get_actions(deterministic=deterministic).cpu().numpy()
        assert isinstance(self.action_space, spaces.Box)
        return np.clip(actions, self.action_space.low, self.action_space.high)


class ArgmaxTeacher(Teacher):
    """An ARS policy on Discrete actions: it takes the argmax of its outputs; the target is
    ``softmax(outputs / τ)``, near-greedy for a small τ, whose mode is that argmax.

    :param policy: the ARS policy
    :param temperature: τ > 0
    """

    def __init__(self, policy: ARSPolicy, temperature: float, **kwargs: Any) -> None:
        if not isinstance(policy.action_space, spaces.Discrete):
            raise ModelLoadError(
                f"an argmax teacher needs a Discrete action space, got {policy.action_space}"
            )
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ModelLoadError(f"temperature must be a finite number > 0, got {temperature}")
        super().__init__(policy.observation_space, policy.action_space, **kwargs)
        self.policy = policy
        self.temperature = float(temperature)

    def _forward(self, obs: TensorObs, with_values: bool) -> TeacherOutput:
        features = self.policy.extract_features(obs, self.policy.features_extractor)
        return TeacherOutput(self.policy.action_net(features) / self.temperature, None)


def _zip_data(path: str | None) -> dict[str, Any] | None:
    """The JSON ``data`` of a model zip already read by the loader (None: not readable)."""
    if path is None:
        return None
    try:
        with open_regular_file(Path(path), MODEL_ZIP) as file, zipfile.ZipFile(file) as archive:
            if archive.getinfo("data").file_size > MAX_DATA_BYTES:
                return None
            data = json.loads(archive.read("data"))
    except Exception:  # the loader has read it once; a label is not worth an error
        return None
    return data if isinstance(data, dict) else None


def is_ddpg(data: dict[str, Any] | None) -> bool:
    """Whether a ``TD3Policy`` zip's ``data`` is DDPG's: no policy delay, no target noise.

    SB3's DDPG is TD3 with ``policy_delay=1`` and ``target_noise_clip=0`` (and saves the same
    policy class); a TD3 so configured trains as DDPG does.
    """
    if not data:
        return False
    delay, noise_clip = data.get("policy_delay"), data.get("target_noise_clip")
    return isinstance(delay, int) and delay == 1 and isinstance(noise_clip, int | float) and noise_clip == 0


def _squashed_builder(name: str) -> Any:
    def build(policy: SquashedGaussianPolicy, options: BuildOptions) -> Teacher:
        info = {
            **options.info,
            "kind": name,
            "squashed_target": options.squashed_target,
            "squashed_std_scale": options.squashed_std_scale,
        }
        return SquashedGaussianTeacher(
            policy, options.squashed_target, options.squashed_std_scale, info=info, **options.common
        )

    return build


def _build_td3(policy: TD3Policy, options: BuildOptions) -> Teacher:
    name = "ddpg" if is_ddpg(_zip_data(options.info.get("path"))) else "td3"
    info = {**options.info, "kind": name, "target_std": options.target_std}
    return DeterministicTeacher(policy, target_std=options.target_std, info=info, **options.common)


def _build_ars(policy: ARSPolicy, options: BuildOptions) -> Teacher:
    if isinstance(policy.action_space, spaces.Box):
        info = {**options.info, "kind": "ars", "target_std": options.target_std}
        return DeterministicTeacher(policy, target_std=options.target_std, info=info, **options.common)
    if isinstance(policy.action_space, spaces.Discrete):
        info = {**options.info, "kind": "ars", "temperature": options.temperature}
        return ArgmaxTeacher(policy, options.temperature, info=info, **options.common)
    raise ModelLoadError(f"ARS teachers need Box or Discrete actions, not {policy.action_space}")


SQUASHED_TARGET = "the Gaussian with the mean and std of its squashed, rescaled actions (moment matching)"
DETERMINISTIC_TARGET = "N(μ(s), σ_T²) around its action μ(s), σ_T = target_std × half the action range"

KINDS = (
    TeacherKind("sac", (SACPolicy,), "SAC", _squashed_builder("sac"), SQUASHED_TARGET),
    TeacherKind("tqc", (TQCPolicy,), "TQC", _squashed_builder("tqc"), f"{SQUASHED_TARGET}, as SAC's"),
    TeacherKind(
        "crossq", (CrossQPolicy,), "CrossQ", _squashed_builder("crossq"), f"{SQUASHED_TARGET}, as SAC's"
    ),
    TeacherKind("td3", (TD3Policy,), "TD3, DDPG", _build_td3, DETERMINISTIC_TARGET),
    TeacherKind(
        "ars",
        (ARSPolicy,),
        "ARS",
        _build_ars,
        f"Box actions: {DETERMINISTIC_TARGET}; Discrete: softmax(outputs / τ), whose mode is its argmax",
    ),
)
"""The SB3 policy kinds this module reads (see :class:`~ppdistill.teachers.base.TeacherKind`)."""
