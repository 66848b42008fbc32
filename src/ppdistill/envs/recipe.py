"""An environment as a model was trained in: its id, ``gym.make`` keyword arguments, the
wrappers applied to each copy, and a frame stack (what an RL Baselines3 Zoo run records in
its ``config.yml``: ``env_wrapper``, ``frame_stack``, ``env_kwargs``).

A teacher trained inside such wrappers (the zoo's MuJoCo PPO agents with a
``TimeFeatureWrapper``, say) takes observations only they make, so the student's environment
is built from the teacher's recipe. The student may instead see the environment's own
observation where the wrappers only add inputs for the teacher (a time feature, a frame
stack): :func:`raw_view` says how to take it out of the teacher's, and
:class:`~ppdistill.envs.views.StudentView` does it while the teacher keeps reading its own.

Wrappers are named in files by dotted paths, so importing them is importing code a file names:
only classes from :data:`WRAPPER_MODULES` are imported, and only ``gymnasium.Wrapper``
subclasses are applied.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack

from ppdistill.core.errors import PPDistillError
from ppdistill.core.spaces import is_flat_box
from ppdistill.envs.ids import canonical_env_id, env_family
from ppdistill.envs.make import make_vec_env, policy_observation_space
from ppdistill.envs.views import EntriesWithChange, ObservationEntries, ObservationGroups, StudentView

WRAPPER_MODULES = (
    "sb3_contrib.common.wrappers",
    "stable_baselines3.common.atari_wrappers",
    "gymnasium.wrappers",
    "rl_zoo3.wrappers",
)
"""Modules whose wrappers a recipe read from a file may name."""

# Wrappers that only add inputs to the environment's observation, with what they add: the
# student can be given the observation without them (see raw_view).
ADDS_INPUTS = {"sb3_contrib.common.wrappers.TimeFeatureWrapper": "a time feature (the last entry)"}


class RecipeError(PPDistillError, ValueError):
    """A recipe names something that cannot be built."""


@dataclass(frozen=True)
class WrapperSpec:
    """One wrapper of a recipe: its dotted class path and keyword arguments.

    :param path: e.g. ``"sb3_contrib.common.wrappers.TimeFeatureWrapper"``
    :param kwargs: keyword arguments of its constructor
    """

    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def load(self) -> type[gym.Wrapper]:
        """The wrapper class, imported only from :data:`WRAPPER_MODULES`."""
        module, _, name = self.path.rpartition(".")
        if module not in WRAPPER_MODULES:
            raise RecipeError(
                f"env_wrapper {self.path} is not imported from a file: ppdistill imports wrappers "
                f"from {', '.join(WRAPPER_MODULES)} only (Python API: build the env yourself)"
            )
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise RecipeError(f"env_wrapper {self.path} cannot be imported ({exc})") from exc
        if not (isinstance(cls, type) and issubclass(cls, gym.Wrapper)):
            raise RecipeError(f"env_wrapper {self.path} is not a gymnasium wrapper")
        return cls

    def apply(self, env: gym.Env) -> gym.Env:
        return self.load()(env, **self.kwargs)


@dataclass(frozen=True)
class ObservationSlice:
    """The student's view of a flat teacher observation: entries ``start:stop`` of its last axis.

    :param start: first entry (negative: from the end)
    :param stop: end (None: to the end)
    """

    start: int
    stop: int | None

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return obs[..., self.start : self.stop]

    def space(self, teacher_space: spaces.Space) -> spaces.Box:
        """The student's observation space."""
        assert isinstance(teacher_space, spaces.Box)
        low, high = self(teacher_space.low), self(teacher_space.high)
        return spaces.Box(low, high, low.shape, teacher_space.dtype)

    def describe(self) -> str:
        return f"entries [{self.start}:{self.stop if self.stop is not None else ''}]"


StudentPart = ObservationSlice | ObservationEntries | EntriesWithChange | ObservationGroups
"""A part of the environment's observation that a recipe can record (see :mod:`ppdistill.envs.views`)."""


def _part_as_data(part: StudentPart | None) -> Any:
    if part is None:
        return None
    if isinstance(part, ObservationSlice):
        return [part.start, part.stop]  # the form of ppdistill 0.1's recipes
    if isinstance(part, ObservationEntries):
        return {"entries": list(part.indices), "name": part.name}
    if isinstance(part, EntriesWithChange):
        return {"entries": list(part.indices), "name": part.name, "change": True}
    return {"groups": list(part.keys)}


