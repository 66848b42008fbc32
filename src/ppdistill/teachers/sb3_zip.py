"""Reading SB3 model zips and VecNormalize pickles safely, old ``gym`` pickles included.

Nothing here instantiates an algorithm or unpickles arbitrary objects: the zip's ``data``
entries are decoded with an allow-list unpickler that resolves classes from
stable_baselines3, sb3_contrib, torch.nn, torch.optim and ppdistill by reference, reads numpy arrays,
and reads gym or gymnasium spaces (and VecNormalize statistics) as plain records, which are
then mapped onto today's gymnasium spaces. Anything else is refused with
:class:`~ppdistill.core.errors.ModelLoadError`.

Hostile files: only regular files are opened (a device such as ``/dev/zero`` would be read
without end, a FIFO would block), and a file read whole is size-checked first. The
unpickler only *names* classes, it never calls them (a pickle that tries gets an error),
and it is the pure-Python one, which never allocates more than the bytes it is given. Zip
entries are size-checked before they are inflated (no zip bombs), and the policy a file
describes is first built on torch's ``meta`` device, without memory, so that one whose
size does not match the weights it ships is refused before it is allocated.

A pickle that decodes here is *not* safe for another unpickler: the classes this one reads
as inert records (gym, gymnasium, VecNormalize) are real callables to ``pickle``. Code that
writes a model for SB3's loader therefore writes pickles of its own, made from what was
decoded (:func:`safe_model_data`, :func:`rebuilt_vecnormalize`), never the bytes it read.
"""

from __future__ import annotations

import base64
import copyreg
import inspect
import io
import json
import os
import pickle
import stat
import warnings
import zipfile
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

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


def _kind_of_file(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def check_regular_file(path: Path, what: str) -> None:
    """Refuse ``path`` unless it is a regular file (symbolic links followed), without opening it.

    A device (``/dev/zero`` reads without end), a FIFO (blocks until someone writes), a
    socket or a folder is refused in one line.

    :param path: the file
    :param what: what the file should be, for the message ("a model .zip")
    :raises ModelLoadError: when it is not a regular file or cannot be examined
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ModelLoadError(f"{path} cannot be read ({one_line(exc)})") from exc
    if not stat.S_ISREG(mode):
        raise ModelLoadError(f"{path} is {_kind_of_file(mode)}, not a regular file; pass {what}")


def open_regular_file(path: Path, what: str) -> BinaryIO:
    """Open ``path`` for reading, only if it is a regular file (see :func:`check_regular_file`).

    The file is checked before it is opened and again once open (a FIFO put in its place in
    between is opened without blocking, then refused).

    :param path: the file
    :param what: what the file should be, for the message
    :raises ModelLoadError: when it is not a regular file or cannot be opened
    """
    check_regular_file(path, what)
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, os.O_RDONLY | nonblocking | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ModelLoadError(f"{path} cannot be read ({one_line(exc)})") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ModelLoadError(f"{path} is {_kind_of_file(mode)}, not a regular file; pass {what}")
        if nonblocking:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_file(path: Path, limit: int, what: str) -> bytes:
    """The whole of a regular file of at most ``limit`` bytes (see :func:`open_regular_file`).

    :param path: the file
    :param limit: largest size accepted, in bytes
    :param what: what the file should be, for the message
    :raises ModelLoadError: when it is not a regular file, is too large, or cannot be read
    """
    with open_regular_file(path, what) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            blob = f.read(limit + 1) if size <= limit else b""
        except OSError as exc:
            raise ModelLoadError(f"{path} cannot be read ({one_line(exc)})") from exc
    if size > limit or len(blob) > limit:
        raise ModelLoadError(
            f"{path} holds {max(size, len(blob))} bytes, more than the {limit} accepted for {what}; "
            "it is not such a file"
        )
    return blob


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


MODEL_ZIP = "an SB3 model .zip (written by model.save()) or an rl-zoo run folder"


def read_sb3_zip(path: Path) -> ZipContents:
    """The ``data``, policy weights and SB3 version of a model zip, read without unpickling.

    :param path: the zip (a regular file)
    :raises ModelLoadError: in one line, for anything but a readable SB3 model zip
    """
    try:
        with open_regular_file(path, MODEL_ZIP) as file, zipfile.ZipFile(file) as archive:
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
        state = load_tensors(state_bytes)
    except Exception as exc:  # torch raises many types on damaged input
        raise ModelLoadError(
            f"{path}: policy.pth cannot be read ({type(exc).__name__}); the file is damaged"
        ) from exc
    if not is_state_dict(state):
        raise ModelLoadError(f"{path}: policy.pth does not hold a state dict of tensors")
    return ZipContents(data=data, policy_state=dict(state), sb3_version=version)


def load_tensors(blob: bytes) -> Any:
    """``torch.load`` with ``weights_only=True`` (tensors and plain containers only), quietly.

    torch warns about pickles it did not write (protocol, legacy format) before it refuses
    them; those warnings would come before the one line that says the file is damaged.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return th.load(io.BytesIO(blob), map_location="cpu", weights_only=True)


def is_state_dict(obj: Any) -> bool:
    """Whether ``obj`` is a mapping of names to tensors."""
    return isinstance(obj, Mapping) and all(
        isinstance(k, str) and isinstance(v, th.Tensor) for k, v in obj.items()
    )


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
            "the command line never unpickles arbitrary objects (for a file you trust, the Python API "
            "has load_teacher(..., trust_pickle=True))"
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

    # SB3's policies take a learning-rate schedule third; a few (sb3_contrib's ARS) take none
    schedule = (lambda _: 0.0,) if accepts_any or "lr_schedule" in params else ()

    def build() -> BasePolicy:
        return policy_class(obs_space, act_space, *schedule, **clean)

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
    d = _vecnormalize_state(path)
    try:
        return _normalization_from(d)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"{path} holds damaged VecNormalize statistics ({one_line(exc)})") from exc


