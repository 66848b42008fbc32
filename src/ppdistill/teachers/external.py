"""Teachers from outside SB3 zips: a torch module, a TorchScript file or an ONNX file.

Such a model says nothing of what its outputs mean, so the user declares it (``output=``):

=================  ======================  ==================================================
``output``         action space            the model returns, per observation
=================  ======================  ==================================================
``logits``         Discrete, MultiDiscrete, the distribution's parameters in the flat layout
                   MultiBinary             of :mod:`ppdistill.core.distributions` (logits)
``q-values``       Discrete                Q-values; the policy is softmax(Q/τ), as for DQN
                                           (``temperature``; values E_π[Q])
``gaussian``       Box                     mean and log-std: one tensor ``[mean, log_std]``
                                           or a tuple ``(mean, log_std)`` (a log-std of
                                           shape ``(d,)`` is shared by every observation)
``deterministic``  Box                     the action, in the environment's units; the target
                                           is ``N(a, σ_T²)`` as for TD3 (``target_std`` × half
                                           the action range; 1 where the range is infinite)
=================  ======================  ==================================================

The model takes raw observations as tensors, batch first, as an SB3 policy receives them
before its own preprocessing (images channels-first, nothing scaled or one-hot encoded),
after the frozen normalization of a ``vecnormalize.pkl`` when one is given. An ONNX file
exported by ``ppdistill export`` (outputs ``action`` and ``logits`` or ``mean``) declares
itself: ``logits`` is read as ``output="logits"``, ``mean`` as ``output="deterministic"``.

What is read, and how safely:

- **ONNX** (``*.onnx``): a protobuf graph, no pickle and no code. It is run by ONNX Runtime
  on the CPU, from the bytes read (at most 2 GiB), with no custom-operator library; a model
  that refers to external data files is refused (their paths could name any file).
- **TorchScript** (``*.pt``, ``*.ts``): an archive that ``torch.jit.load`` reads with
  TorchScript's own unpickler; PyTorch warns that a crafted one can run code while it loads.
  It is therefore opened only with ``trust_pickle=True``, for a file you trust (never from
  the command line). A ``torch.save`` pickle (a whole module or a state dict) is never opened:
  build the module in Python and pass it.
- **A torch module in memory** (or any callable of tensors): yours, already loaded.
"""

from __future__ import annotations

import copy
import math
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.utils import obs_as_tensor
from torch import nn

from ppdistill.core.errors import ModelLoadError, PPDistillError, SpaceMismatchError, one_line
from ppdistill.core.extras import require_extra
from ppdistill.envs.make import env_spaces
from ppdistill.networks.forward import TensorObs
from ppdistill.teachers.base import Teacher, TeacherOutput
from ppdistill.teachers.offpolicy import DEFAULT_TARGET_STD
from ppdistill.teachers.q_values import DEFAULT_Q_TEMPERATURE
from ppdistill.teachers.sb3_zip import (
    MAX_WEIGHTS_BYTES,
    check_regular_file,
    read_regular_file,
    read_vecnormalize,
)

OUTPUT_KINDS = ("logits", "q-values", "gaussian", "deterministic")
"""What an external model's output can be declared as (``output=``; see the module docstring)."""

FILE_FORMATS = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript"}
"""File suffixes read as external models, and their formats."""

MAX_MODEL_BYTES = MAX_WEIGHTS_BYTES
"""The largest ONNX or TorchScript file read (2 GiB, protobuf's own limit for ONNX)."""

_ACTION_SPACES: dict[str, tuple[tuple[type[spaces.Space], ...], str]] = {
    "logits": (
        (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary),
        "Discrete, MultiDiscrete or MultiBinary",
    ),
    "q-values": ((spaces.Discrete,), "Discrete"),
    "gaussian": ((spaces.Box,), "Box"),
    "deterministic": ((spaces.Box,), "Box"),
}

# ppdistill export's outputs: (action, logits) or (action, mean) → the declared kind and the output read
_PPDISTILL_EXPORTS = {
    ("action", "logits"): ("logits", "logits"),
    ("action", "mean"): ("deterministic", "mean"),
}

