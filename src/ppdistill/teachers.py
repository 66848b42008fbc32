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

import base64
import inspect
import io
import json
import pickle
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
import yaml
from gymnasium import spaces
from sb3_contrib.qrdqn.policies import QRDQNPolicy
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.utils import is_vectorized_observation, obs_as_tensor
from stable_baselines3.dqn.policies import DQNPolicy
from torch import nn

from ppdistill.distributions import (
    SUPPORTED_ACTION_SPACES,
    actions_from_params,
    param_dim,
    params_from_distribution,
)
from ppdistill.envs import canonical_env_id, make_env
from ppdistill.errors import SpaceMismatchError, TeacherLoadError
from ppdistill.networks import ObsNormalizer, TensorObs, actor_critic_forward

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
                f"teacher action space {action_space} is not supported: use Discrete, MultiDiscrete, MultiBinary or Box"
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
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return th.device("cpu")

    @property
    def squashed(self) -> bool:
        """True when actions are tanh-squashed samples of the Gaussian (SAC-like)."""
        return False

    def forward(self, obs: TensorObs, with_values: bool = False) -> TeacherOutput:  # type: ignore[override]
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
        vectorized = is_vectorized_observation(observation, self.observation_space)
        if not vectorized:
            if isinstance(observation, dict):
                observation = {k: np.asarray(v)[None] for k, v in observation.items()}
            else:
                observation = np.asarray(observation)[None]
        obs_t = obs_as_tensor(observation, self.device)
        params = self(obs_t).params
        actions = self.act(params, deterministic)
        if not vectorized:
            actions = actions[0]
        return actions, None

    def act(self, params: th.Tensor, deterministic: bool) -> np.ndarray:
        """Environment actions from distribution parameters.

        :param params: ``(batch, param_dim)``
        :param deterministic: mode instead of a sample
        """
        return actions_from_params(self.action_space, params, deterministic)

    @property
    def param_dim(self) -> int:
        return param_dim(self.action_space)

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


# ======================================================================================
# Reading SB3 zips and VecNormalize pickles without the old gym package
# ======================================================================================


