"""The checks of a run that need its environment's spaces or the machine: before any work.

:class:`~ppdistill.experiment.spec.RunSpec` checks every value when it is made (types,
ranges, finiteness, choices). :func:`validate_run` adds what those values mean together with
the environment and the machine, so that a run that cannot work is refused in one line
before an environment, a model or a file is made:

- PPO's rules across keys (:func:`~ppdistill.experiment.config.check_ppo_sizes`): a
  minibatch and a rollout of at least 2 samples while advantages are normalized;
- one rollout (``n_steps × n_envs``) must fit in the budget (``timesteps``, and
  ``then_finetune`` for the fine-tuning phase of a pipeline): SB3 always collects whole
  rollouts, so a larger one trains past the budget, and every evaluation due inside it
  runs before the first update;
- a minibatch (``batch_size``) larger than a rollout is warned of (not refused): every
  minibatch is then the whole rollout, so the value has no effect;
- the rollout buffer and the student network must fit in memory: at most half of the
  machine's memory (:func:`memory_limit`, the smallest of the physical memory, the
  process's address-space limit and its cgroup's limit), and at most
  :data:`MAX_PARAMETERS` parameters.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_obs_shape, is_image_space

from ppdistill.envs.make import env_spaces
from ppdistill.experiment.config import (
    ConfigError,
    check_ppo_sizes,
    default_hyperparameter,
    finetune_hyperparameters,
)
from ppdistill.experiment.spec import RunSpec
from ppdistill.networks.normalization import NormalizationError, running_normalization
from ppdistill.networks.presets import mlp_param_count, mlp_student_arch, teacher_mlp_width
from ppdistill.teachers.base import Teacher

# More parameters than this is not a student (the paper's largest is about 0.5 million).
MAX_PARAMETERS = 1_000_000_000
# Bytes a parameter takes while training: the weight, its gradient and Adam's two moments.
BYTES_PER_PARAMETER = 4 * 4
# Copies of the observations a rollout keeps: SB3's buffer, and its flattened copy for training
# (or the teacher's raw observations).
OBS_COPIES = 2


def memory_limit() -> int | None:
    """Bytes this process may use at most: the smallest of the machine's physical memory,
    the address-space limit (``ulimit -v``) and the cgroup's ``memory.max``; None if unknown."""
    limits: list[int] = []
    with contextlib.suppress(AttributeError, ValueError, OSError):
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft not in (resource.RLIM_INFINITY, -1) and soft > 0:
            limits.append(int(soft))
    except (ImportError, ValueError, OSError):
        pass
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            limits.append(int(text))
    except OSError:
        pass
    return min(limits) if limits else None


def _phases(spec: RunSpec) -> list[tuple[str, dict[str, Any], int]]:
    """(method, hyperparameters, env steps) of each phase of the run."""
    phases = [(spec.method, spec.hp, int(spec.timesteps))]
    if spec.finetune_steps > 0:
        finetune = spec.hp.get("finetune_hp")
        if finetune is None:  # what the runner takes then
            finetune = finetune_hyperparameters(spec.env_id)
        phases.append(("ppo", finetune, spec.finetune_steps))
    return phases


def rollout_shape(method: str, hp: Mapping[str, Any]) -> tuple[int, int]:
    """(n_steps, n_envs) of a phase, with the algorithm's and the runner's defaults.

    :param method: the phase's method (``ppo`` for a fine-tuning phase)
    :param hp: the phase's hyperparameters
    """
    return int(hp.get("n_steps", default_hyperparameter(method, "n_steps"))), int(hp.get("n_envs", 1))


def _obs_numbers(space: spaces.Space) -> int:
    """Numbers per observation in SB3's rollout buffer (float32 each)."""
    if isinstance(space, spaces.Dict):
        return sum(_obs_numbers(sub) for sub in space.spaces.values())
    return math.prod(get_obs_shape(space))  # type: ignore[arg-type]


def _student_layers(spec: RunSpec, teacher: Teacher | None) -> tuple[list[int], list[int], bool]:
    """The student's actor and critic hidden layers, and whether ``policy_kwargs`` set them."""
    net_arch = (spec.hp.get("policy_kwargs") or {}).get("net_arch")
    if net_arch is not None:
        if isinstance(net_arch, list) and len(net_arch) == 1 and isinstance(net_arch[0], Mapping):
            net_arch = net_arch[0]
        if isinstance(net_arch, Mapping):
            return [int(n) for n in net_arch.get("pi", [])], [int(n) for n in net_arch.get("vf", [])], True
        return teacher_mlp_width(net_arch), teacher_mlp_width(net_arch), True
    widths = (teacher.hidden_layers if teacher is not None else None) or [64, 64]
    arch = mlp_student_arch(spec.student, widths)
    return arch, list(arch), False


