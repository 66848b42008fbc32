"""Reading SB3 model zips and VecNormalize pickles safely, old ``gym`` pickles included.

Nothing here instantiates an algorithm or unpickles arbitrary objects: the zip's ``data``
entries are decoded with an allow-list unpickler that resolves classes from
stable_baselines3, sb3_contrib, torch.nn, torch.optim and ppdistill by reference, reads numpy arrays,
and reads gym or gymnasium spaces (and VecNormalize statistics) as plain records, which are
then mapped onto today's gymnasium spaces. Anything else is refused with
:class:`~ppdistill.core.errors.ModelLoadError`.

Hostile files: the unpickler only *names* classes, it never calls them (a pickle that
tries gets an error), and it is the pure-Python one, which never allocates more than the
bytes it is given. Zip entries are size-checked before they are inflated (no zip bombs),
and the policy a file describes is first built on torch's ``meta`` device, without memory,
so that one whose size does not match the weights it ships is refused before it is
allocated.
"""

from __future__ import annotations

import base64
import inspect
import io
import json
import pickle
import zipfile
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from torch.overrides import TorchFunctionMode

from ppdistill.core.errors import ModelLoadError, one_line
from ppdistill.networks.normalization import ObsNormalizer


class _Record:
    """Stand-in for a pickled object we only read attributes from."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args

    def __setstate__(self, state: Any) -> None:
        # (dict, slots) is pickle's default; other tuples (numpy's bit generators pickle
        # (state, seed_sequence) in a seeded space's RNG) are kept whole, never merged.
        if (
            isinstance(state, tuple)
            and len(state) == 2
            and all(s is None or isinstance(s, dict) for s in state)
        ):
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self._state = state


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


_NUMPY_MODULES = (
    "numpy.core.multiarray",
    "numpy._core.multiarray",
    "numpy.core.numeric",
    "numpy._core.numeric",
)


_NUMPY_NAMES = {"_reconstruct", "scalar", "_frombuffer"}


_CLASS_MODULE_PREFIXES = ("stable_baselines3.", "sb3_contrib.", "torch.nn.", "torch.optim.", "ppdistill.")


class _ClassRef:
    """A class named by a pickle, held inert while unpickling and resolved afterwards."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise pickle.UnpicklingError(f"refusing to call {self.cls.__module__}.{self.cls.__qualname__}")

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError("refusing to set the state of a class")


