"""Checkpoints that resume a run exactly, written atomically.

A checkpoint is taken at a rollout boundary (SB3's ``on_rollout_start``, after the previous
update), and holds everything the rest of the run depends on:

- the student's weights and its optimizer's state (``model.save``, loadable with ``PPD.load``);
- the counters: ``num_timesteps``, ``_n_updates``, ``_current_progress_remaining`` (which
  positions the λ, learning-rate and clip-range schedules);
- the last observations and episode starts, and the episode-statistics buffers;
- the Python, NumPy and torch random states (and the gSDE noise matrices);
- VecNormalize's statistics, running returns and last raw observation, when the env has one;
- a recurrent student's LSTM states (RecurrentPPO's ``_last_lstm_states``: the actor's and the
  critic's hidden and cell states at the rollout boundary), and a recurrent teacher's;
- the state of every training environment, as a replay log (see :class:`EpisodeRecorder`);
- whatever the caller adds (``extra``: the evaluation history, timings).

Environment state is the part SB3 cannot save: Box2D worlds do not pickle at all, and a
MuJoCo env that pickles does not step identically afterwards (both measured). Instead each
training env is wrapped in an :class:`EpisodeRecorder`, which remembers how its current
episode began (the reset's seed, or the env's RNG state before the reset) and the actions
taken since. On resume the env is reset the same way and the actions are replayed; the
observation this gives is compared with the one saved, bit for bit. Every env that is a
deterministic function of its seed and actions (classic control, Box2D, MuJoCo: tested)
comes back exactly; one that does not, or an episode longer than ``MAX_REPLAY_ACTIONS``,
makes the resume inexact: the envs start fresh episodes from a seed derived from the step,
a warning says so, and the run records ``exact: false``.

File format: one zip, ``checkpoint.zip``, replaced atomically (temporary file, fsync,
rename), holding ``student.zip`` (SB3's format), ``state.pkl`` (plain data: numbers, arrays,
lists, dicts; read back with the allow-list unpickler of :mod:`ppdistill.teachers.sb3_zip`)
and ``meta.json`` (step, time, format version).
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import random
import time
import warnings
import zipfile
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecNormalize

from ppdistill.algorithms.guards import nonfinite_weights
from ppdistill.core.errors import PPDistillError, one_line
from ppdistill.core.files import atomic_write
from ppdistill.envs.views import find_student_view
from ppdistill.teachers.sb3_zip import safe_loads

FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.zip"
# An episode longer than this is not replayed (its actions would grow without bound).
MAX_REPLAY_ACTIONS = 100_000

# Attributes of SB3's algorithms that change while training and that SB3's own ``save``
# either skips or that a fresh model would not have.
_MODEL_ATTRIBUTES = (
    "num_timesteps",
    "_n_updates",
    "_current_progress_remaining",
    "_episode_num",
    "_last_obs",
    "_last_episode_starts",
    "_last_original_obs",
    "ep_info_buffer",
    "ep_success_buffer",
    "teacher_ep_info_buffer",  # TeacherDistill
)
_VECNORMALIZE_ATTRIBUTES = ("returns", "old_obs", "old_reward", "training")


class CheckpointError(PPDistillError):
    """A checkpoint cannot be read or does not fit the run."""


# ------------------------------------------------------------------------------------------
# environments
# ------------------------------------------------------------------------------------------


class EpisodeRecorder(gym.Wrapper):
    """Remembers how the current episode began and the actions since, so that it can be replayed.

    Cost: an append per step (about 2 µs with the wrapper's call), a read of the RNG state per reset.

    :param env: the environment (usually a Monitor)
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._start: dict[str, Any] | None = None
        self._actions: list[np.ndarray] | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        # (``bit_generator.state`` is a fresh dict at every read: no copy needed)
        rng = None if seed is not None else self.env.unwrapped.np_random.bit_generator.state
        self._start = {"seed": seed, "options": options, "rng": rng}
        self._actions = []
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> Any:
        actions = self._actions
        if actions is not None:
            if len(actions) < MAX_REPLAY_ACTIONS:
                # an array may be a view into the VecEnv's batch: copy it; numpy scalars are immutable
                actions.append(action.copy() if isinstance(action, np.ndarray) else action)
            else:
                self._actions = None  # too long to replay: the resume will say it is inexact
        return self.env.step(action)

    def replay_log(self) -> dict[str, Any] | None:
        """How to rebuild the current state: the episode's start and its actions (None if unknown)."""
        if self._start is None or self._actions is None:
            return None
        return {**self._start, "actions": list(self._actions)}

    def replay(self, log: dict[str, Any]) -> Any:
        """Reset as the logged episode began and take its actions; return the last observation."""
        if log["rng"] is not None:
            self.env.unwrapped.np_random.bit_generator.state = log["rng"]
        obs, _ = self.reset(seed=log["seed"], options=log["options"])
        for action in log["actions"]:
            obs, *_ = self.step(action)
        return obs


def _replay_logs(env: VecEnv) -> list[dict[str, Any] | None] | None:
    try:
        return env.env_method("replay_log")
    except AttributeError:
        return None  # not wrapped in EpisodeRecorder


def _obs_at(obs: Any, i: int) -> Any:
    return {k: v[i] for k, v in obs.items()} if isinstance(obs, dict) else obs[i]


def _same_obs(replayed: Any, saved: Any) -> bool:
    if isinstance(replayed, dict):
        return (
            isinstance(saved, dict)
            and replayed.keys() == saved.keys()
            and all(_same_obs(replayed[k], saved[k]) for k in replayed)
        )
    saved = np.asarray(saved)
    # The VecEnv stores observations in its space's dtype (an env may return float64).
    replayed = np.asarray(replayed).astype(saved.dtype, copy=False)
    return replayed.shape == saved.shape and bool(np.array_equal(replayed, saved))


def _rms_state(rms: RunningMeanStd | dict[str, RunningMeanStd]) -> Any:
    if isinstance(rms, dict):
        return {k: _rms_state(v) for k, v in rms.items()}
    return {"mean": rms.mean.copy(), "var": rms.var.copy(), "count": float(rms.count)}


def _set_rms(rms: RunningMeanStd | dict[str, RunningMeanStd], state: Any) -> None:
    if isinstance(rms, dict):
        for k, v in rms.items():
            _set_rms(v, state[k])
        return
    rms.mean, rms.var, rms.count = state["mean"].copy(), state["var"].copy(), state["count"]


# ------------------------------------------------------------------------------------------
# capture and restore
# ------------------------------------------------------------------------------------------


def _rng_state(model: BaseAlgorithm) -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=False),
        "torch": th.get_rng_state().numpy().copy(),
        "action_space": copy.deepcopy(model.action_space.np_random.bit_generator.state),
    }
    dist = getattr(model.policy, "action_dist", None)
    for name in ("exploration_mat", "exploration_matrices"):
        value = getattr(dist, name, None) if getattr(model, "use_sde", False) else None
        if isinstance(value, th.Tensor):
            state[f"sde_{name}"] = value.detach().cpu().numpy().copy()
    return state