_ONNX_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(bool)": np.bool_,
}

_CLI_HINT = (
    "(Python API: load_teacher(path, output=...)); the command line reads ONNX files made by "
    "ppdistill export and SB3 zips"
)


def is_external(source: object, output: str | None) -> bool:
    """Whether :func:`load_external` reads ``source``: an ONNX or TorchScript file by its
    suffix, or a callable (a torch module) whose output kind is declared.

    A callable without ``output`` stays what it always was for
    :func:`~ppdistill.teachers.loading.load_agent`: a function to the flat parameters.
    """
    if isinstance(source, str | Path):
        return Path(source).suffix.lower() in FILE_FORMATS
    return callable(source) and output is not None


class OnnxModel(nn.Module):
    """An ONNX Runtime session as a torch module (CPU; observations in, the chosen outputs out).

    :param session: an ``onnxruntime.InferenceSession``
    :param outputs: the names of the outputs returned, in order
    :param keys: for Dict observations, the input name of each key (None: one input)
    """

    def __init__(self, session: Any, outputs: list[str], keys: dict[str, str] | None = None) -> None:
        super().__init__()
        self.session = session
        self.outputs = outputs
        self.keys = keys
        inputs = session.get_inputs()
        self.input_types = {i.name: _ONNX_TYPES.get(i.type) for i in inputs}
        first = inputs[0].shape[0] if inputs[0].shape else None
        self.one_at_a_time = first == 1  # a graph exported with a fixed batch of one

    def __deepcopy__(self, memo: dict[int, Any]) -> OnnxModel:
        return self  # the session is immutable and cannot be copied

    def _feed(self, obs: TensorObs) -> dict[str, np.ndarray]:
        named = {self.keys[k]: v for k, v in obs.items()} if isinstance(obs, dict) and self.keys else None
        if named is None:
            assert isinstance(obs, th.Tensor)
            named = {next(iter(self.input_types)): obs}
        feed = {}
        for name, value in named.items():
            array = value.detach().cpu().numpy()
            dtype = self.input_types.get(name)
            feed[name] = array.astype(dtype, copy=False) if dtype is not None else array
        return feed

    def forward(self, obs: TensorObs) -> th.Tensor | tuple[th.Tensor, ...]:
        first = next(iter(obs.values())) if isinstance(obs, dict) else obs
        feed = self._feed(obs)
        if self.one_at_a_time and first.shape[0] != 1:
            rows = [
                self.session.run(self.outputs, {k: v[i : i + 1] for k, v in feed.items()})
                for i in range(first.shape[0])
            ]
            results = [np.concatenate(parts) for parts in zip(*rows)]
        else:
            results = self.session.run(self.outputs, feed)
        tensors = tuple(th.from_numpy(np.ascontiguousarray(r)).to(first.device) for r in results)
        return tensors[0] if len(tensors) == 1 else tensors


