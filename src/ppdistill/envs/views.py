"""Different observations for the teacher and the student, from one environment.

The environment gives one observation; :class:`StudentView` hands the student a part of it
(``view``) and keeps the whole one aside, from which the teacher's part is taken
(``teacher_view``; by default the teacher reads all of it). The distillation algorithm records
the teacher's part with every step of the rollout (the teacher runs once per rollout on what it
reads; the student never receives the rest). Terminal observations in ``infos`` are the
student's too, so that SB3 bootstraps truncated episodes with the student's critic.

The views:

- :class:`ObservationGroups`: named groups of a ``Dict`` observation (``policy``,
  ``privileged``, ...), the common case for a privileged teacher: the teacher reads
  ``policy`` and ``privileged``, the student ``policy`` only (:func:`split_observations`);
- :class:`ObservationEntries`: chosen entries of a flat observation (the positions of a
  state without its velocities, :mod:`ppdistill.envs.masked`);
- :class:`EntriesWithChange`: chosen entries and their change since the step before (the
  positions and what an encoder read over two steps gives of the velocities), the one view
  that reads the step before: :class:`StudentView` keeps it;
- :class:`~ppdistill.envs.recipe.ObservationSlice`: a range of entries (the environment's own
  observation inside a zoo teacher's, :func:`~ppdistill.envs.recipe.raw_view`);
- any function of an observation batch, with the space it gives.

Groups whose name starts with ``privileged`` are the teacher's only, unless the caller says
which groups are (``privileged_keys``): a student given one is refused in one line naming the
group (:func:`check_groups`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from ppdistill.core.errors import PPDistillError, SpaceMismatchError
from ppdistill.core.spaces import is_flat_box

View = Callable[[Any], Any]

PRIVILEGED_PREFIX = "privileged"
"""Groups whose name starts with this are privileged (the teacher's only) unless told otherwise."""


class ViewError(PPDistillError, ValueError):
    """The teacher's and the student's parts of the observation do not fit the environment."""


@dataclass(frozen=True)
class ObservationGroups:
    """Named groups of a ``Dict`` observation: one group gives its own observation (a ``Box``,
    say), several a ``Dict`` of them.

    :param keys: the groups, in the order given
    """

    keys: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.keys or any(not isinstance(k, str) or not k for k in self.keys):
            raise ViewError(f"observation groups must be non-empty names, got {list(self.keys)}")
        if len(set(self.keys)) != len(self.keys):
            raise ViewError(f"observation group named twice in {list(self.keys)}")

    def __call__(self, obs: Any) -> Any:
        if not isinstance(obs, dict):
            raise ViewError(f"observation groups {list(self.keys)} are taken from a Dict observation")
        if len(self.keys) == 1:
            return obs[self.keys[0]]
        return {k: obs[k] for k in self.keys}

    def space(self, full: spaces.Space) -> spaces.Space:
        """The space of this part of a ``full`` Dict observation space."""
        check_groups_exist(full, self.keys, "these groups")
        assert isinstance(full, spaces.Dict)
        if len(self.keys) == 1:
            return full.spaces[self.keys[0]]
        return spaces.Dict({k: full.spaces[k] for k in self.keys})

    def describe(self) -> str:
        return f"groups {', '.join(self.keys)}"


@dataclass(frozen=True)
class ObservationEntries:
    """Chosen entries of the last axis of a flat observation (e.g. positions without velocities).

    :param indices: the entries kept, in order (negative: from the end)
    :param name: what they are, for messages (``"positions"``)
    """

    indices: tuple[int, ...]
    name: str = "entries"

    def __call__(self, obs: Any) -> Any:
        return np.asarray(obs)[..., list(self.indices)]

    def space(self, full: spaces.Space) -> spaces.Box:
        """The space of these entries of a flat ``Box`` observation space."""
        if not is_flat_box(full):
            raise ViewError(f"{self.name} are taken out of flat Box observations, not {full}")
        n = full.shape[0]
        bad = [i for i in self.indices if not -n <= i < n]
        if bad:
            raise ViewError(f"entry {bad[0]} of {self.name} is outside the observation's {n} entries")
        low, high = self(full.low), self(full.high)
        return spaces.Box(low, high, low.shape, full.dtype)

    def describe(self) -> str:
        return f"{self.name} (entries {', '.join(map(str, self.indices))})"


@dataclass(frozen=True)
class EntriesWithChange:
    """Chosen entries of a flat observation, then their change since the step before (zero at an
    episode's first step): ``[x, x - x_before]``. The change is computed from what the student
    itself sees, over two steps, as a robot would from its encoders; no velocity is read.

    A network could learn the subtraction from two frames, but learning the difference of two
    nearly equal inputs is slow (``benchmarks/results/privileged-history-probe``).

    :param indices: the entries kept, in order (negative: from the end)
    :param name: what they are, for messages (``"positions"``)
    """

    # Its change is a few percent of the entries' scale and the teacher's statistics say nothing
    # of it: a student of it normalizes with its own running statistics unless told otherwise
    own_statistics: ClassVar[bool] = True
    indices: tuple[int, ...]
    name: str = "entries"

    def __call__(self, obs: Any, before: Any = None) -> Any:
        """The view of ``obs`` (a batch), with ``before`` the observations of the step before
        (None, or the same as ``obs``: an episode's first step, whose change is zero)."""
        entries = ObservationEntries(self.indices, self.name)
        now = entries(obs)
        change = np.zeros_like(now) if before is None else now - entries(before)
        return np.concatenate([now, change], axis=-1)

    def space(self, full: spaces.Space) -> spaces.Box:
        """The space of these entries of a flat ``Box`` observation space and their change (at
        most the entries' range either way)."""
        entries = ObservationEntries(self.indices, self.name).space(full)
        span = entries.high - entries.low  # inf where an entry is unbounded
        low, high = np.concatenate([entries.low, -span]), np.concatenate([entries.high, span])
        return spaces.Box(low, high, low.shape, entries.dtype)

    def describe(self) -> str:
        entries = ", ".join(map(str, self.indices))
        return f"{self.name} (entries {entries}) and their change since the step before"


def privileged_groups(space: spaces.Dict, privileged_keys: Iterable[str] | None) -> tuple[str, ...]:
    """The groups of ``space`` that only the teacher may read: ``privileged_keys`` when given,
    else those whose name starts with :data:`PRIVILEGED_PREFIX`."""
    if privileged_keys is not None:
        return tuple(privileged_keys)
    return tuple(k for k in space.spaces if k.startswith(PRIVILEGED_PREFIX))


def check_groups_exist(space: spaces.Space, keys: Sequence[str], whose: str) -> None:
    """Raise :class:`ViewError` unless ``space`` is a Dict that has every group of ``keys``."""
    if not isinstance(space, spaces.Dict):
        raise ViewError(
            f"{whose} name observation groups, but the environment's observation is {space}, "
            "not a Dict of named groups"
        )
    missing = [k for k in keys if k not in space.spaces]
    if missing:
        raise ViewError(
            f"the environment has no observation group {missing[0]!r} (it has {', '.join(space.spaces)}); "
            f"check {whose}"
        )


def check_groups(
    space: spaces.Space,
    student_keys: Sequence[str],
    teacher_keys: Sequence[str] | None = None,
    privileged_keys: Iterable[str] | None = None,
) -> None:
    """Refuse groups that overlap the wrong way, in one line naming the group: a group the
    environment does not have, or a privileged group (the teacher's only) given to the student.

    :param space: the environment's Dict observation space
    :param student_keys: the groups the student reads
    :param teacher_keys: the groups the teacher reads (None: all of them)
    :param privileged_keys: the groups only the teacher may read (None: those named ``privileged...``)
    """
    check_groups_exist(space, student_keys, "the student's groups (student_keys, --student-obs)")
    if teacher_keys is not None:
        check_groups_exist(space, teacher_keys, "the teacher's groups (teacher_keys, --teacher-obs)")
    assert isinstance(space, spaces.Dict)
    privileged = privileged_groups(space, privileged_keys)
    check_groups_exist(space, privileged, "the privileged groups (privileged_keys)")
    for key in student_keys:
        if key in privileged:
            raise ViewError(
                f"the student would read observation group {key!r}, which is privileged (the "
                "teacher's only): drop it from the student's groups (student_keys, --student-obs)"
            )


def check_teacher_reads(
    teacher_space: spaces.Space, given: spaces.Space, where: str, groups: Sequence[str] | None = None
) -> None:
    """Refuse, naming the group, a teacher that is not given what it reads: a group of its Dict
    observation that its part of the environment's observation lacks (or one it does not read).

    :param teacher_space: the teacher's observation space
    :param given: the space of the part of the environment's observation given to the teacher
    :param where: the teacher, for the message
    :param groups: the groups that part is made of, when known (one group gives its own space)
    """
    one_group = groups is not None and len(groups) == 1
    if isinstance(teacher_space, spaces.Dict) and one_group and not isinstance(given, spaces.Dict):
        assert groups is not None
        given = spaces.Dict({groups[0]: given})
    if isinstance(teacher_space, spaces.Dict) and isinstance(given, spaces.Dict):
        missing = [k for k in teacher_space.spaces if k not in given.spaces]
        if missing:
            raise SpaceMismatchError(
                f"{where} reads observation group {missing[0]!r}, which it is not given (it is given "
                f"{', '.join(given.spaces)}): add it to the teacher's groups (teacher_keys, --teacher-obs)"
            )
        extra = [k for k in given.spaces if k not in teacher_space.spaces]
        if extra:
            raise SpaceMismatchError(
                f"{where} does not read observation group {extra[0]!r} (it reads "
                f"{', '.join(teacher_space.spaces)}): drop it from the teacher's groups (teacher_keys, "
                "--teacher-obs)"
            )
    elif isinstance(teacher_space, spaces.Dict):
        raise SpaceMismatchError(
            f"{where} reads the observation groups {', '.join(teacher_space.spaces)}, but is given one "
            f"observation ({given}): give it all of them (teacher_keys, --teacher-obs)"
        )
    elif isinstance(given, spaces.Dict):
        raise SpaceMismatchError(
            f"{where} reads one observation ({teacher_space}), but is given the groups "
            f"{', '.join(given.spaces)}: give it the one group it reads (teacher_keys, --teacher-obs)"
        )


class StudentView(VecEnvWrapper):
    """The student's part of each observation; the environment's whole one kept aside, from
    which the teacher reads its part.

    :param venv: the environment
    :param view: the environment's observation (a batch) → the student's
    :param observation_space: the student's observation space
    :param teacher_view: the environment's observation (a batch) → the teacher's (None: all of it)
    :param teacher_observation_space: the teacher's part's space (with ``teacher_view``)
    """

    def __init__(
        self,
        venv: VecEnv,
        view: View,
        observation_space: spaces.Space,
        teacher_view: View | None = None,
        teacher_observation_space: spaces.Space | None = None,
    ) -> None:
        super().__init__(venv, observation_space=observation_space)
        self.view = view
        self.teacher_view = teacher_view
        if teacher_view is not None and teacher_observation_space is None:
            raise ValueError("a teacher_view needs its teacher_observation_space")
        self.environment_observation_space = venv.observation_space
        self.teacher_observation_space: spaces.Space = (
            teacher_observation_space
            if teacher_view is not None and teacher_observation_space is not None
            else venv.observation_space
        )
        self._env_obs: Any = None
        self._acted_on: Any = None

    def _teachers(self, obs: Any) -> Any:
        return obs if self.teacher_view is None or obs is None else self.teacher_view(obs)

    def environment_observations(self) -> Any:
        """The environment's whole observation of the current step (a batch), as it gave it."""
        return self._env_obs

    def teacher_observations(self) -> Any:
        """The teacher's observation of the current step (a batch)."""
        return self._teachers(self._env_obs)

    def acted_on(self) -> Any:
        """The teacher's observation of the step just taken (the one before the current)."""
        return self._teachers(self._acted_on)

    def reset(self) -> VecEnvObs:
        self._env_obs = self.venv.reset()
        return self.view(self._env_obs)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        self._acted_on, self._env_obs = self._env_obs, obs
        # The step before is the environment's observation just acted on, which checkpoints
        # keep (environment_observations), so a resumed run's changes are the same.
        view, acted_on = self.view, self._acted_on
        if isinstance(view, EntriesWithChange):
            # a finished episode's copy gives the next one's first step: no change yet
            student = view(obs, np.where(np.asarray(dones, bool)[:, None], np.asarray(obs), acted_on))

            def of_terminal(terminal: Any, i: int) -> Any:
                return view(_batch_of_one(terminal), _batch_of_one(acted_on[i]))
        else:
            student = view(obs)

            def of_terminal(terminal: Any, i: int) -> Any:
                return view(_batch_of_one(terminal))

        for i, info in enumerate(infos):
            terminal = info.get("terminal_observation")
            if terminal is not None:
                info["terminal_observation"] = _first(of_terminal(terminal, i))
        return student, rewards, dones, infos


def split_observations(
    venv: VecEnv,
    student_keys: Sequence[str],
    teacher_keys: Sequence[str] | None = None,
    privileged_keys: Iterable[str] | None = None,
) -> StudentView:
    """A Dict-observation environment whose student reads some groups and teacher others.

    For a privileged teacher: ``split_observations(env, student_keys=["policy"],
    teacher_keys=["policy", "privileged"])``. One group gives the student that group's own
    observation (a ``Box``: an ``MlpPolicy`` student, exported with one input); several a
    ``Dict`` of them.

    :param venv: the environment, with a Dict observation of named groups
    :param student_keys: the groups the student reads
    :param teacher_keys: the groups the teacher reads (None: all of them)
    :param privileged_keys: the groups the student must never read (None: those whose name
        starts with ``privileged``); a student given one is refused
    :raises ViewError: one line naming the group that does not fit
    """
    student = ObservationGroups(tuple(student_keys))
    teacher = ObservationGroups(tuple(teacher_keys)) if teacher_keys is not None else None
    space = venv.observation_space
    check_groups(space, student.keys, teacher.keys if teacher else None, privileged_keys)
    return StudentView(
        venv,
        student,
        student.space(space),
        teacher,
        teacher.space(space) if teacher is not None else None,
    )


def statistics_view(view: View | None, teacher_view: View | None) -> tuple[bool, View | None]:
    """Whether the teacher's observation statistics apply to what the student sees, and the
    cut of them that does (None: all of them): a part of the entries the teacher reads (a view
    of entries, with the teacher reading everything), or the very groups it reads.

    :param view: the student's view (None: the student sees what the teacher does)
    :param teacher_view: the teacher's (None: the whole observation)
    """
    if view is None:
        return True, None
    if isinstance(view, EntriesWithChange):  # the teacher's statistics say nothing of a change
        return False, None
    if isinstance(view, ObservationGroups):
        same = isinstance(teacher_view, ObservationGroups) and teacher_view.keys == view.keys
        return same, None
    return teacher_view is None, view


def _batch_of_one(obs: Any) -> Any:
    if isinstance(obs, dict):
        return {k: np.asarray(v)[None] for k, v in obs.items()}
    return np.asarray(obs)[None]


def _first(batch: Any) -> Any:
    return {k: v[0] for k, v in batch.items()} if isinstance(batch, dict) else batch[0]


def find_student_view(env: VecEnv | None) -> StudentView | None:
    """The :class:`StudentView` in a chain of VecEnv wrappers, if there is one.

    :param env: the outermost VecEnv
    """
    while env is not None:
        if isinstance(env, StudentView):
            return env
        env = getattr(env, "venv", None)
    return None