def _part_from_data(data: Any) -> StudentPart | None:
    if not data:
        return None
    if isinstance(data, dict) and "groups" in data:
        return ObservationGroups(tuple(str(k) for k in data["groups"]))
    if isinstance(data, dict) and "entries" in data:
        indices, name = tuple(int(i) for i in data["entries"]), str(data.get("name", "entries"))
        if data.get("change"):
            return EntriesWithChange(indices, name)
        return ObservationEntries(indices, name)
    return ObservationSlice(int(data[0]), None if data[1] is None else int(data[1]))


def zoo_wrappers(value: Any) -> tuple[WrapperSpec, ...]:
    """An rl-zoo ``env_wrapper`` in any of its forms (a dotted path, ``{path: kwargs}``, or a
    list of them) as wrapper specs; None as none.

    :param value: the ``env_wrapper`` value of a ``config.yml`` or a hyperparameter file
    :raises RecipeError: a value of another shape
    """
    if value is None:
        return ()
    specs = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            specs.append(WrapperSpec(item))
        elif isinstance(item, dict) and len(item) == 1:
            ((path, kwargs),) = item.items()
            if not isinstance(path, str) or not isinstance(kwargs, dict | None):
                raise RecipeError(f"env_wrapper entry {item!r} is not a dotted path with keywords")
            specs.append(WrapperSpec(path, dict(kwargs or {})))
        else:
            raise RecipeError(f"env_wrapper {value!r} is not a dotted path, a mapping or a list")
    return tuple(specs)