class _Function(nn.Module):
    """A plain callable as a module (so that the teacher holds one kind of thing)."""

    def __init__(self, fn: Callable[[TensorObs], Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, obs: TensorObs) -> Any:
        return self.fn(obs)


class ExternalTeacher(Teacher):
    """A teacher from a model outside SB3: its outputs read as the declared kind (module docstring).

    :param model: observations → the model's output (a tensor or a tuple of tensors)
    :param output: one of :data:`OUTPUT_KINDS`
    :param temperature: τ of softmax(Q/τ), for ``output="q-values"``
    :param target_std: σ_T as a fraction of half the action range, for ``output="deterministic"``
    :param name: how messages name the model
    :param env_id: the environment the spaces come from, for messages
    """

    target_log_std: th.Tensor

    def __init__(
        self,
        model: nn.Module,
        output: str,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        temperature: float = DEFAULT_Q_TEMPERATURE,
        target_std: float = DEFAULT_TARGET_STD,
        name: str = "the model",
        env_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(observation_space, action_space, **kwargs)
        check_output_kind(output, action_space, name)
        self.model = model
        self.output = output
        self.name = name
        self.env_id = env_id
        self.has_value = output == "q-values"
        self.temperature = float(temperature)
        self.target_std = float(target_std)
        if output == "q-values" and not (temperature > 0 and math.isfinite(temperature)):
            raise ModelLoadError(f"temperature must be a finite number > 0, got {temperature}")
        if output == "deterministic":
            if not (target_std > 0 and math.isfinite(target_std)):
                raise ModelLoadError(f"target_std must be a finite number > 0, got {target_std}")
            assert isinstance(action_space, spaces.Box)
            low = np.asarray(action_space.low, dtype=np.float64).reshape(-1)
            high = np.asarray(action_space.high, dtype=np.float64).reshape(-1)
            half = np.where(np.isfinite(high - low), (high - low) / 2, 1.0)
            self.register_buffer("target_log_std", th.as_tensor(np.log(target_std * half), dtype=th.float32))

    def _flat(self, out: Any) -> th.Tensor:
        if isinstance(out, list | tuple):
            if len(out) != 1:
                raise ModelLoadError(
                    f"{self.name} returns {len(out)} tensors; output={self.output!r} reads one "
                    "(only 'gaussian' reads two: mean and log-std)"
                )
            out = out[0]
        if not isinstance(out, th.Tensor):
            raise ModelLoadError(f"{self.name} returns a {type(out).__name__}, not a tensor")
        return out.reshape(out.shape[0], -1).float() if out.dim() > 1 else out.reshape(-1, 1).float()

    def _width_error(self, width: int, need: int, what: str) -> SpaceMismatchError:
        of_env = f" of {self.env_id}" if self.env_id else ""
        return SpaceMismatchError(
            f"{self.name} returns {width} {what} per observation (output={self.output!r}); the action "
            f"space {self.action_space}{of_env} needs {need}: the model was made for other actions"
        )

    def _forward(self, obs: TensorObs, with_values: bool) -> TeacherOutput:
        out = self.model(obs)
        if self.output == "gaussian":
            return TeacherOutput(self._gaussian(out), None)
        x = self._flat(out)
        if self.output == "logits":
            if x.shape[1] != self.param_dim:
                raise self._width_error(x.shape[1], self.param_dim, "logits")
            return TeacherOutput(x, None)
        if self.output == "q-values":
            if x.shape[1] != self.param_dim:
                raise self._width_error(x.shape[1], self.param_dim, "Q-values")
            logits = x / self.temperature
            values = (th.softmax(logits, dim=-1) * x).sum(-1) if with_values else None
            return TeacherOutput(logits, values)
        d = self.param_dim // 2  # deterministic: the action is the target's mean
        if x.shape[1] != d:
            raise self._width_error(x.shape[1], d, "action values")
        return TeacherOutput(th.cat([x, self.target_log_std.to(x.device).expand_as(x)], dim=1), None)

    def _gaussian(self, out: Any) -> th.Tensor:
        d = self.param_dim // 2
        if isinstance(out, list | tuple) and len(out) == 2:
            mean = self._flat(out[0])
            log_std = out[1].float()
            if mean.shape[1] != d:
                raise self._width_error(mean.shape[1], d, "means")
            if log_std.numel() == d:  # one log-std for every observation (SB3's)
                log_std = log_std.reshape(1, d)
            log_std = log_std.reshape(log_std.shape[0], -1)
            if log_std.shape[1] != d:
                raise self._width_error(log_std.shape[1], d, "log-stds")
            return th.cat([mean, log_std.to(mean.device).expand_as(mean)], dim=1)
        x = self._flat(out)
        if x.shape[1] != 2 * d:
            raise self._width_error(x.shape[1], 2 * d, "values ([mean, log_std])")
        return x


def check_output_kind(output: str | None, action_space: spaces.Space, name: str) -> str:
    """Refuse an unknown output kind, or one that the action space cannot have, in one line.

    :param output: the declared kind
    :param action_space: the teacher's action space
    :param name: how messages name the model
    :return: the kind
    """
    if output not in _ACTION_SPACES:
        choices = ", ".join(OUTPUT_KINDS)
        if output is None:
            raise ModelLoadError(f"{name}: declare its output kind, output= one of {choices} {_CLI_HINT}")
        raise ModelLoadError(f"{name}: output={output!r} is not an output kind; use one of {choices}")
    classes, described = _ACTION_SPACES[output]
    if not isinstance(action_space, classes):
        raise SpaceMismatchError(
            f"{name}: output={output!r} needs a {described} action space, but the action space is "
            f"{action_space}"
        )
    return output


def _external_tensors(model: Any) -> list[str]:
    """Names of the tensors of an ONNX model whose data lies in other files."""
    onnx = require_extra("onnx", "onnx", "ONNX teachers")
    external = onnx.TensorProto.EXTERNAL

    def of_attributes(nodes: Any) -> Any:
        for node in nodes:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("sparse_tensor"):
                    yield attr.sparse_tensor.values
                    yield attr.sparse_tensor.indices
                for graph in [attr.g] if attr.HasField("g") else []:
                    yield from of_graph(graph)
                for graph in attr.graphs:
                    yield from of_graph(graph)

    def of_graph(graph: Any) -> Any:
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        yield from of_attributes(graph.node)

    tensors = [*of_graph(model.graph), *(t for f in model.functions for t in of_attributes(f.node))]
    return [t.name for t in tensors if t.data_location == external or len(t.external_data) > 0]


def _load_onnx(
    path: Path, output: str | None, obs_space: spaces.Space | None
) -> tuple[OnnxModel, str | None, dict[str, str]]:
    """An ONNX file as a module, the output kind it declares (ppdistill exports), and its metadata."""
    ort = require_extra("onnxruntime", "onnx", "ONNX teachers")
    onnx = require_extra("onnx", "onnx", "ONNX teachers")
    blob = read_regular_file(path, MAX_MODEL_BYTES, "an ONNX model (.onnx)")
    try:
        proto = onnx.load_model_from_string(blob)
    except Exception as exc:
        raise ModelLoadError(f"{path} is not an ONNX model ({one_line(exc)}); the file is damaged") from exc
    external = _external_tensors(proto)
    if external:
        raise ModelLoadError(
            f"{path} keeps tensors in external data files ({', '.join(external[:3])}); ppdistill reads "
            "only self-contained ONNX files (onnx.save(model, path, save_as_external_data=False))"
        )
    del proto
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, th.get_num_threads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(blob, sess_options=options, providers=["CPUExecutionProvider"])
    meta = dict(session.get_modelmeta().custom_metadata_map or {})
    names = tuple(o.name for o in session.get_outputs())
    declared, chosen = _PPDISTILL_EXPORTS.get(names, (None, None))
    if chosen is not None and output == "gaussian":
        raise ModelLoadError(
            f"{path} (made by ppdistill export) gives the Gaussian's mean, not its log-std: "
            "use output='deterministic'"
        )
    if "ppdistill.recurrent" in meta:
        raise ModelLoadError(
            f"{path} is a recurrent student's export, which takes and returns its LSTM state; it is "
            "not read as a teacher or an agent here: use the student's zip"
        )
    outputs = [chosen] if chosen is not None else list(names)
    inputs = session.get_inputs()
    keys = None
    if isinstance(obs_space, spaces.Dict):
        input_names = {i.name for i in inputs}
        if input_names != set(obs_space.spaces):
            raise SpaceMismatchError(
                f"{path} takes inputs {sorted(input_names)}; the observation space has keys "
                f"{sorted(obs_space.spaces)}: name the inputs after the keys"
            )
        keys = {k: k for k in obs_space.spaces}
    elif len(inputs) != 1:
        raise ModelLoadError(
            f"{path} takes {len(inputs)} inputs; a teacher's model takes the observation only"
        )
    elif isinstance(obs_space, spaces.Box) and inputs[0].shape:
        declared_shape = list(inputs[0].shape[1:])
        fits = len(declared_shape) == len(obs_space.shape) and all(
            not isinstance(n, int) or n == m for n, m in zip(declared_shape, obs_space.shape)
        )
        if not fits:
            shown = ", ".join(["batch", *(str(n) for n in declared_shape)])
            made_for = (
                f" (it was made for {meta['ppdistill.observation_space']})"
                if "ppdistill.observation_space" in meta
                else ""
            )
            raise SpaceMismatchError(
                f"{path} takes observations of shape ({shown}){made_for}; the observation space "
                f"{obs_space} gives {tuple(obs_space.shape)}"
            )
    return OnnxModel(session, outputs, keys), declared, meta


def _load_torchscript(path: Path, trust_pickle: bool) -> nn.Module:
    """A TorchScript archive as a module, opened only when the file is trusted."""
    check_regular_file(path, "a TorchScript file (torch.jit.save)")
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise ModelLoadError(
            f"{path} holds {size} bytes, more than the {MAX_MODEL_BYTES} accepted for a model"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelLoadError(f"{path} is not a TorchScript archive ({one_line(exc)})") from exc
    if not any(n.endswith("/constants.pkl") for n in names) or not any("/code/" in n for n in names):
        raise ModelLoadError(
            f"{path} is not a TorchScript archive (torch.jit.save writes those); a torch.save pickle is "
            "never opened: build the module in Python and pass it (load_teacher(module, output=...))"
        )
    if not trust_pickle:
        raise ModelLoadError(
            f"{path} is TorchScript, which can run code while it loads (PyTorch's own warning on "
            "torch.jit.load): ppdistill opens it only for a file you trust, with "
            "load_teacher(path, output=..., trust_pickle=True); the command line never does. For a "
            "file you did not make, ask for an ONNX export"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load is deprecated; it still reads what exists
        module = th.jit.load(str(path), map_location="cpu")
    return module


def _probe(teacher: ExternalTeacher) -> None:
    """Run the teacher once on two observations from its space: its output fits, or one line says why not."""
    space = copy.deepcopy(teacher.observation_space)
    space.seed(0)
    samples = [space.sample() for _ in range(2)]
    batch: Any
    if isinstance(space, spaces.Dict):
        batch = {k: np.stack([np.asarray(s[k]) for s in samples]) for k in space.spaces}
    else:
        batch = np.stack([np.asarray(s) for s in samples])
    if isinstance(batch, np.ndarray) and batch.dtype == np.float64:
        batch = batch.astype(np.float32)
    try:
        out = teacher(obs_as_tensor(batch, teacher.device))
    except PPDistillError:
        raise
    except Exception as exc:
        of_env = f" of {teacher.env_id}" if teacher.env_id else ""
        raise SpaceMismatchError(
            f"{teacher.name} cannot take observations of the observation space {teacher.observation_space}"
            f"{of_env} ({one_line(exc)})"
        ) from exc
    finally:
        teacher.n_calls = teacher.n_samples = 0
    if out.params.shape[0] != 2:
        raise ModelLoadError(
            f"{teacher.name} returns {out.params.shape[0]} rows for 2 observations; "
            "it must keep the batch axis"
        )


def load_external(
    source: str | Path | Callable[[TensorObs], Any],
    output: str | None = None,
    env_id: str | None = None,
    *,
    observation_space: spaces.Space | None = None,
    action_space: spaces.Space | None = None,
    temperature: float = DEFAULT_Q_TEMPERATURE,
    target_std: float = DEFAULT_TARGET_STD,
    vecnormalize: str | Path | None = None,
    trust_pickle: bool = False,
    role: str = "model",
) -> Teacher:
    """A frozen teacher from a torch module, a TorchScript file or an ONNX file (module docstring).

    Usually reached through :func:`~ppdistill.teachers.loading.load_agent` (``load_teacher``),
    which sends these sources here.

    :param source: a torch module or callable of observation tensors, or a ``.onnx``, ``.pt`` or
        ``.ts`` file
    :param output: what the model returns: one of :data:`OUTPUT_KINDS` (an ONNX file made by
        ``ppdistill export`` declares its own)
    :param env_id: the environment, whose spaces the teacher takes
    :param observation_space: instead of ``env_id`` (with ``action_space``)
    :param action_space: instead of ``env_id``
    :param temperature: τ of softmax(Q/τ), for ``output="q-values"``
    :param target_std: σ_T as a fraction of half the action range, for ``output="deterministic"``
    :param vecnormalize: a ``vecnormalize.pkl`` whose frozen observation normalization comes first
    :param trust_pickle: open a TorchScript file, which can run code while it loads (files you trust)
    :param role: what the model is for, in messages ("teacher", "student", "model")
    :raises ModelLoadError: in one line, when it cannot be read or used
    :raises SpaceMismatchError: when its inputs or outputs do not fit the spaces (both named)
    :return: the teacher, not yet frozen (``load_agent`` moves and freezes it)
    """
    env_obs = env_act = None
    if env_id is not None:
        env_obs, env_act = env_spaces(env_id)
    obs_space = observation_space or env_obs
    act_space = action_space or env_act
    path = Path(source).expanduser() if isinstance(source, str | Path) else None
    name = str(path) if path is not None else f"the {role} {type(source).__name__}"
    if obs_space is None or act_space is None:
        raise ModelLoadError(
            f"{name} needs the spaces it acts in: name its environment (--env ID; Python API: env_id=), "
            "or pass observation_space= and action_space="
        )
    meta: dict[str, str] = {}
    fmt = "module"
    model: nn.Module
    try:
        if path is not None:
            if not path.exists():
                raise ModelLoadError(f"{role} file {path} does not exist; check the path")
            fmt = FILE_FORMATS[path.suffix.lower()]
            if fmt == "onnx":
                model, declared, meta = _load_onnx(path, output, obs_space)
                output = output or declared
            else:
                check_output_kind(output, act_space, name)
                model = _load_torchscript(path, trust_pickle)
        else:
            assert callable(source)
            model = source if isinstance(source, nn.Module) else _Function(source)
            fmt = "module" if isinstance(source, nn.Module) else "callable"
        if "ppdistill.action_space" in meta:
            name = f"{name} (exported for {meta['ppdistill.action_space']})"
        check_output_kind(output, act_space, name)
        assert output is not None
        normalizer, value_scale = (None, 1.0)
        vec_path = Path(vecnormalize).expanduser() if vecnormalize is not None else None
        if vec_path is not None:
            normalizer, value_scale = read_vecnormalize(vec_path)
        if normalizer is not None and normalizer.keys is None and isinstance(obs_space, spaces.Box):
            norm_shape = tuple(normalizer.stats()["mean"].shape)
            if norm_shape != obs_space.shape:
                raise SpaceMismatchError(
                    f"{vec_path} normalizes observations of shape {norm_shape}, but the observation "
                    f"space {obs_space} gives {obs_space.shape}: it belongs to another model"
                )
        info = {
            "kind": output,
            "format": fmt,
            "output": output,
            "path": str(path.resolve()) if path is not None else None,
            "vecnormalize": str(vec_path.resolve()) if vec_path is not None else None,
            "env_id": env_id,
            **({"temperature": float(temperature)} if output == "q-values" else {}),
            **({"target_std": float(target_std)} if output == "deterministic" else {}),
        }
        teacher = ExternalTeacher(
            model,
            output,
            obs_space,
            act_space,
            temperature=temperature,
            target_std=target_std,
            name=name,
            env_id=env_id if action_space is None else None,
            obs_normalizer=normalizer,
            value_scale=value_scale,
            info=info,
        )
        _probe(teacher)
    except PPDistillError:
        raise
    except Exception as exc:  # anything a damaged or hostile file provokes besides our own checks
        raise ModelLoadError(
            f"{name} cannot be loaded as a {role} ({one_line(exc)}); the file is damaged or unsupported"
        ) from exc
    return teacher
