"""Making teachers: train one with tuned settings, or corrupt one into an imperfect teacher."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import torch as th
import yaml
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from ppdistill.config import ConfigError, _coerce
from ppdistill.envs import canonical_env_id, make_vec_env
from ppdistill.errors import PPDistillError
from ppdistill.serialization import locate, read_sb3_zip

TEACHER_ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "dqn": DQN}


def teacher_hyperparameters(env_id: str, algo: str) -> dict[str, Any]:
    """Tuned settings from ``ppdistill/configs/teachers.yml`` (the zoo's), or SB3's defaults.

    :param env_id: environment id
    :param algo: "ppo" or "dqn"
    """
    data = _coerce(yaml.safe_load(resources.files("ppdistill").joinpath("configs/teachers.yml").read_text()))
    section = data.get(canonical_env_id(env_id)) or data["default"]
    return dict(section.get(algo) or data["default"][algo])


def vecnormalize_path(model_path: Path) -> Path:
    """Where ``teacher train`` puts a teacher's VecNormalize statistics: ``<stem>.vecnormalize.pkl``."""
    return model_path.with_name(model_path.stem + ".vecnormalize.pkl")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give them the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    :param algo: "ppo" or "dqn"
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
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if normalize:
        env = VecNormalize(env, gamma=float(hp.get("gamma", 0.99)))
    from ppdistill.networks import image_student_kwargs
    from ppdistill.runs import policy_name

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
    _atomic_write(out, buffer.getvalue())
    # rl-zoo style record of the env, so that load_teacher(out) needs no env_id
    record = {"env": canonical_env_id(env_id), "algo": algo, "seed": seed, "timesteps": budget}
    _atomic_write(out.with_name(out.stem + ".args.yml"), yaml.safe_dump(record).encode())
    if normalize:
        assert isinstance(env, VecNormalize)
        stats = Path(tempfile.mkdtemp()) / "vecnormalize.pkl"
        env.save(str(stats))
        _atomic_write(vecnormalize_path(out), stats.read_bytes())
    return model


def corrupt_teacher(source: Path, out: Path, sigma: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """The paper's imperfect teacher: every weight perturbed once by N(0, σ²) noise.

    Every floating-point tensor of the policy (log-std included) gets independent additive
    noise; the optimizer state is dropped. The teacher's VecNormalize statistics, if any, are
    copied unchanged next to ``out``.

    :param source: teacher zip or rl-zoo folder
    :param out: path of the corrupted zip
    :param sigma: standard deviation of the noise
    :param seed: seed of the noise
    :return: a summary (number of tensors and of weights perturbed)
    """
    if sigma < 0:
        raise PPDistillError(f"sigma must be >= 0, got {sigma}")
    located = locate(Path(source))
    contents = read_sb3_zip(located.zip_path)
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
    state_bytes = io.BytesIO()
    th.save(noisy, state_bytes)
    payload = io.BytesIO()
    with (
        zipfile.ZipFile(located.zip_path) as zin,
        zipfile.ZipFile(payload, "w", zipfile.ZIP_DEFLATED) as zout,
    ):
        for item in zin.infolist():
            if item.filename == "policy.pth":
                zout.writestr(item.filename, state_bytes.getvalue())
            elif item.filename.endswith("optimizer.pth"):
                continue  # an optimizer state for other weights would only mislead
            else:
                zout.writestr(item, zin.read(item.filename))
    out = Path(out)
    _atomic_write(out, payload.getvalue())
    if located.vecnormalize is not None:
        _atomic_write(vecnormalize_path(out), located.vecnormalize.read_bytes())
    if located.env_id is not None:
        # keep the zoo's record of the env id next to the corrupted copy
        _atomic_write(out.with_name(out.stem + ".args.yml"), yaml.safe_dump({"env": located.env_id}).encode())
    return {"tensors": n_tensors, "weights": n_weights, "sigma": sigma, "seed": seed}
