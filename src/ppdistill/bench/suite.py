"""Benchmark suites: a YAML grid of env × method × student size × seed, expanded into runs.

A suite file::

    name: cpu
    seeds: [0, 1, 2]
    methods: [ppd, student-distill, teacher-distill, ppo]
    students: [smaller, same, larger]
    timesteps: 100000          # default budget per run
    eval_freq: 10000           # env steps between evaluations (default: budget / 10)
    eval_episodes: 10
    final_episodes: 20
    hp: {ppd: {n_epochs: 4}}   # overrides for every env (per method)
    envs:
      - env: CartPole-v1
        teacher: zoo:ppo/CartPole-v1_1          # zoo: resolves under $PPDISTILL_ZOO_DIR
                                                # (package:<file> is a teacher shipped in ppdistill)
        timesteps: 30000
        hp: {ppd: {gamma: 0.98}}               # per-env overrides
      - env: MinAtar/Breakout-v1
        teacher: teachers/minatar/ppo-Breakout-v1.zip   # relative to the repository root
        corrupt: {sigma: 0.05, seed: 0}        # the imperfect-teacher variant
        students: [larger]                     # per-env restriction

Method variants (for ablations) are named under ``variants`` and used like methods::

    variants:
      ppd-detached: {method: ppd, hp: {detach_ratio: true}}
    methods: [ppd, ppd-detached]

Hyperparameters: the shipped ``distill.yml`` for the env, method and teacher kind, then the suite's
``hp``, then the env entry's ``hp``. Evaluation is deterministic except on Procgen
(stochastic, the paper's rule) unless ``deterministic`` says otherwise. A teacher is scored one
way per task: to score it by its argmax and with sampled actions, give one entry a ``tag``
(references are taken, and runs paired, per mode). A corrupted teacher calibrated by
``target_fraction`` is calibrated the entry's way, so the two ways would give two teachers:
give ``sigma`` to score one corrupted teacher both ways.

The runner's keys work in ``hp`` too (see :mod:`ppdistill.experiment.runner`): ``lambda_schedule`` for
PPD, and ``then_finetune`` / ``critic_warmup`` / ``finetune_hp`` for a distill-then-fine-tune
pipeline, whose ``finetune_hp`` is completed from the shipped config's ``ppo`` and ``finetune``
sections::

    variants:
      ppd-dtf: {method: ppd, hp: {lambda_schedule: "distill-then-finetune:0.5"}}
      sd-ft: {method: student-distill, hp: {then_finetune: 50000, critic_warmup: 10000}}

Several teachers of one env are told apart by a ``tag`` (letters, digits, ``_.-``): it ends
their run ids, and the report gives each env and tag its own section and its own stratum in
the bootstrap (``Hopper-v5 [sac]``)::

    envs:
      - {env: Hopper-v5, tag: sac, teacher: teachers/kinds/sac-Hopper-v5.zip}
      - {env: Hopper-v5, tag: td3, teacher: teachers/kinds/td3-Hopper-v5.zip}

Choosing and verifying (a suite in two halves): every env entry names its ``half``, ``tune``
(defaults may be chosen on it) or ``verify`` (run only on frozen defaults), and
``bench run --half`` runs one of them. The verify half runs only while the shipped
``distill.yml`` is the one whose SHA-256 the suite names, so a default changed after freezing
cannot slip into the verification (every record carries the hash it ran with)::

    frozen_defaults_sha256: "3f2a..."   # `ppdistill bench run --half verify` prints the current one
    envs:
      - {env: Hopper-v5, teacher: teachers/sac-hopper.zip, half: tune}
      - {env: Walker2d-v5, teacher: teachers/sac-walker2d.zip, half: verify}
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ppdistill.core.errors import PPDistillError, one_line
from ppdistill.envs.ids import env_family
from ppdistill.experiment.config import (
    METHODS,
    ConfigError,
    check_keys,
    coerce_numbers,
    run_hyperparameters,
    shipped_config_sha256,
)
from ppdistill.experiment.spec import RunSpec, student_reads_vector
from ppdistill.experiment.zoo_hyperparameters import zoo_ppo_hyperparameters
from ppdistill.networks.presets import STUDENT_SIZES
from ppdistill.teachers.loading import kind_of_source
from ppdistill.teachers.zoo_folder import locate


def _ancestors(suite_file: Path | None) -> list[Path]:
    """Where relative references are looked up: the suite's folder and its parents, then the
    working directory and its parents (a suite under ``benchmarks/suites`` finds the repository)."""
    starts = ([suite_file.resolve().parent] if suite_file is not None else []) + [Path.cwd()]
    return [folder for start in starts for folder in (start, *start.parents)]


def zoo_dir(suite_file: Path | None = None) -> Path:
    """``$PPDISTILL_ZOO_DIR``, else the first ``shared/teachers/rl-zoo`` beside the suite's folder
    or one of its parents (or the working directory's)."""
    env = os.environ.get("PPDISTILL_ZOO_DIR")
    if env:
        return Path(env)
    candidates = [folder / "shared" / "teachers" / "rl-zoo" for folder in _ancestors(suite_file)]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def resolve_teacher(ref: str, suite_file: Path | None) -> Path:
    """``zoo:<folder>`` → the zoo folder; ``package:<name>`` → a teacher shipped in ppdistill;
    a relative path → the first of the suite's folder, its parents, the working directory and
    its parents where it exists (``teachers/minatar/...`` from ``benchmarks/suites/``)."""
    if ref.startswith("zoo:"):
        return zoo_dir(suite_file) / ref[4:]
    if ref.startswith("package:"):  # a teacher shipped inside ppdistill (ppdistill/assets)
        return Path(str(resources.files("ppdistill").joinpath("assets", ref[8:])))
    path = Path(ref).expanduser()
    if path.is_absolute():
        return path
    found = [folder / path for folder in _ancestors(suite_file) if (folder / path).exists()]
    return found[0] if found else Path.cwd() / path


@dataclass
class EnvEntry:
    """One environment of a suite."""

    env: str
    teacher: str
    timesteps: int
    students: list[str]
    methods: list[str]
    hp: dict[str, dict[str, Any]] = field(default_factory=dict)
    corrupt: dict[str, Any] | None = None
    deterministic: bool = True
    eval_freq: int | None = None
    student_obs: str = "teacher"
    zoo_hp: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per method label with ``zoo_hyperparameters: true``: the hyperparameters of the teacher's
    rl-zoo run, which replace the shipped config's (``hp`` still overrides them)."""
    tag: str = ""
    """Added to the run ids of this entry (one corrupted teacher among several of an env)."""
    half: str = ""
    """``tune`` or ``verify`` in a suite with two halves (see the module docstring), else empty."""
    name: str = ""
    """The teacher's name where an env has several (``tag`` in the file): in run ids and reports."""


@dataclass
class Suite:
    """A parsed suite file."""

    name: str
    envs: list[EnvEntry]
    seeds: list[int]
    eval_freq: int = 0
    eval_episodes: int = 10
    final_episodes: int = 20
    path: Path | None = None
    description: str = ""
    variants: dict[str, str] = field(default_factory=dict)
    frozen_defaults_sha256: str = ""
    which_half: str = ""
    """``tune`` or ``verify`` once reduced by :meth:`half` (its name then ends in it), else empty."""

    @property
    def halves(self) -> bool:
        """Whether the suite is in a tune and a verify half (its env entries name theirs)."""
        return any(e.half for e in self.envs)

    def half(self, which: str) -> Suite:
        """The suite reduced to one half, named ``<name>-<which>``.

        :param which: "tune" or "verify"
        :raises ConfigError: a suite without halves; the verify half of a suite whose frozen
            defaults are not the shipped ``distill.yml`` (or that names none)
        """
        where = self.path or self.name
        if which not in HALVES:
            raise ConfigError(f"--half takes {' or '.join(HALVES)}, not {which!r}")
        if not self.halves:
            raise ConfigError(f"{where} has no halves: its envs name no 'half: tune|verify'")
        if which == "verify":
            current = shipped_config_sha256()
            if not self.frozen_defaults_sha256:
                raise ConfigError(
                    f"{where}: the verify half runs on frozen defaults; once they are chosen, write "
                    f"'frozen_defaults_sha256: \"{current}\"' (the shipped distill.yml's) in the suite"
                )
            if self.frozen_defaults_sha256 != current:
                raise ConfigError(
                    f"{where}: the shipped distill.yml (SHA-256 {current}) is not the one frozen for the "
                    f"verify half ({self.frozen_defaults_sha256[:12]}...): the defaults changed after "
                    "freezing; verify on a checkout of the frozen defaults, or choose again"
                )
        return replace(
            self,
            envs=[e for e in self.envs if e.half == which],
            name=f"{self.name}-{which}",
            which_half=which,
        )

    def only_envs(self, env_ids: list[str]) -> Suite:
        """The suite reduced to the entries of some env ids (the rest run later into the same
        folder: runs are keyed by their id, so a resumed full suite skips these).

        :param env_ids: env ids of the suite's entries, or ``ENV[TAG]`` for the entry of one
            teacher where an env has several (``Hopper-v5[td3]``)
        :raises ConfigError: an env id or tag no entry has
        """
        known = sorted({e.env for e in self.envs} | {f"{e.env}[{e.name}]" for e in self.envs if e.name})
        unknown = [env for env in env_ids if env not in known]
        if unknown:
            raise ConfigError(
                f"--env {unknown[0]}: not in {self.path or self.name} (its envs: {', '.join(known)})"
            )
        return replace(
            self, envs=[e for e in self.envs if e.env in env_ids or f"{e.env}[{e.name}]" in env_ids]
        )

    def base_method(self, label: str) -> str:
        """The algorithm behind a method label (a variant's, or the label itself)."""
        return self.variants.get(label, label)

    def runs(self) -> list[tuple[str, RunSpec, EnvEntry]]:
        """Every run of the grid as ``(run id, spec, env entry)``, in a stable order."""
        out = []
        for entry in self.envs:
            teacher_kind = kind_of_source(entry.teacher)  # the config's teacher_kinds entry
            vector = student_reads_vector(entry.teacher, entry.env, entry.student_obs)
            for student in entry.students:
                for label in entry.methods:
                    method = self.base_method(label)
                    for seed in self.seeds:
                        # a pipeline's finetune_hp is completed from the config's ppo section
                        if label in entry.zoo_hp:
                            hp = {**entry.zoo_hp[label], **entry.hp.get(label, {})}
                        else:
                            hp = run_hyperparameters(
                                entry.env,
                                method,
                                entry.hp.get(label, {}),
                                teacher_kind=teacher_kind,
                                vector_observations=vector,
                            )
                        spec = RunSpec(
                            env_id=entry.env,
                            method=method,
                            teacher=entry.teacher,
                            timesteps=entry.timesteps,
                            student=student,
                            seed=seed,
                            hp=hp,
                            eval_freq=entry.eval_freq if entry.eval_freq is not None else self.eval_freq,
                            eval_episodes=self.eval_episodes,
                            final_episodes=self.final_episodes,
                            deterministic=entry.deterministic,
                            student_obs=entry.student_obs,
                        )
                        out.append((run_id(entry.env, label, student, seed) + entry.tag, spec, entry))
        seen: set[str] = set()
        for rid, _, entry in out:
            if rid in seen:  # records are keyed by id: the second run would be skipped as done
                raise ConfigError(
                    f"two runs of {self.path or self.name} share the id {rid} ({entry.env} entries "
                    "with the same method, student and seed): give one of them other variant labels"
                )
            seen.add(rid)
        return out


def _zoo_hyperparameters(path: Path, env: str, label: str, method: str, teacher: Path) -> dict[str, Any]:
    """``zoo_hyperparameters: true``: the teacher's rl-zoo run's own hyperparameters (ppo only)."""
    if method != "ppo":
        raise ConfigError(f"{path}: zoo_hyperparameters applies to ppo, not {label} ({env})")
    try:
        located = locate(teacher)
    except PPDistillError as exc:
        raise ConfigError(f"{path}: zoo_hyperparameters for {env}: {one_line(exc)}") from exc
    if not located.config:
        raise ConfigError(
            f"{path}: zoo_hyperparameters for {env} needs an rl-zoo run folder with a config.yml "
            f"as the teacher; {teacher} has none"
        )
    return zoo_ppo_hyperparameters(located.config, f"{teacher}'s config.yml")


CORRUPT_KEYS = frozenset({"sigma", "seed", "seeds", "target_fraction", "calibration_episodes"})
"""``corrupt``'s keys: a fixed ``sigma``, or a ``target_fraction`` found by calibration on
``calibration_episodes`` episodes (by default :func:`~ppdistill.experiment.teacher_prep.calibrate_sigma`'s
10, too few for a teacher whose returns spread widely; more narrow σ's error without removing it)."""


def _check_corrupt(corrupt: Any, where: str) -> None:
    """One-line errors for a ``corrupt`` entry that is not what :data:`CORRUPT_KEYS` says."""
    if not isinstance(corrupt, dict) or not corrupt:
        raise ConfigError(f"{where} must be a mapping such as {{sigma: 0.05, seed: 0}}, got {corrupt!r}")
    unknown = sorted(set(corrupt) - CORRUPT_KEYS)
    if unknown:
        raise ConfigError(f"{where} takes {', '.join(sorted(CORRUPT_KEYS))}, not {', '.join(unknown)}")
    if "sigma" in corrupt and "target_fraction" in corrupt:
        raise ConfigError(f"{where} takes sigma or target_fraction (calibrated), not both")
    if "calibration_episodes" in corrupt:
        episodes = corrupt["calibration_episodes"]
        if "target_fraction" not in corrupt:
            raise ConfigError(f"{where}.calibration_episodes applies only with target_fraction")
        if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
            raise ConfigError(f"{where}.calibration_episodes must be a positive integer")


def _corruption_seeds(entry: EnvEntry, path: Path, index: int) -> list[EnvEntry]:
    """``corrupt: {..., seeds: [a, b, c]}``: one entry per corruption seed, each its own
    corrupted teacher, its runs' ids ending in ``__c<seed>``."""
    if not entry.corrupt or "seeds" not in entry.corrupt:
        return [entry]
    seeds = entry.corrupt["seeds"]
    if "seed" in entry.corrupt or not isinstance(seeds, list) or not seeds:
        raise ConfigError(f"{path}: envs[{index}].corrupt takes either seed or a non-empty list of seeds")
    rest = {k: v for k, v in entry.corrupt.items() if k != "seeds"}
    return [replace(entry, corrupt={**rest, "seed": int(s)}, tag=f"{entry.tag}__c{int(s)}") for s in seeds]


def _check_modes(
    entries: list[EnvEntry], index: int, modes: dict[tuple[str, str, str, str], tuple[int, bool]], path: Path
) -> None:
    """Refuse one task and teacher scored both by the argmax policy and with sampled actions:
    their runs would be paired in one unit against one mode's references.

    :param entries: the entries of file entry ``index`` (several with corruption seeds)
    :param index: the entry's place in the file's ``envs``
    :param modes: the evaluation mode of each (env, name, teacher, corruption) before, filled in here
    :param path: the suite file, for messages
    """
    for entry in entries:
        # by the task the report groups runs under (env and name), not the run ids' tag, which
        # corruption seeds extend without changing the task
        key = (entry.env, entry.name, entry.teacher, json.dumps(entry.corrupt, sort_keys=True))
        first, deterministic = modes.setdefault(key, (index, entry.deterministic))
        if deterministic != entry.deterministic:
            raise ConfigError(
                f"{path}: envs[{first}] and envs[{index}] score one teacher of {entry.env} both "
                "deterministically and with sampled actions; give one of them a tag, so that each "
                "is paired with references taken its own way"
            )


def run_id(env_id: str, method: str, student: str, seed: int) -> str:
    """A file-name-safe id, e.g. ``MinAtar-Breakout-v1__ppd__smaller__s0``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", env_id)
    return f"{safe}__{method}__{student}__s{seed}"


_SUITE_KEYS = {
    "name", "description", "seeds", "methods", "students", "timesteps", "eval_freq", "eval_episodes",
    "final_episodes", "hp", "envs", "variants", "deterministic", "frozen_defaults_sha256",
}  # fmt: skip
HALVES = ("tune", "verify")
"""The halves of a suite that chooses defaults on some teachers and verifies them on others."""
_ENV_KEYS = {
    "env",
    "teacher",
    "timesteps",
    "students",
    "methods",
    "hp",
    "corrupt",
    "deterministic",
    "eval_freq",
    "student_obs",
    "half",
    "tag",
}


def _as_list(value: Any, default: list[Any]) -> list[Any]:
    if value is None:
        return list(default)
    return list(value) if isinstance(value, list | tuple) else [value]


def load_suite(path: Path) -> Suite:
    """Parse and check a suite file (raises :class:`~ppdistill.experiment.config.ConfigError`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"suite file {path} does not exist")
    try:
        raw_data = yaml.safe_load(path.read_text()) or {}
        data = coerce_numbers(raw_data)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {one_line(exc)}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("envs"), list) or not data["envs"]:
        raise ConfigError(f"{path}: a suite needs a non-empty 'envs' list")
    methods = _as_list(data.get("methods"), list(METHODS))
    variants: dict[str, str] = {}
    variant_hp: dict[str, dict[str, Any]] = {}
    for label, raw_variant in (data.get("variants") or {}).items():
        if not isinstance(raw_variant, dict) or raw_variant.get("method") not in METHODS:
            raise ConfigError(f"{path}: variant {label!r} needs 'method: one of {', '.join(METHODS)}'")
        variants[str(label)] = raw_variant["method"]
        variant_hp[str(label)] = dict(raw_variant.get("hp") or {})
    students = _as_list(data.get("students"), list(STUDENT_SIZES))
    global_hp = data.get("hp") or {}
    envs = []
    unknown = sorted(set(data) - _SUITE_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r}; a suite takes {', '.join(sorted(_SUITE_KEYS))}"
        )
    modes: dict[tuple[str, str, str, str], tuple[int, bool]] = {}
    for i, raw in enumerate(data["envs"]):
        if not isinstance(raw, dict) or "env" not in raw or "teacher" not in raw:
            raise ConfigError(f"{path}: envs[{i}] needs 'env' and 'teacher'")
        unknown = sorted(set(raw) - _ENV_KEYS)
        if unknown:
            raise ConfigError(
                f"{path}: envs[{i}] has unknown key {unknown[0]!r}; use {', '.join(sorted(_ENV_KEYS))}"
            )
        entry_methods = _as_list(raw.get("methods"), methods)
        for m in entry_methods:
            if m not in METHODS and m not in variants:
                raise ConfigError(
                    f"{path}: unknown method {m!r}; choose from {', '.join([*METHODS, *variants])}"
                )
        name = str(raw.get("tag") or "")
        if name and not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ConfigError(
                f"{path}: envs[{i}].tag {name!r} may hold letters, digits, '_', '.' and '-' only"
            )
        half = str(raw.get("half", ""))
        if half and half not in HALVES:
            raise ConfigError(f"{path}: envs[{i}].half is {half!r}; use {' or '.join(HALVES)}")
        teacher = resolve_teacher(str(raw["teacher"]), path)
        hp: dict[str, dict[str, Any]] = {}
        zoo_hp: dict[str, dict[str, Any]] = {}
        for m in entry_methods:
            base = variants.get(m, m)
            merged = {
                **(global_hp.get(base) or {}),
                **(variant_hp.get(m) or {}),
                **((raw.get("hp") or {}).get(m) or {}),
            }
            if merged.pop("zoo_hyperparameters", False):
                zoo_hp[m] = _zoo_hyperparameters(path, raw["env"], m, base, teacher)
            check_keys(base, merged, f"{path} ({raw['env']}, {m})")
            hp[m] = merged
        timesteps = int(raw.get("timesteps") or data.get("timesteps") or 100_000)
        if timesteps <= 0:
            raise ConfigError(f"{path}: timesteps must be positive for {raw['env']}")
        entry = EnvEntry(
            env=str(raw["env"]),
            teacher=str(teacher),
            timesteps=timesteps,
            students=_as_list(raw.get("students"), students),
            methods=entry_methods,
            hp=hp,
            corrupt=raw.get("corrupt"),
            eval_freq=int(raw["eval_freq"]) if "eval_freq" in raw else None,
            student_obs=str(raw.get("student_obs", "teacher")),
            deterministic=bool(
                raw.get("deterministic", data.get("deterministic", env_family(raw["env"]) != "procgen"))
            ),
            zoo_hp=zoo_hp,
            half=half,
            name=name,
            tag=f"__{name}" if name else "",
        )
        if entry.corrupt is not None:
            _check_corrupt(entry.corrupt, f"{path}: envs[{i}].corrupt")
        expanded = _corruption_seeds(entry, path, i)
        _check_modes(expanded, i, modes, path)
        envs += expanded
    if any(e.half for e in envs) and not all(e.half for e in envs):
        missing = next(e.env for e in envs if not e.half)
        raise ConfigError(
            f"{path}: {missing} names no half; in a suite with halves every env entry names its own"
        )
    # read before coerce_numbers, which would make a hash of digits (and e) a number
    frozen = raw_data.get("frozen_defaults_sha256") or ""
    if frozen and not (isinstance(frozen, str) and re.fullmatch(r"[0-9a-f]{64}", frozen)):
        raise ConfigError(
            f"{path}: frozen_defaults_sha256 must be 64 hexadecimal digits in quotes, got {frozen!r}"
        )
    seeds = [int(s) for s in _as_list(data.get("seeds"), [0])]
    return Suite(
        name=str(data.get("name", path.stem)),
        envs=envs,
        seeds=seeds,
        eval_freq=int(data.get("eval_freq", 0)),
        eval_episodes=int(data.get("eval_episodes", 10)),
        final_episodes=int(data.get("final_episodes", 20)),
        path=path,
        description=str(data.get("description", "")),
        variants=variants,
        frozen_defaults_sha256=frozen,
    )