class _SafeUnpickler(pickle._Unpickler):
    """Unpickles SB3 metadata: numpy data, gym/gymnasium spaces (as records), SB3 classes.

    Everything else is refused, so a foreign or hostile pickle raises instead of running.
    Classes from stable_baselines3, sb3_contrib, torch.nn, torch.optim and ppdistill are
    resolved by reference (policy classes, activation functions, optimizers), but a pickle
    cannot call them: they stand as inert :class:`_ClassRef` until the load is over.
    The pure-Python unpickler reads length fields without allocating them up front.
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
                return _ClassRef(obj)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _resolve_classes(obj: Any) -> Any:
    """Replace the :class:`_ClassRef` placeholders by their classes, in containers and records."""
    if isinstance(obj, _ClassRef):
        return obj.cls
    if isinstance(obj, dict):
        for k, v in obj.items():
            obj[k] = _resolve_classes(v)
    elif isinstance(obj, list | deque):
        for i, v in enumerate(obj):
            obj[i] = _resolve_classes(v)
    elif isinstance(obj, tuple):
        return type(obj)(_resolve_classes(v) for v in obj) if type(obj) is tuple else obj
    elif isinstance(obj, _Record):
        _resolve_classes(obj.__dict__)
    return obj


def safe_loads(data: bytes) -> Any:
    return _resolve_classes(_SafeUnpickler(io.BytesIO(data)).load())


def space_from_record(rec: Any) -> spaces.Space:
    """A gymnasium space from a pickled gym or gymnasium space (read as a record)."""
    if isinstance(rec, spaces.Space):
        return rec
    name = type(rec).__name__
    d = getattr(rec, "__dict__", {})
    if name == "Box":
        dtype = np.dtype(d.get("dtype", np.float32))
        low, high = np.asarray(d["low"]), np.asarray(d["high"])
        return spaces.Box(low=low.astype(dtype), high=high.astype(dtype), shape=low.shape, dtype=dtype)
    if name == "Discrete":
        return spaces.Discrete(int(d["n"]), start=int(d.get("start", 0)))
    if name == "MultiDiscrete":
        return spaces.MultiDiscrete(np.asarray(d["nvec"]))
    if name == "MultiBinary":
        return spaces.MultiBinary(d["n"])
    if name == "Dict":
        return spaces.Dict({k: space_from_record(v) for k, v in d["spaces"].items()})
    raise ModelLoadError(f"cannot read a pickled space of type {name}")


@dataclass
class ZipContents:
    data: dict[str, Any]
    policy_state: dict[str, th.Tensor]
    sb3_version: str


# Largest zip entries read (declared, uncompressed sizes) and the largest inflation ratio
# accepted beyond 1 MiB: SB3's data is a few KB of JSON, its weights compress by ~1.1x,
# while a zip bomb inflates by up to ~1000x.
MAX_DATA_BYTES = 256 << 20


MAX_WEIGHTS_BYTES = 2 << 30


MAX_INFLATION = 200


def _read_entry(archive: zipfile.ZipFile, name: str, limit: int, path: Path) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > limit or (
        info.file_size > (1 << 20) and info.file_size > MAX_INFLATION * max(1, info.compress_size)
    ):
        raise ModelLoadError(
            f"{path}: its entry {name!r} claims {info.file_size} bytes "
            f"({info.compress_size} compressed); refusing to inflate it (damaged or hostile file)"
        )
    return archive.read(name)


def read_sb3_zip(path: Path) -> ZipContents:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "data" not in names or "policy.pth" not in names:
                raise ModelLoadError(
                    f"{path} is a zip but not a stable-baselines3 model (no 'data' or 'policy.pth' inside); "
                    "pass a file written by model.save()"
                )
            raw = _read_entry(archive, "data", MAX_DATA_BYTES, path).decode("utf-8")
            state_bytes = _read_entry(archive, "policy.pth", MAX_WEIGHTS_BYTES, path)
            version = (
                _read_entry(archive, "_stable_baselines3_version", 1024, path).decode()
                if "_stable_baselines3_version" in names
                else "?"
            )
    except ModelLoadError:
        raise
    except zipfile.BadZipFile as exc:
        raise ModelLoadError(
            f"{path} is not a readable zip file ({one_line(exc)}); pass an SB3 model .zip"
        ) from exc
    except (OSError, EOFError, zipfile.LargeZipFile, RuntimeError, ValueError, NotImplementedError) as exc:
        # ValueError includes UnicodeDecodeError; zlib.error is an Exception (damaged deflate data)
        raise ModelLoadError(f"{path} cannot be read as an SB3 model zip: {one_line(exc)}") from exc
    except Exception as exc:  # zlib.error, struct.error: a damaged archive
        raise ModelLoadError(f"{path} is a damaged zip file ({one_line(exc)})") from exc
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("'data' is not a JSON object")
    except (ValueError, RecursionError) as exc:
        raise ModelLoadError(
            f"{path}: the model's 'data' entry is not valid JSON ({one_line(exc)}); the file is damaged"
        ) from exc
    try:
        state = th.load(io.BytesIO(state_bytes), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types on damaged input
        raise ModelLoadError(
            f"{path}: policy.pth cannot be read ({type(exc).__name__}); the file is damaged"
        ) from exc
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, th.Tensor) for k, v in state.items()
    ):
        raise ModelLoadError(f"{path}: policy.pth does not hold a state dict of tensors")
    return ZipContents(data=data, policy_state=dict(state), sb3_version=version)


def decode_entry(data: dict[str, Any], key: str, path: Path, trust_pickle: bool) -> Any:
    item = data.get(key)
    if not isinstance(item, dict) or ":serialized:" not in item:
        return item
    try:
        blob = base64.b64decode(str(item[":serialized:"]).encode(), validate=False)
    except ValueError as exc:
        raise ModelLoadError(
            f"{path}: {key!r} is not valid base64 ({one_line(exc)}); the file is damaged"
        ) from exc
    try:
        return safe_loads(blob)
    except Exception as exc:
        if trust_pickle:
            import cloudpickle

            try:
                return cloudpickle.loads(blob)
            except Exception as exc2:
                raise ModelLoadError(f"{path}: cannot decode {key!r} ({one_line(exc2)})") from exc2
        raise ModelLoadError(
            f"{path}: {key!r} holds a pickled object outside the allow-list or is damaged ({one_line(exc)}); "
            "if you trust this file, pass trust_pickle=True"
        ) from exc


class _StayOnMeta(TorchFunctionMode):
    """Lets SB3's ``.to(device)`` calls pass while a policy is built on the meta device."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func in (th.Tensor.to, th.Tensor.cpu) and args and getattr(args[0], "is_meta", False):
            return args[0]
        return func(*args, **(kwargs or {}))