def restore_rng_state(model: BaseAlgorithm, state: dict[str, Any]) -> None:
    """Put back the random states (and gSDE noise) of :func:`capture_state`.

    :param model: the model being resumed
    :param state: ``capture_state(...)["rng"]``
    """
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    th.set_rng_state(th.from_numpy(np.asarray(state["torch"], dtype=np.uint8).copy()))
    model.action_space.np_random.bit_generator.state = state["action_space"]
    dist = getattr(model.policy, "action_dist", None)
    for name in ("exploration_mat", "exploration_matrices"):
        if f"sde_{name}" in state and dist is not None:
            setattr(dist, name, th.as_tensor(state[f"sde_{name}"], device=model.device))


def capture_state(model: BaseAlgorithm) -> dict[str, Any]:
    """Everything besides the weights and optimizer that the rest of training depends on.

    :param model: an SB3 on-policy model, between two rollouts
    """
    attributes = {}
    for name in _MODEL_ATTRIBUTES:
        if hasattr(model, name):
            value = getattr(model, name)
            attributes[name] = list(value) if isinstance(value, deque) else copy.deepcopy(value)
    env = model.get_env()
    vecnorm = model.get_vec_normalize_env()
    vecnorm_state = None
    if vecnorm is not None:
        vecnorm_state = {
            # VecNormalize(norm_obs=False) (normalize_reward) has no obs_rms
            "obs_rms": _rms_state(vecnorm.obs_rms) if vecnorm.norm_obs else None,
            "ret_rms": _rms_state(vecnorm.ret_rms),
            **{k: copy.deepcopy(getattr(vecnorm, k, None)) for k in _VECNORMALIZE_ATTRIBUTES},
        }
    distillation = getattr(model, "distillation_state", None)
    return {
        "attributes": attributes,
        "rng": _rng_state(model),
        "env_replay": _replay_logs(env) if env is not None else None,
        "vecnormalize": vecnorm_state,
        "wrappers": _wrapper_state(env),
        "distillation": distillation() if callable(distillation) else None,
        "lstm_states": _lstm_state(model),
    }


