"""Making teachers: train one with tuned settings, or corrupt one into an imperfect teacher."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
import yaml
from gymnasium import spaces
from sb3_contrib import QRDQN, TQC
from stable_baselines3 import DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import ActionNoise, NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.vec_env import VecNormalize

from ppdistill.core.errors import ModelLoadError, PPDistillError, one_line
from ppdistill.core.files import atomic_write
from ppdistill.core.schedules import zoo_schedule
from ppdistill.core.seeds import SeedPlan
from ppdistill.envs.ids import canonical_env_id
from ppdistill.envs.recipe import EnvRecipe, RecipeError, zoo_wrappers
from ppdistill.evaluation import evaluate, random_policy_score
from ppdistill.experiment.config import ConfigError, coerce_numbers
from ppdistill.experiment.models import policy_name
from ppdistill.networks.presets import image_student_kwargs
from ppdistill.teachers.loading import load_teacher
from ppdistill.teachers.sb3_zip import (
    MAX_DATA_BYTES,
    MODEL_ZIP,
    is_state_dict,
    load_tensors,
    open_regular_file,
    read_sb3_zip,
    rebuilt_vecnormalize,
    safe_model_data,
)
from ppdistill.teachers.zoo_folder import ENV_SETTINGS, locate

TEACHER_ALGOS: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "dqn": DQN,
    "qrdqn": QRDQN,
    "td3": TD3,
    "sac": SAC,
    "tqc": TQC,
}
# The action spaces each algorithm can act in (SB3 asserts it; we say it in one line).
_ACTION_SPACES: dict[str, tuple[type[spaces.Space], ...]] = {
    "dqn": (spaces.Discrete,),
    "qrdqn": (spaces.Discrete,),
    "td3": (spaces.Box,),
    "sac": (spaces.Box,),
    "tqc": (spaces.Box,),
}
# Keys of the zoo's files whose lin_X form is a schedule falling linearly to 0.
_SCHEDULES = ("learning_rate", "clip_range")
_NOISES: dict[str, Callable[..., ActionNoise]] = {
    "normal": NormalActionNoise,
    "ornstein-uhlenbeck": OrnsteinUhlenbeckActionNoise,
}


def teacher_hyperparameters(env_id: str, algo: str) -> dict[str, Any]:
    """Tuned settings from ``ppdistill/configs/teachers.yml`` (the zoo's), or SB3's defaults.

    :param env_id: environment id
    :param algo: one of :data:`TEACHER_ALGOS`
    """
    data = coerce_numbers(
        yaml.safe_load(resources.files("ppdistill").joinpath("configs/teachers.yml").read_text())
    )
    section = data.get(canonical_env_id(env_id)) or data["default"]
    return dict(section.get(algo) or data["default"][algo])


def action_noise(hp: dict[str, Any], action_space: spaces.Space) -> ActionNoise | None:
    """The exploration noise of the zoo's ``noise_type`` / ``noise_std`` keys (popped from ``hp``).

    As in the RL Zoo: ``noise_type`` "normal" or "ornstein-uhlenbeck", with standard
    deviation ``noise_std`` in every action dimension (of the [-1, 1] actions TD3 and SAC act in).

    :param hp: hyperparameters; the two keys are removed
    :param action_space: the env's action space
    """
    kind = hp.pop("noise_type", None)
    std = hp.pop("noise_std", None)
    if kind is None:
        if std is not None:
            raise ConfigError("noise_std needs noise_type ('normal' or 'ornstein-uhlenbeck')")
        return None
    if str(kind).strip() not in _NOISES:
        raise ConfigError(f"unknown noise_type {kind!r}; choose one of {', '.join(_NOISES)}")
    if not isinstance(action_space, spaces.Box):
        raise ConfigError(f"action noise needs a Box action space, not {action_space}")
    try:
        sigma = float(std if std is not None else 0.1)
    except (TypeError, ValueError):
        raise ConfigError(f"noise_std must be a number, got {std!r}") from None
    if not sigma >= 0:
        raise ConfigError(f"noise_std must be >= 0, got {std}")
    d = int(np.prod(action_space.shape))
    return _NOISES[str(kind).strip()](mean=np.zeros(d), sigma=sigma * np.ones(d))


def vecnormalize_path(model_path: Path) -> Path:
    """Where ``teacher train`` puts a teacher's VecNormalize statistics: ``<stem>.vecnormalize.pkl``."""
    return model_path.with_name(model_path.stem + ".vecnormalize.pkl")


def train_teacher(
    env_id: str,
    algo: str,
    out: Path,
    timesteps: int | None = None,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    progress_bar: bool = False,
    verbose: int = 0,
) -> BaseAlgorithm:
    """Train a teacher and save it to ``out`` (a .zip), with its VecNormalize statistics if any.

    :param env_id: environment id
    :param algo: one of :data:`TEACHER_ALGOS` ("ppo", "dqn", "qrdqn", "td3", "sac", "tqc")
    :param out: path of the zip to write
    :param timesteps: budget (default: the config's)
    :param seed: seed
    :param overrides: hyperparameters replacing the config's
    :param progress_bar: show SB3's progress bar
    :param verbose: SB3 verbosity
    :return: the trained model
    """
    if algo not in TEACHER_ALGOS:
        raise ConfigError(f"unknown teacher algorithm {algo!r}; choose one of {', '.join(TEACHER_ALGOS)}")
    hp = {**teacher_hyperparameters(env_id, algo), **(overrides or {})}
    budget = int(timesteps if timesteps is not None else hp.pop("timesteps"))
    hp.pop("timesteps", None)
    if budget <= 0:
        raise PPDistillError(f"timesteps must be positive, got {budget}")
    n_envs = int(hp.pop("n_envs", 1))
    normalize = bool(hp.pop("normalize", False))
    try:
        # the zoo's env_wrapper (a TimeFeatureWrapper, say): recorded beside the zip, so that
        # load_teacher builds the env the teacher was trained in
        wrappers = zoo_wrappers(hp.pop("env_wrapper", None))
        recipe = EnvRecipe(env_id, wrappers=wrappers)
        env = recipe.make(n_envs=n_envs, seed=seed)
    except RecipeError as exc:
        raise ConfigError(str(exc)) from exc
    for key in _SCHEDULES:
        if key in hp:
            try:
                hp[key] = zoo_schedule(hp[key])
            except ValueError:
                env.close()
                raise ConfigError(f"{key} {hp[key]!r} is neither a number nor lin_X (X a number)") from None
    allowed = _ACTION_SPACES.get(algo)
    if allowed is not None and not isinstance(env.action_space, allowed):
        env.close()
        raise ConfigError(
            f"{algo} cannot act in {env_id}'s {type(env.action_space).__name__} action space; "
            f"it needs {' or '.join(a.__name__ for a in allowed)}"
        )
    noise = action_noise(hp, env.action_space)
    if noise is not None:
        hp["action_noise"] = noise
    if normalize:
        env = VecNormalize(env, gamma=float(hp.get("gamma", 0.99)))

    policy = policy_name(env.observation_space)
    if policy == "CnnPolicy" and "policy_kwargs" not in hp and algo == "ppo":
        # the paper's teachers: IMPALA-CNN {16, 32, 32} + FC 256
        hp["policy_kwargs"] = image_student_kwargs("same")
    try:
        model = TEACHER_ALGOS[algo](
            policy, env, seed=seed, verbose=verbose, device="auto" if policy == "CnnPolicy" else "cpu", **hp
        )
    except TypeError as exc:
        raise ConfigError(f"bad hyperparameter for {algo}: {exc}") from exc
    model.learn(budget, progress_bar=progress_bar)
    out = Path(out)
    buffer = io.BytesIO()
    model.save(buffer)
    atomic_write(out, buffer.getvalue())
    # rl-zoo style record of the env, so that load_teacher(out) needs no env_id
    record: dict[str, Any] = {"env": canonical_env_id(env_id), "algo": algo, "seed": seed}
    record["timesteps"] = budget
    if wrappers:
        record["env_wrapper"] = [{w.path: dict(w.kwargs)} if w.kwargs else w.path for w in wrappers]
    atomic_write(out.with_name(out.stem + ".args.yml"), yaml.safe_dump(record).encode())
    if normalize:
        assert isinstance(env, VecNormalize)
        stats = Path(tempfile.mkdtemp()) / "vecnormalize.pkl"
        env.save(str(stats))
        atomic_write(vecnormalize_path(out), stats.read_bytes())
    return model


# Entries of a model zip that are copied into a corrupted teacher: text SB3 never unpickles.
_TEXT_ENTRIES = {"_stable_baselines3_version": 1024, "system_info.txt": 1 << 16}


def corrupt_teacher(source: Path, out: Path, sigma: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """The paper's imperfect teacher: every weight perturbed once by N(0, σ²) noise.

    Every floating-point tensor of the policy (log-std included) gets independent additive
    noise; the optimizer state is dropped. The teacher's VecNormalize statistics, if any, are
    written unchanged next to ``out``.

    The source is read as :func:`~ppdistill.teachers.loading.load_teacher` reads it (a damaged
    or hostile file is refused before anything is written), and the output holds no byte of
    it that an unpickler would read: the ``data`` entry's pickled values and the
    ``vecnormalize.pkl`` are pickled afresh from what the allow-list unpickler decoded
    (:func:`~ppdistill.teachers.sb3_zip.safe_model_data`,
    :func:`~ppdistill.teachers.sb3_zip.rebuilt_vecnormalize`); the values it refuses, such as
    learning-rate and clip-range schedules (functions), are left out, and SB3 uses its
    defaults for them, which only matter to go on training.

    :param source: teacher zip or rl-zoo folder
    :param out: path of the corrupted zip
    :param sigma: standard deviation of the noise
    :param seed: seed of the noise
    :return: a summary (number of tensors and of weights perturbed, entries of ``data`` left out)
    """
    if not sigma >= 0:
        raise PPDistillError(f"sigma must be >= 0, got {sigma}")
    source = Path(source)
    load_teacher(source)  # the safe reader's verdict on the whole teacher, before anything is written
    located = locate(source)
    contents = read_sb3_zip(located.zip_path)
    data, left_out = safe_model_data(contents.data, located.zip_path)
    gen = th.Generator().manual_seed(seed)
    noisy: dict[str, th.Tensor] = {}
    n_tensors = n_weights = 0
    for name, tensor in contents.policy_state.items():
        if tensor.is_floating_point():
            noise = th.randn(tensor.shape, generator=gen, dtype=th.float64).to(tensor.dtype)
            noisy[name] = tensor + sigma * noise
            n_tensors += 1
            n_weights += tensor.numel()
        else:
            noisy[name] = tensor
    entries = {"data": json.dumps(data, indent=4).encode(), "policy.pth": _tensor_bytes(noisy)}
    entries.update(_safe_extra_entries(located.zip_path))
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w", zipfile.ZIP_DEFLATED) as zout:
        for name, blob in entries.items():
            zout.writestr(name, blob)
    statistics = rebuilt_vecnormalize(located.vecnormalize) if located.vecnormalize is not None else None
    out = Path(out)
    atomic_write(out, payload.getvalue())
    if statistics is not None:
        atomic_write(vecnormalize_path(out), statistics)
    # keep the record of the env next to the corrupted copy: its id and the wrappers, frame stack
    # and env_kwargs it was trained with (a time-feature teacher without them would not load)
    record = {"env": located.env_id} if located.env_id is not None else {}
    # (plain YAML data: the zoo reader turns its OrderedDicts into dicts)
    record.update({k: v for k, v in located.env_settings.items() if k in ENV_SETTINGS})
    if record:
        atomic_write(out.with_name(out.stem + ".args.yml"), yaml.safe_dump(record).encode())
    return {"tensors": n_tensors, "weights": n_weights, "sigma": sigma, "seed": seed, "left_out": left_out}


def _tensor_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    th.save(obj, buffer)
    return buffer.getvalue()


def _safe_extra_entries(zip_path: Path) -> dict[str, bytes]:
    """The entries of a model zip besides ``data`` and the weights that are safe to copy: SB3's
    text records, and its PyTorch variables (``log_ent_coef``) saved afresh from the tensors
    that ``weights_only`` loading read. Optimizer states belong to other weights and are left
    out, as is anything else."""
    kept: dict[str, bytes] = {}
    with open_regular_file(zip_path, MODEL_ZIP) as file:
        try:
            with zipfile.ZipFile(file) as archive:
                names = set(archive.namelist())
                for name, limit in _TEXT_ENTRIES.items():
                    if name in names and archive.getinfo(name).file_size <= limit:
                        kept[name] = archive.read(name)
                for name in ("pytorch_variables.pth", "tensors.pth"):
                    info = archive.getinfo(name) if name in names else None
                    if info is None or info.file_size > MAX_DATA_BYTES:
                        continue
                    try:
                        variables = load_tensors(archive.read(name))
                    except Exception:  # unreadable: SB3 does without (its defaults)
                        continue
                    if is_state_dict(variables):
                        kept[name] = _tensor_bytes(dict(variables))
        except Exception as exc:  # a damaged archive (its data and weights were readable)
            raise ModelLoadError(f"{zip_path} is a damaged zip file ({one_line(exc)})") from exc
    return kept


def calibrate_sigma(
    source: Path,
    env_id: str,
    target_fraction: float = 0.5,
    seed: int = 0,
    episodes: int = 10,
    tolerance: float = 0.1,
    max_evaluations: int = 10,
    deterministic: bool = True,
    log: Any = None,
) -> dict[str, Any]:
    """Find the noise σ whose corrupted teacher keeps about ``target_fraction`` of the score.

    The score is normalized, ``(R − R_random) / (R_teacher − R_random)``. σ is doubled or
    halved until the target is bracketed, then bisected in log scale, for at most
    ``max_evaluations`` corrupted teachers (each with the same noise ``seed``, so σ only
    scales one fixed perturbation direction and the score moves smoothly with it).

    :param source: teacher zip or rl-zoo folder
    :param env_id: environment to score on
    :param target_fraction: fraction of the teacher's normalized score to keep
    :param seed: seed of the noise (and, through the seed plan, of the episodes every candidate
        is scored on: ``SeedPlan(seed).calibration``)
    :param episodes: evaluation episodes per candidate
    :param tolerance: accept a σ whose fraction is within this of the target
    :param max_evaluations: candidates to try at most
    :param deterministic: evaluation rule
    :param log: called with a line per candidate
    :return: ``sigma``, its ``fraction``, the scores, and every candidate tried
    """

    if not 0 < target_fraction < 1:
        raise PPDistillError(f"target fraction must be in (0, 1), got {target_fraction}")
    episodes_seed = SeedPlan(seed).calibration
    teacher_score = evaluate(
        load_teacher(source, env_id=env_id), env_id, episodes, deterministic, seed=episodes_seed
    ).mean
    random_score = random_policy_score(env_id, episodes, seed=episodes_seed)
    span = teacher_score - random_score
    if span <= 0:
        raise PPDistillError(
            f"the teacher ({teacher_score:.1f}) does not beat a random policy ({random_score:.1f})"
        )
    tried: list[tuple[float, float]] = []
    workdir = Path(tempfile.mkdtemp(prefix="ppdistill-calibrate-"))

    def fraction(sigma: float) -> float:
        path = workdir / f"sigma-{sigma:.6g}.zip"
        corrupt_teacher(Path(source), path, sigma=sigma, seed=seed)
        score = evaluate(
            load_teacher(path, env_id=env_id), env_id, episodes, deterministic, seed=episodes_seed
        ).mean
        f = (score - random_score) / span
        tried.append((sigma, f))
        if log is not None:
            log(f"sigma {sigma:.4g}: score {score:.1f}, {f:.2f} of the teacher")
        return f

    lo, hi = None, None  # σ keeping too much, σ keeping too little
    sigma = 0.05
    for _ in range(max_evaluations):
        f = fraction(sigma)
        if abs(f - target_fraction) <= tolerance:
            break
        if f > target_fraction:
            lo = sigma
        else:
            hi = sigma
        sigma = (
            (lo * hi) ** 0.5
            if lo is not None and hi is not None
            else (sigma * 2 if hi is None else sigma / 2)
        )
    best_sigma, best_fraction = min(tried, key=lambda t: abs(t[1] - target_fraction))
    return {
        "sigma": best_sigma,
        "fraction": best_fraction,
        "teacher_score": teacher_score,
        "random_score": random_score,
        "tried": tried,
        "seed": seed,
    }