def student_parameters(
    spec: RunSpec, obs_space: spaces.Space, act_space: spaces.Space, teacher: Teacher | None = None
) -> int | None:
    """Parameters of the run's MLP student (actor and critic); None for an image student.

    :param spec: the run
    :param obs_space: the policy's observation space
    :param act_space: the action space
    :param teacher: the teacher (the preset sizes are relative to its hidden layers)
    """
    if is_image_space(obs_space) or isinstance(obs_space, spaces.Dict):
        return None
    pi, vf, _ = _student_layers(spec, teacher)
    obs_dim, act_dim = spaces.flatdim(obs_space), spaces.flatdim(act_space)
    return mlp_param_count(obs_dim, pi, act_dim) + mlp_param_count(obs_dim, vf, 1)


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def _check_anchor(spec: RunSpec, finetune: Mapping[str, Any]) -> None:
    """The fine-tuning's KL anchor: a distilled student that sees what its teacher sees (the
    anchor reads the teacher's inputs), fading over more than one rollout (λ is set once per
    rollout, so a shorter fading would never act)."""
    if spec.student_obs != "teacher":
        raise ConfigError(
            f"finetune_anchor needs a student that sees the teacher's observation, not --student-obs "
            f"{spec.student_obs}: drop --finetune-anchor"
        )
    n_steps, n_envs = rollout_shape("ppo", finetune)
    fading = int(spec.hp.get("finetune_anchor_steps") or 0)
    if 0 < fading <= n_steps * n_envs:
        raise ConfigError(
            f"finetune_anchor_steps ({fading}) must exceed one fine-tuning rollout "
            f"(n_steps x n_envs = {n_steps} x {n_envs}): λ is set once per rollout"
        )


def validate_run(spec: RunSpec, teacher: Teacher | None = None) -> None:
    """Refuse a run that cannot work, before any work (see the module docstring).

    :param spec: the run (its values already checked by :class:`RunSpec`)
    :param teacher: the loaded teacher, whose spaces and hidden layers are used; without it,
        the environment's spaces (:func:`ppdistill.envs.make.env_spaces`) and a (64, 64)
        reference for the preset student sizes
    :raises ConfigError: one line naming the value to change
    """
    obs_space: spaces.Space
    act_space: spaces.Space
    if teacher is not None:
        obs_space, act_space = teacher.observation_space, teacher.action_space
    else:
        obs_space, act_space = env_spaces(spec.env_id)
    phases = _phases(spec)
    for i, (method, hp, _) in enumerate(phases):
        check_ppo_sizes(method, hp, "--finetune-hp" if i else "--hp")
    if spec.hp.get("finetune_anchor"):
        _check_anchor(spec, phases[-1][1])
    if spec.hp.get("student_obs_norm") == "running" and spec.student_obs == "teacher":
        try:  # the algorithm's own check, here before the run folder is made
            running_normalization(dict(spec.hp.get("policy_kwargs") or {}), obs_space)
        except NormalizationError as exc:
            raise ConfigError(str(exc)) from exc

    # sizes that cannot be allocated
    params = student_parameters(spec, obs_space, act_space, teacher)
    _, _, from_hp = _student_layers(spec, teacher)
    smaller = (
        "give smaller layers in --hp 'policy_kwargs={net_arch: [64, 64]}'"
        if from_hp
        else "choose smaller hidden sizes with --student (e.g. --student 64,64)"
    )
    if params is not None and params > MAX_PARAMETERS:
        raise ConfigError(
            f"the student network would have {params:.3g} parameters, more than {MAX_PARAMETERS:.0e}; "
            f"{smaller}"
        )
    limit = memory_limit()
    if limit is not None:
        budget = limit // 2
        param_bytes = (params or 0) * BYTES_PER_PARAMETER
        if param_bytes > budget:
            raise ConfigError(
                f"the student network ({params:.3g} parameters) needs about {_gb(param_bytes)} to train, "
                f"more than half of this machine's memory ({_gb(limit)}); {smaller}"
            )
        numbers = _obs_numbers(obs_space)
        for i, (method, hp, _) in enumerate(phases):
            n_steps, n_envs = rollout_shape(method, hp)
            rollout_bytes = n_steps * n_envs * numbers * 4 * OBS_COPIES
            if rollout_bytes + param_bytes > budget:
                option = "--finetune-hp" if i else "--hp"
                envs = "--finetune-hp n_envs=N" if i else "--n-envs"
                phase = "a fine-tuning rollout" if i else "one rollout"
                raise ConfigError(
                    f"{phase} of n_steps × n_envs = {n_steps} × {n_envs} steps of {numbers}-number "
                    f"observations needs about {_gb(rollout_bytes)}, which with the student is more than "
                    f"half of this machine's memory ({_gb(limit)}); lower n_steps ({option} n_steps=N) "
                    f"or {envs}"
                )

    # a rollout within the budget
    for i, (method, hp, budget_steps) in enumerate(phases):
        n_steps, n_envs = rollout_shape(method, hp)
        batch = hp.get("batch_size", default_hyperparameter(method, "batch_size"))
        if batch is not None and batch > n_steps * n_envs:
            # not an error (the whole rollout is one minibatch), but a value that does nothing
            # should not pass unseen: SB3 says so for PPO only, and a sweep over it measured noise
            option = "--finetune-hp" if i else "--hp"
            warnings.warn(
                f"batch_size {batch} is larger than one rollout of n_steps × n_envs = {n_steps} × {n_envs} "
                f"= {n_steps * n_envs} steps: every minibatch is the whole rollout, so batch_size has no "
                f"effect; to change the minibatch, lower {option} batch_size=N or raise n_steps or n_envs",
                stacklevel=2,
            )
        if n_steps * n_envs > budget_steps:
            if i == 0:
                raise ConfigError(
                    f"one rollout of n_steps × n_envs = {n_steps} × {n_envs} = {n_steps * n_envs} env steps "
                    f"exceeds --timesteps {budget_steps}; lower --n-envs or n_steps (--hp n_steps=N), "
                    "or raise --timesteps"
                )
            raise ConfigError(
                f"one fine-tuning rollout of n_steps × n_envs = {n_steps} × {n_envs} = {n_steps * n_envs} "
                f"env steps exceeds --then-finetune {budget_steps}; lower --finetune-hp n_envs=N or "
                "--finetune-hp n_steps=N, or raise --then-finetune"
            )