_LSTM_NAMES = (("pi", 0, "pi_h"), ("pi", 1, "pi_c"), ("vf", 0, "vf_h"), ("vf", 1, "vf_c"))


def _lstm_state(model: BaseAlgorithm) -> dict[str, np.ndarray] | None:
    """A recurrent model's LSTM states (RecurrentPPO's ``_last_lstm_states``) as plain arrays."""
    states = getattr(model, "_last_lstm_states", None)
    if states is None:
        return None
    return {name: getattr(states, part)[i].detach().cpu().numpy().copy() for part, i, name in _LSTM_NAMES}


def _restore_lstm_state(model: BaseAlgorithm, arrays: dict[str, np.ndarray]) -> None:
    def get(name: str) -> th.Tensor:
        return th.as_tensor(np.asarray(arrays[name]), dtype=th.float32, device=model.device)

    model._last_lstm_states = RNNStates(  # type: ignore[attr-defined]
        (get("pi_h"), get("pi_c")), (get("vf_h"), get("vf_c"))
    )


def _wrapper_state(env: VecEnv | None) -> dict[str, Any]:
    """What VecEnv wrappers above the replayed envs hold: a frame stack's frames, the teacher's
    observation behind a student's view."""
    state: dict[str, Any] = {}
    stack = _find_wrapper(env, VecFrameStack)
    if stack is not None:
        state["stacked_obs"] = copy.deepcopy(stack.stacked_obs.stacked_obs)
    view = find_student_view(env)
    if view is not None:  # the environment's whole observation (the teacher reads its part)
        state["teacher_obs"] = copy.deepcopy(view.environment_observations())
    return state


def _find_wrapper(env: Any, cls: type) -> Any:
    while env is not None:
        if isinstance(env, cls):
            return env
        env = getattr(env, "venv", None)
    return None


def _replayed_target(model: BaseAlgorithm, vecnorm: VecNormalize | None, stack: Any, view: Any) -> Any:
    """The observation a replay must give back: the model's last one as the envs returned it,
    before a student's view cut it and a frame stack stacked it."""
    target = view.environment_observations() if view is not None else _raw_last_obs(model, vecnorm)
    if stack is not None:  # the newest frame of the stack
        frame = stack.venv.observation_space.shape[stack.stacked_obs.stack_dimension]
        target = np.take(target, range(-frame, 0), axis=stack.stacked_obs.stack_dimension)
    return target