def _vecnormalize_state(path: Path) -> dict[str, Any]:
    """The attributes a ``vecnormalize.pkl`` holds, decoded by the allow-list unpickler."""
    blob = read_regular_file(path, MAX_DATA_BYTES, "a vecnormalize.pkl")
    try:
        rec = safe_loads(blob)
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a readable VecNormalize pickle ({one_line(exc)})") from exc
    d = getattr(rec, "__dict__", None)
    if not isinstance(d, dict) or "obs_rms" not in d:
        raise ModelLoadError(f"{path} does not hold VecNormalize statistics")
    return d


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


# ---- writing what SB3's loader reads, from what was decoded safely -------------------------

_PLAIN_TYPES = (type(None), bool, int, float, complex, str, bytes, th.device)


_PLAIN_CONTAINERS = (list, tuple, deque, set, frozenset)


def _is_plain(obj: Any, depth: int = 0) -> bool:
    """Whether a fresh pickle of ``obj`` only rebuilds data and names harmless classes.

    Plain values, numpy arrays, dtypes and scalars, containers of those, and classes of the
    modules the allow-list resolves (stable_baselines3, sb3_contrib, torch.nn, torch.optim,
    ppdistill), which a pickle names by reference. Records of other objects are not.
    """
    if depth > 100:  # a deeper or cyclic structure is not SB3 metadata
        return False
    if isinstance(obj, type):
        named = (obj.__module__, obj.__qualname__)
        return obj.__module__.startswith(_CLASS_MODULE_PREFIXES) or named in _SAFE_GLOBALS
    if type(obj) in _PLAIN_TYPES or isinstance(obj, np.dtype):
        return True
    if isinstance(obj, np.generic):
        return not isinstance(obj, np.object_)
    if type(obj) is np.ndarray:
        return not obj.dtype.hasobject or all(_is_plain(v, depth + 1) for v in obj.flat)
    if type(obj) is slice:
        return all(_is_plain(v, depth + 1) for v in (obj.start, obj.stop, obj.step))
    if type(obj) in (dict, OrderedDict):
        return all(_is_plain(k, depth + 1) and _is_plain(v, depth + 1) for k, v in obj.items())
    if type(obj) in _PLAIN_CONTAINERS:
        return all(_is_plain(v, depth + 1) for v in obj)
    return False


class _Rebuilt:
    """Pickles as an instance of ``cls`` with attributes ``state`` (as pickle's protocol 0-1
    default does: ``copyreg._reconstructor``, then ``__setstate__``), without building one here."""

    def __init__(self, cls: type, state: dict[str, Any]) -> None:
        self.cls, self.state = cls, state

    def __reduce__(self) -> tuple[Any, ...]:
        return (copyreg._reconstructor, (self.cls, object, None), self.state)  # type: ignore[attr-defined]


# Entries SB3's loader cannot do without (it rebuilds everything else from its defaults).
REQUIRED_DATA = ("policy_class", "observation_space", "action_space")