@dataclass(frozen=True)
class EnvRecipe:
    """How to build the environment a model acts in (see the module docstring).

    :param env_id: environment id (legacy zoo ids and ``MODULE:ID`` accepted)
    :param env_kwargs: keyword arguments of ``gym.make``
    :param wrappers: wrappers applied to each copy, innermost first (outside its Monitor)
    :param frame_stack: stack this many observations (0: none)
    :param student_view: the student's part of each observation, when it does not see all
        of it (see :mod:`ppdistill.envs.views`)
    :param teacher_view: the teacher's part of each observation, when it does not read all of
        it (groups of a Dict observation; only with a ``student_view``)
    """

    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    wrappers: tuple[WrapperSpec, ...] = ()
    frame_stack: int = 0
    student_view: StudentPart | None = None
    teacher_view: ObservationGroups | None = None

    @property
    def plain(self) -> bool:
        """Nothing beyond the id: what :func:`~ppdistill.envs.make.make_vec_env` builds."""
        return not (
            self.env_kwargs or self.wrappers or self.frame_stack or self.student_view or self.teacher_view
        )

    def make(
        self,
        n_envs: int = 1,
        seed: int | None = None,
        training: bool = True,
        wrapper_class: Callable[[gym.Env], gym.Env] | None = None,
    ) -> VecEnv:
        """The VecEnv (see :func:`~ppdistill.envs.make.make_vec_env` for the arguments).

        :param n_envs: copies
        :param seed: seed of the first copy
        :param training: training or evaluation variant
        :param wrapper_class: wraps each copy outside the recipe's wrappers
        """
        for wrapper in self.wrappers:
            wrapper.load()  # refused here, in the caller's process, before any env is built
        wrap: Callable[[gym.Env], gym.Env] | None = wrapper_class
        if self.wrappers:

            def wrap(env: gym.Env) -> gym.Env:
                for wrapper in self.wrappers:
                    env = wrapper.apply(env)
                return wrapper_class(env) if wrapper_class is not None else env

        vec_env = make_vec_env(
            self.env_id, n_envs, seed, training=training, env_kwargs=self.env_kwargs, wrapper_class=wrap
        )
        if self.frame_stack and env_family(self.env_id) != "atari":  # Atari is stacked already
            vec_env = VecFrameStack(vec_env, n_stack=self.frame_stack)
        if self.teacher_view is not None and self.student_view is None:
            raise RecipeError("a recipe's teacher_view needs a student_view (what the student reads)")
        if self.student_view is not None:
            whole = vec_env.observation_space
            teacher = self.teacher_view
            vec_env = StudentView(
                vec_env,
                self.student_view,
                self.student_view.space(whole),
                teacher,
                teacher.space(whole) if teacher is not None else None,
            )
        return vec_env

    def spaces(self) -> tuple[spaces.Space, spaces.Space]:
        """Observation and action spaces as a policy sees them (read once per process)."""
        key = repr(self)
        if key not in _SPACES:
            vec_env = self.make(n_envs=1, training=False)
            try:
                _SPACES[key] = (policy_observation_space(vec_env.observation_space), vec_env.action_space)
            finally:
                vec_env.close()
        obs_space, act_space = _SPACES[key]
        return copy.deepcopy(obs_space), copy.deepcopy(act_space)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for ``teacher.info`` and records)."""
        return {
            "env_id": self.env_id,
            "env_kwargs": dict(self.env_kwargs),
            "wrappers": [{"path": w.path, "kwargs": dict(w.kwargs)} for w in self.wrappers],
            "frame_stack": self.frame_stack,
            "student_view": _part_as_data(self.student_view),
            "teacher_view": _part_as_data(self.teacher_view),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvRecipe:
        """Read :meth:`as_dict` back."""
        wrappers = tuple(
            WrapperSpec(w["path"], dict(w.get("kwargs") or {})) for w in data.get("wrappers", [])
        )
        teacher_view = _part_from_data(data.get("teacher_view"))
        if teacher_view is not None and not isinstance(teacher_view, ObservationGroups):
            raise RecipeError("a recipe's teacher_view names observation groups only")
        return cls(
            str(data["env_id"]),
            dict(data.get("env_kwargs") or {}),
            wrappers,
            int(data.get("frame_stack") or 0),
            _part_from_data(data.get("student_view")),
            teacher_view,
        )

    def describe(self) -> str:
        """The recipe in words, for messages."""
        parts = [canonical_env_id(self.env_id)]
        parts += [w.path.rpartition(".")[2] + (f"({w.kwargs})" if w.kwargs else "") for w in self.wrappers]
        if self.frame_stack:
            parts.append(f"frame stack {self.frame_stack}")
        if self.env_kwargs:
            parts.append(f"env_kwargs {self.env_kwargs}")
        if self.student_view is not None:
            parts.append(f"the student sees {self.student_view.describe()}")
        if self.teacher_view is not None:
            parts.append(f"the teacher reads {self.teacher_view.describe()}")
        return " + ".join(parts)


_SPACES: dict[str, tuple[spaces.Space, spaces.Space]] = {}


def agent_recipe(agent: Any) -> EnvRecipe | None:
    """The recipe an agent says it acts in, if it says: a teacher's ``env_recipe``, or the one a
    ppdistill run saved on an SB3 model (a dict).

    :param agent: a teacher, an SB3 model, or anything else (None then)
    """
    recipe = getattr(agent, "env_recipe", None)
    if isinstance(recipe, dict):  # an SB3 model's saved attribute
        recipe = EnvRecipe.from_dict(recipe)
    return recipe if isinstance(recipe, EnvRecipe) else None


def raw_view(recipe: EnvRecipe) -> ObservationSlice:
    """How to take the environment's own observation out of the teacher's, where the recipe only
    adds inputs: a frame stack (the last frame) and wrappers of :data:`ADDS_INPUTS` (a time
    feature, the last entry of each frame).

    :param recipe: the teacher's recipe
    :raises RecipeError: when a wrapper changes the observation in another way
    """
    others = [w.path for w in recipe.wrappers if w.path not in ADDS_INPUTS]
    if others:
        raise RecipeError(
            f"the student cannot be given the raw observation: {', '.join(others)} changes it in ways "
            f"ppdistill does not undo (it can for {', '.join(ADDS_INPUTS)} and frame_stack); "
            "give the student the teacher's observation"
        )
    base_obs, _ = EnvRecipe(recipe.env_id, recipe.env_kwargs).spaces()
    if not is_flat_box(base_obs):
        raise RecipeError(f"the raw observation is taken out of flat Box observations only, not {base_obs}")
    frame = int(base_obs.shape[0]) + len(recipe.wrappers)  # each wrapper of ADDS_INPUTS adds one entry
    return ObservationSlice(-frame, -len(recipe.wrappers) or None)