def _raw_last_obs(model: BaseAlgorithm, vecnorm: VecNormalize | None) -> Any:
    if vecnorm is not None:
        return vecnorm.old_obs  # what the envs returned, before normalization
    return model._last_obs


def restore_state(model: BaseAlgorithm, state: dict[str, Any], seed: int) -> bool:
    """Put back a :func:`capture_state` into a freshly built model (weights already loaded).

    The random states are not restored here but by :func:`restore_rng_state`, at the first
    rollout boundary of the resumed ``learn`` (:class:`PeriodicCheckpoint` does it), since
    SB3 draws gSDE noise between ``learn`` and that point.

    :param model: a model built exactly as the checkpointed one (same env id, count, seed)
    :param state: the captured state
    :param seed: seed for fresh episodes when the environments cannot be replayed
    :return: True when every environment came back exactly, False when they restarted
    """
    env = model.get_env()
    assert env is not None
    vecnorm = model.get_vec_normalize_env()
    env.reset()  # consume the envs' pending seeds, as the interrupted run did at its start
    for name, value in state["attributes"].items():
        if name in ("ep_info_buffer", "ep_success_buffer", "teacher_ep_info_buffer"):
            value = deque(value, maxlen=model._stats_window_size)
        setattr(model, name, value)
    if vecnorm is not None and state["vecnormalize"] is not None:
        saved = state["vecnormalize"]
        if saved["obs_rms"] is not None:
            _set_rms(vecnorm.obs_rms, saved["obs_rms"])
        _set_rms(vecnorm.ret_rms, saved["ret_rms"])
        for k in _VECNORMALIZE_ATTRIBUTES:
            setattr(vecnorm, k, copy.deepcopy(saved[k]))

    wrappers = state.get("wrappers") or {}
    stack, view = _find_wrapper(env, VecFrameStack), find_student_view(env)
    if stack is not None and "stacked_obs" in wrappers:
        stack.stacked_obs.stacked_obs = copy.deepcopy(wrappers["stacked_obs"])
    if view is not None and "teacher_obs" in wrappers:
        view._env_obs = copy.deepcopy(wrappers["teacher_obs"])
    if state.get("lstm_states") is not None:
        _restore_lstm_state(model, state["lstm_states"])
    distillation = getattr(model, "restore_distillation_state", None)
    if callable(distillation):  # after the counters: it reads num_timesteps
        distillation(state.get("distillation") or {})

    logs = state.get("env_replay")
    exact = logs is not None and len(logs) == env.num_envs and all(log is not None for log in logs)
    if exact:
        assert logs is not None
        target = _replayed_target(model, vecnorm, stack, view)
        for i, log in enumerate(logs):
            obs = env.env_method("replay", log, indices=[i])[0]
            if not _same_obs(obs, _obs_at(target, i)):
                exact = False
                break
    if not exact:
        warnings.warn(
            "the training environments cannot be rebuilt exactly (not replayable); "
            "they start fresh episodes, so this resumed run will differ from an uninterrupted one",
            stacklevel=2,
        )
        env.seed(seed + int(model.num_timesteps))
        model._last_obs = env.reset()  # type: ignore[assignment]
        model._last_episode_starts = np.ones((env.num_envs,), dtype=bool)
        if vecnorm is not None:
            model._last_original_obs = vecnorm.get_original_obs()
    return exact


# ------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------


def check_parameters_finite(model: BaseAlgorithm) -> None:
    """Raise :class:`NonFiniteError` if a weight of the student is NaN or infinite."""
    error = nonfinite_weights(model)
    if error is not None:
        raise error