class _Record:
    """Stand-in for a pickled object we only read attributes from."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)


def _stub(name: str) -> type:
    return type(name, (_Record,), {})


_STUBS: dict[tuple[str, str], type] = {}
_SAFE_GLOBALS = {
    ("collections", "OrderedDict"),
    ("collections", "deque"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "float"),
    ("builtins", "int"),
    ("builtins", "bool"),
    ("builtins", "complex"),
    ("builtins", "slice"),
    ("torch", "device"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
}
_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric")
_NUMPY_NAMES = {"_reconstruct", "scalar", "_frombuffer"}
_CLASS_MODULE_PREFIXES = ("stable_baselines3.", "sb3_contrib.", "torch.nn.", "torch.optim.")


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles SB3 metadata: numpy data, gym/gymnasium spaces (as records), SB3 classes.

    Everything else is refused, so a foreign or hostile pickle raises instead of running.
    Classes from stable_baselines3, sb3_contrib, torch.nn and torch.optim are resolved by
    reference (policy classes, activation functions, optimizers).
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        if module in _NUMPY_MODULES and name in _NUMPY_NAMES:
            return super().find_class(module, name)
        if module == "numpy.random._pickle" or module.startswith("numpy.random"):
            # RNG states inside old spaces: read as records, never used.
            return _STUBS.setdefault((module, name), _stub(name))
        if module == "gym" or module.startswith(("gym.", "gymnasium.")) or module == "gymnasium":
            return _STUBS.setdefault((module, name), _stub(name))
        if module.endswith("running_mean_std") or module.endswith("vec_normalize"):
            return _STUBS.setdefault((module, name), _stub(name))
        if module.startswith(_CLASS_MODULE_PREFIXES):
            obj = super().find_class(module, name)
            if isinstance(obj, type):
                return obj
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _safe_loads(data: bytes) -> Any:
    return _SafeUnpickler(io.BytesIO(data)).load()


def _space_from_record(rec: Any) -> spaces.Space:
    """A gymnasium space from a pickled gym or gymnasium space (read as a record)."""
    if isinstance(rec, spaces.Space):
        return rec
    name = type(rec).__name__
    d = getattr(rec, "__dict__", {})
    if name == "Box":
        dtype = np.dtype(d.get("dtype", np.float32))
        low, high = np.asarray(d["low"]), np.asarray(d["high"])
        return spaces.Box(low=low.astype(dtype), high=high.astype(dtype), shape=low.shape, dtype=dtype)  # type: ignore[arg-type]
    if name == "Discrete":
        return spaces.Discrete(int(d["n"]), start=int(d.get("start", 0)))
    if name == "MultiDiscrete":
        return spaces.MultiDiscrete(np.asarray(d["nvec"]))
    if name == "MultiBinary":
        return spaces.MultiBinary(d["n"])
    if name == "Dict":
        return spaces.Dict({k: _space_from_record(v) for k, v in d["spaces"].items()})
    raise TeacherLoadError(f"cannot read a pickled space of type {name}")


@dataclass
class _ZipContents:
    data: dict[str, Any]
    policy_state: dict[str, th.Tensor]
    sb3_version: str


def _read_sb3_zip(path: Path) -> _ZipContents:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "data" not in names or "policy.pth" not in names:
                raise TeacherLoadError(
                    f"{path} is a zip but not a stable-baselines3 model (no 'data' or 'policy.pth' inside); "
                    "pass a file written by model.save()"
                )
            raw = archive.read("data").decode("utf-8")
            state_bytes = archive.read("policy.pth")
            version = archive.read("_stable_baselines3_version").decode() if "_stable_baselines3_version" in names else "?"
    except zipfile.BadZipFile as exc:
        raise TeacherLoadError(f"{path} is not a readable zip file ({exc}); pass an SB3 model .zip") from exc
    except (OSError, EOFError, UnicodeDecodeError, zipfile.LargeZipFile, RuntimeError, ValueError) as exc:
        if isinstance(exc, TeacherLoadError):
            raise
        raise TeacherLoadError(f"{path} cannot be read as an SB3 model zip: {exc}") from exc
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("'data' is not a JSON object")
    except ValueError as exc:
        raise TeacherLoadError(f"{path}: the model's 'data' entry is not valid JSON ({exc}); the file is damaged") from exc
    try:
        state = th.load(io.BytesIO(state_bytes), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types on damaged input
        raise TeacherLoadError(f"{path}: policy.pth cannot be read ({type(exc).__name__}); the file is damaged") from exc
    if not isinstance(state, Mapping):
        raise TeacherLoadError(f"{path}: policy.pth does not hold a state dict")
    return _ZipContents(data=data, policy_state=dict(state), sb3_version=version)


def _decode(data: dict[str, Any], key: str, path: Path, trust_pickle: bool) -> Any:
    item = data.get(key)
    if not isinstance(item, dict) or ":serialized:" not in item:
        return item
    blob = base64.b64decode(item[":serialized:"].encode())
    try:
        return _safe_loads(blob)
    except Exception as exc:
        if trust_pickle:
            import cloudpickle

            try:
                return cloudpickle.loads(blob)
            except Exception as exc2:
                raise TeacherLoadError(f"{path}: cannot decode {key!r} ({exc2})") from exc2
        raise TeacherLoadError(
            f"{path}: {key!r} holds a pickled object outside the allow-list ({exc}); "
            "if you trust this file, pass trust_pickle=True"
        ) from exc


def check_spaces_compatible(
    kind: str, stored: spaces.Space, env: spaces.Space, where: str, other: str = "the environment"
) -> None:
    """Raise SpaceMismatchError unless ``stored`` and ``env`` describe the same data.

    :param kind: "observation" or "action" (actions also compare Box bounds)
    :param stored: the space of ``where``
    :param env: the space it must match, that of ``other``
    :param where: who has ``stored`` (for the message)
    :param other: who has ``env`` (for the message)
    """
    ok = type(stored) is type(env)
    if ok and isinstance(stored, spaces.Box) and isinstance(env, spaces.Box):
        ok = stored.shape == env.shape
        if ok and kind == "action":
            ok = bool(np.allclose(stored.low, env.low) and np.allclose(stored.high, env.high))
        if ok and kind == "observation":
            # Image spaces (uint8) are scaled by SB3; a float/uint8 mix is a real mismatch.
            ok = (stored.dtype == np.uint8) == (env.dtype == np.uint8)
    elif ok and isinstance(stored, spaces.Discrete) and isinstance(env, spaces.Discrete):
        ok = stored.n == env.n
    elif ok and isinstance(stored, spaces.MultiDiscrete) and isinstance(env, spaces.MultiDiscrete):
        ok = bool(np.array_equal(stored.nvec, env.nvec))
    elif ok and isinstance(stored, spaces.MultiBinary) and isinstance(env, spaces.MultiBinary):
        ok = stored.shape == env.shape
    elif ok and isinstance(stored, spaces.Dict) and isinstance(env, spaces.Dict):
        ok = set(stored.spaces) == set(env.spaces)
        if ok:
            for k in stored.spaces:
                check_spaces_compatible(kind, stored.spaces[k], env.spaces[k], where, other)
    if not ok:
        raise SpaceMismatchError(f"{kind} spaces differ: {where} has {stored}, {other} has {env}")


def _construct_policy(policy_class: type, obs_space: spaces.Space, act_space: spaces.Space, kwargs: dict[str, Any]) -> BasePolicy:
    params = inspect.signature(policy_class.__init__).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    clean = {k: v for k, v in kwargs.items() if accepts_any or k in params}
    clean.pop("device", None)  # very old zips record it; the teacher is moved later
    arch = clean.get("net_arch")
    if isinstance(arch, list) and len(arch) == 1 and isinstance(arch[0], dict):
        clean["net_arch"] = arch[0]  # SB3 < 1.8 wrote [dict(pi=..., vf=...)]; same network
    try:
        return policy_class(obs_space, act_space, lambda _: 0.0, **clean)
    except Exception as exc:
        raise TeacherLoadError(f"cannot rebuild {policy_class.__name__} with {clean}: {exc}") from exc


def _load_state(policy: BasePolicy, state: dict[str, th.Tensor], path: Path) -> None:
    missing, unexpected = policy.load_state_dict(state, strict=False)
    # SB3 >= 1.8 also lists a shared features extractor under pi_/vf_features_extractor;
    # older zips store it once. Those aliases are the only keys allowed to be missing.
    aliases = ("pi_features_extractor.", "vf_features_extractor.")
    real_missing = [k for k in missing if not (k.startswith(aliases) and "features_extractor." + k.split(".", 1)[1] in state)]
    if real_missing or unexpected:
        raise TeacherLoadError(
            f"{path}: the weights do not fit the policy it describes "
            f"(missing {real_missing[:3]}, unexpected {list(unexpected)[:3]}); the file is damaged or from another library"
        )


def _read_vecnormalize(path: Path) -> tuple[ObsNormalizer | None, float]:
    """Frozen observation normalization and the reward scale from a ``vecnormalize.pkl``."""
    try:
        rec = _safe_loads(path.read_bytes())
    except Exception as exc:
        raise TeacherLoadError(f"{path} is not a readable VecNormalize pickle ({exc})") from exc
    d = getattr(rec, "__dict__", None)
    if not isinstance(d, dict) or "obs_rms" not in d:
        raise TeacherLoadError(f"{path} does not hold VecNormalize statistics")
    epsilon = float(d.get("epsilon", 1e-8))
    normalizer = None
    if d.get("norm_obs", True):
        obs_rms = d["obs_rms"]
        if isinstance(obs_rms, dict):
            mean = {k: np.asarray(v.__dict__["mean"]) for k, v in obs_rms.items()}
            var = {k: np.asarray(v.__dict__["var"]) for k, v in obs_rms.items()}
            normalizer = ObsNormalizer(mean, var, float(d.get("clip_obs", 10.0)), epsilon)
        else:
            normalizer = ObsNormalizer(
                np.asarray(obs_rms.__dict__["mean"]), np.asarray(obs_rms.__dict__["var"]), float(d.get("clip_obs", 10.0)), epsilon
            )
    value_scale = 1.0
    if d.get("norm_reward", False) and "ret_rms" in d:
        # VecNormalize divides rewards by sqrt(var(returns) + eps): the critic learned in those units.
        value_scale = float(np.sqrt(np.asarray(d["ret_rms"].__dict__["var"]) + epsilon))
    return normalizer, value_scale


@dataclass
class _Located:
    zip_path: Path
    vecnormalize: Path | None
    env_id: str | None


def _locate(path: Path) -> _Located:
    """Find the model zip, its VecNormalize statistics and the env id of a zoo-style folder."""
    if not path.exists():
        raise TeacherLoadError(f"teacher file {path} does not exist; check the path")
    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        zips = sorted(p for p in path.glob("*.zip"))
        preferred = [p for p in zips if p.stem == "best_model"] or zips
        if not preferred:
            raise TeacherLoadError(f"{path} is a folder without a model .zip; pass the .zip or an rl-zoo run folder")
        if len(preferred) > 1:
            raise TeacherLoadError(f"{path} holds several zips ({', '.join(p.name for p in preferred)}); pass one of them")
        zip_path = preferred[0]
    else:
        zip_path = path
    # rl-zoo layouts: <run>/<Env>.zip + <run>/<Env>/{config.yml,args.yml,vecnormalize.pkl}, or all side by side
    side = folder / zip_path.stem
    candidates = [side / "vecnormalize.pkl", folder / "vecnormalize.pkl"]
    vecnormalize = next((c for c in candidates if c.is_file()), None)
    env_id = None
    for args in (side / "args.yml", folder / "args.yml"):
        if args.is_file():
            try:
                loaded = yaml.load(args.read_text(), Loader=yaml.UnsafeLoader)
                env_id = dict(loaded).get("env")
            except Exception:
                env_id = None
            break
    return _Located(zip_path, vecnormalize, env_id)


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
    :return: the teacher, frozen, in eval mode
    """
    env_obs = env_act = None
    if env_id is not None:
        env = make_env(env_id)
        env_obs, env_act = env.observation_space, env.action_space
        env.close()

    if callable(source) and not isinstance(source, str | Path):
        obs_space = observation_space or env_obs
        act_space = action_space or env_act
        if obs_space is None or act_space is None:
            raise TeacherLoadError("a callable teacher needs env_id=, or observation_space= and action_space=")
        teacher: Teacher = CallableTeacher(
            source, obs_space, act_space, value_fn=value_fn, info={"kind": "callable", "env_id": env_id}
        )
        return teacher.to(device).freeze()

    path = Path(source).expanduser()
    located = _locate(path)
    if env_id is None and located.env_id is not None:
        env_id = canonical_env_id(located.env_id)
        env = make_env(env_id)
        env_obs, env_act = env.observation_space, env.action_space
        env.close()
    contents = _read_sb3_zip(located.zip_path)
    data = contents.data
    policy_class = _decode(data, "policy_class", located.zip_path, trust_pickle)
    if not isinstance(policy_class, type) or not issubclass(policy_class, BasePolicy):
        raise TeacherLoadError(f"{located.zip_path}: 'policy_class' is not an SB3 policy class")
    policy_kwargs = _decode(data, "policy_kwargs", located.zip_path, trust_pickle) or {}
    obs_space = act_space = None
    for key in ("observation_space", "action_space"):
        try:
            space = _space_from_record(_decode(data, key, located.zip_path, trust_pickle=False))
        except (TeacherLoadError, KeyError, TypeError, ValueError):
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
        raise TeacherLoadError(f"{located.zip_path}: its spaces cannot be read; pass env_id= so they come from the environment")

    if issubclass(policy_class, ActorCriticPolicy):
        policy_kwargs = {**policy_kwargs, "use_sde": bool(data.get("use_sde", False))}
    policy = _construct_policy(policy_class, obs_space, act_space, policy_kwargs)
    _load_state(policy, contents.policy_state, located.zip_path)
    policy.set_training_mode(False)

    vec_path = Path(vecnormalize) if vecnormalize is not None else located.vecnormalize
    normalizer, value_scale = _read_vecnormalize(vec_path) if vec_path is not None else (None, 1.0)
    if normalizer is not None and normalizer.keys is None and isinstance(obs_space, spaces.Box):
        if tuple(normalizer.mean.shape) != tuple(obs_space.shape):
            raise TeacherLoadError(
                f"{vec_path} normalizes observations of shape {tuple(normalizer.mean.shape)}, "
                f"but the teacher takes {obs_space.shape}; pass the vecnormalize.pkl saved with this model"
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

        teacher = offpolicy_teacher(policy, info=info, **common)
    return teacher.to(device).freeze()