def safe_model_data(data: dict[str, Any], path: Path) -> tuple[dict[str, Any], list[str]]:
    """A model zip's ``data`` that any unpickler, SB3's loader included, reads without running code.

    Plain JSON values are kept as they are (SB3 does not unpickle them). Every pickled value
    (``:serialized:``) is decoded by the allow-list unpickler and, when it is plain data, a
    space, or a class of stable_baselines3, sb3_contrib, torch.nn, torch.optim or ppdistill,
    pickled afresh from what was decoded; the file's own bytes are never kept (a pickle that
    decodes here may still call functions under ``pickle``: see the module docstring).
    Anything else is left out, and SB3 uses the algorithm's default in its place: schedules
    (``lr_schedule``, ``clip_range``, a ``learning_rate`` function, ``exploration_schedule``),
    ``train_freq`` and action noise, which only matter to go on training.

    :param data: the zip's ``data`` (from :func:`read_sb3_zip`)
    :param path: the zip, for messages
    :return: the new ``data`` and the keys left out
    :raises ModelLoadError: when the policy class or a space cannot be decoded safely
    """
    out: dict[str, Any] = {}
    left_out: list[str] = []
    for key, item in data.items():
        if not (isinstance(item, dict) and ":serialized:" in item):
            out[key] = item
            continue
        try:
            value = decode_entry(data, key, path, trust_pickle=False)
            if key in ("observation_space", "action_space"):
                value = space_from_record(value)
            elif not _is_plain(value):
                raise ModelLoadError(f"{path}: {key!r} is not plain data")
            blob = pickle.dumps(value, protocol=4)
        except Exception as exc:  # refused by the allow-list, damaged, or not pickled again
            if key in REQUIRED_DATA:
                raise ModelLoadError(
                    f"{path}: {key!r} cannot be decoded safely ({one_line(exc)}); "
                    "the file is damaged or hostile"
                ) from exc
            left_out.append(key)
            continue
        out[key] = {**item, ":serialized:": base64.b64encode(blob).decode()}
    missing = [k for k in REQUIRED_DATA if k not in out]
    if missing:
        raise ModelLoadError(f"{path}: its 'data' has no {', '.join(missing)}; the file is damaged")
    return out, left_out


def _rebuilt_value(key: str, value: Any) -> Any:
    """A value of VecNormalize's state as something :func:`_is_plain` or fresh objects; None: leave it out."""
    from stable_baselines3.common.running_mean_std import RunningMeanStd

    if key in ("observation_space", "action_space"):
        return space_from_record(value)
    if isinstance(value, _Record) and type(value).__name__ == "RunningMeanStd":
        d = value.__dict__
        return _Rebuilt(
            RunningMeanStd,
            {
                "mean": np.asarray(d["mean"], dtype=np.float64),
                "var": np.asarray(d["var"], dtype=np.float64),
                "count": float(d["count"]),
            },
        )
    if isinstance(value, dict) and value and all(isinstance(v, _Record) for v in value.values()):
        rebuilt = {k: _rebuilt_value("", v) for k, v in value.items()}  # Dict observations
        return rebuilt if all(isinstance(k, str) and v is not None for k, v in rebuilt.items()) else None
    if _is_plain(value):
        return value
    return None


def rebuilt_vecnormalize(path: Path) -> bytes:
    """A ``vecnormalize.pkl`` pickled afresh from what the allow-list unpickler reads of ``path``.

    It holds the same statistics and settings, as SB3's ``VecNormalize.load`` and
    :func:`read_vecnormalize` read them, and nothing else: no byte of ``path`` is kept, so a
    hostile pickle is not passed on. Old ``gym`` spaces become today's gymnasium spaces.

    :param path: a ``vecnormalize.pkl``
    :raises ModelLoadError: when it is not readable VecNormalize statistics
    """
    from stable_baselines3.common.vec_env import VecNormalize

    d = _vecnormalize_state(path)
    try:
        _normalization_from(d)  # readable statistics, or refused as read_vecnormalize refuses them
        state = {}
        for key, value in d.items():
            rebuilt = _rebuilt_value(key, value)
            if rebuilt is not None or value is None:
                state[key] = rebuilt
        if "observation_space" not in state:
            raise ValueError("no observation space")
        return pickle.dumps(_Rebuilt(VecNormalize, state), protocol=4)
    except Exception as exc:
        raise ModelLoadError(f"{path} holds damaged VecNormalize statistics ({one_line(exc)})") from exc