def write_checkpoint(path: Path, model: BaseAlgorithm, extra: dict[str, Any] | None = None) -> float:
    """Save a checkpoint of ``model`` (between two rollouts) to ``path``, atomically.

    :param path: the checkpoint file
    :param model: the model
    :param extra: more plain data to keep (numbers, strings, lists, dicts, arrays)
    :return: seconds it took
    """
    t0 = time.perf_counter()
    check_parameters_finite(model)
    student = io.BytesIO()
    model.save(student)
    state = {**capture_state(model), "extra": extra or {}}
    meta = {
        "format": FORMAT_VERSION,
        "num_timesteps": int(model.num_timesteps),
        "algorithm": type(model).__name__,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("student.zip", student.getvalue())
        archive.writestr("state.pkl", pickle.dumps(state, protocol=4))
        archive.writestr("meta.json", json.dumps(meta))
    atomic_write(Path(path), buffer.getvalue())
    return time.perf_counter() - t0


class Checkpoint:
    """A checkpoint read back from disk.

    :param student: the ``student.zip`` bytes (for ``model.set_parameters``)
    :param state: the :func:`capture_state` record, with ``extra``
    :param meta: step, algorithm, format
    """

    def __init__(self, student: bytes, state: dict[str, Any], meta: dict[str, Any]) -> None:
        self.student, self.state, self.meta = student, state, meta

    @property
    def num_timesteps(self) -> int:
        return int(self.meta["num_timesteps"])

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.state.get("extra") or {})


def read_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by :func:`write_checkpoint`.

    :param path: the checkpoint file
    """

    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read("meta.json"))
            student = archive.read("student.zip")
            state = safe_loads(archive.read("state.pkl"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError) as exc:
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}); delete it"
        ) from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION or not isinstance(state, dict):
        raise CheckpointError(f"{path} is a checkpoint of another format; it cannot be resumed here")
    return Checkpoint(student, state, meta)


def load_into(model: BaseAlgorithm, checkpoint: Checkpoint, seed: int) -> bool:
    """Load a checkpoint's weights, optimizer and state into a freshly built model.

    :param model: built like the checkpointed one
    :param checkpoint: what :func:`read_checkpoint` returned
    :param seed: seed of fresh episodes if the environments cannot be replayed
    :return: whether the environments came back exactly
    """
    saved, built = checkpoint.meta.get("algorithm"), type(model).__name__
    if saved != built:
        raise CheckpointError(f"the checkpoint holds a {saved}, the run builds a {built}")
    try:
        student = io.BytesIO(checkpoint.student)  # SB3 reads file objects too
        model.set_parameters(student, exact_match=True, device=model.device)  # type: ignore[arg-type]
    except (ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"the checkpoint's student does not fit the run: {one_line(exc)}") from exc
    return restore_state(model, checkpoint.state, seed)


class PeriodicCheckpoint(BaseCallback):
    """Writes a checkpoint at the first rollout boundary after every ``freq`` env steps (and at step 0).

    When resuming, pass the checkpoint's ``rng`` state as ``restore_rng``: it is put back at
    the first rollout boundary, which is where it was taken.

    :param path: the checkpoint file
    :param freq: env steps between checkpoints
    :param extra: called at each checkpoint for the caller's data (evaluation history, timings)
    :param restore_rng: random states to restore at the first rollout boundary
    """

    def __init__(
        self,
        path: Path,
        freq: int,
        extra: Callable[[], dict[str, Any]] | None = None,
        restore_rng: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if freq < 1:
            raise ValueError(f"checkpoint frequency must be positive, got {freq}")
        self.path, self.freq, self.extra = Path(path), int(freq), extra
        self._restore_rng = restore_rng
        self._next: int | None = None
        self.write_times: list[float] = []

    def _on_rollout_start(self) -> None:
        step = int(self.model.num_timesteps)
        if self._restore_rng is not None:
            restore_rng_state(self.model, self._restore_rng)
            self._restore_rng = None
            self._next = step + self.freq
            return
        if self._next is None or step >= self._next:
            self.write_times.append(
                write_checkpoint(self.path, self.model, self.extra() if self.extra else None)
            )
            self._next = step + self.freq

    def _on_step(self) -> bool:
        return True