def _meta_size(build: Any) -> int | None:
    """Number of weights the policy built by ``build()`` would have, without allocating them.

    None when the policy cannot be built on the meta device (it is then built for real).
    """
    validate = th.distributions.Distribution._validate_args
    th.distributions.Distribution.set_default_validate_args(False)  # gSDE samples on meta
    try:
        with th.device("meta"), _StayOnMeta():
            policy = build()
        return sum(t.numel() for t in policy.parameters()) + sum(t.numel() for t in policy.buffers())
    except Exception:
        return None
    finally:
        th.distributions.Distribution.set_default_validate_args(validate)


def _count_layers(value: Any, depth: int = 0) -> int:
    if depth > 10:
        raise ModelLoadError("net_arch is nested too deeply")
    if isinstance(value, dict):
        return sum(_count_layers(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_count_layers(v, depth + 1) for v in value)
    return 1


def construct_policy(
    policy_class: type,
    obs_space: spaces.Space,
    act_space: spaces.Space,
    kwargs: dict[str, Any],
    n_weights: int | None = None,
) -> BasePolicy:
    """Rebuild the policy a zip describes (before its weights are loaded).

    :param policy_class: the SB3 policy class
    :param obs_space: observation space
    :param act_space: action space
    :param kwargs: the zip's policy kwargs
    :param n_weights: number of weights the zip ships: a policy described as larger is
        refused before it is allocated
    """
    params = inspect.signature(policy_class).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    clean = {k: v for k, v in kwargs.items() if accepts_any or k in params}
    clean.pop("device", None)  # very old zips record it; the teacher is moved later
    arch = clean.get("net_arch")
    if isinstance(arch, list) and len(arch) == 1 and isinstance(arch[0], dict):
        clean["net_arch"] = arch[0]  # SB3 < 1.8 wrote [dict(pi=..., vf=...)]; same network
    if _count_layers(clean.get("net_arch")) > 1000:
        raise ModelLoadError(f"cannot rebuild {policy_class.__name__}: its net_arch has over 1000 layers")

    def build() -> BasePolicy:
        return policy_class(obs_space, act_space, lambda _: 0.0, **clean)

    if n_weights is not None:
        size = _meta_size(build)
        if size is not None and size > n_weights:
            raise ModelLoadError(
                f"the {policy_class.__name__} this file describes has {size} weights but it ships "
                f"{n_weights}; the file is damaged"
            )
    try:
        return build()
    except Exception as exc:
        raise ModelLoadError(f"cannot rebuild {policy_class.__name__}: {one_line(exc)}") from exc


def load_policy_state(policy: BasePolicy, state: dict[str, th.Tensor], path: Path) -> None:
    try:
        missing, unexpected = policy.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes that do not fit
        raise ModelLoadError(
            f"{path}: the weights do not fit the policy it describes ({one_line(exc)}); the file is damaged"
        ) from exc
    # SB3 >= 1.8 also lists a shared features extractor under pi_/vf_features_extractor;
    # older zips store it once. Those aliases are the only keys allowed to be missing.
    aliases = ("pi_features_extractor.", "vf_features_extractor.")
    real_missing = [
        k
        for k in missing
        if not (k.startswith(aliases) and "features_extractor." + k.split(".", 1)[1] in state)
    ]
    if real_missing or unexpected:
        raise ModelLoadError(
            f"{path}: the weights do not fit the policy it describes "
            f"(missing {real_missing[:3]}, unexpected {list(unexpected)[:3]}); "
            "the file is damaged or from another library"
        )


def read_vecnormalize(path: Path) -> tuple[ObsNormalizer | None, float]:
    """Frozen observation normalization and the reward scale from a ``vecnormalize.pkl``."""
    try:
        if path.stat().st_size > MAX_DATA_BYTES:
            raise ValueError(f"{path.stat().st_size} bytes is too large for statistics")
        rec = safe_loads(path.read_bytes())
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a readable VecNormalize pickle ({one_line(exc)})") from exc
    d = getattr(rec, "__dict__", None)
    if not isinstance(d, dict) or "obs_rms" not in d:
        raise ModelLoadError(f"{path} does not hold VecNormalize statistics")
    try:
        return _normalization_from(d)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"{path} holds damaged VecNormalize statistics ({one_line(exc)})") from exc


def _normalization_from(d: dict[str, Any]) -> tuple[ObsNormalizer | None, float]:
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
                np.asarray(obs_rms.__dict__["mean"]),
                np.asarray(obs_rms.__dict__["var"]),
                float(d.get("clip_obs", 10.0)),
                epsilon,
            )
    value_scale = 1.0
    if d.get("norm_reward", False) and "ret_rms" in d:
        # VecNormalize divides rewards by sqrt(var(returns) + eps): the critic learned in those units.
        value_scale = float(np.sqrt(np.asarray(d["ret_rms"].__dict__["var"]) + epsilon))
    return normalizer, value_scale
