"""Different observations for the teacher and the student: named groups of a Dict observation,
chosen entries of a flat one. A privileged group reaches the teacher, never the student."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.torch_layers import FlattenExtractor

from ppdistill import PPD, StudentDistill, TeacherDistill, evaluate
from ppdistill.algorithms import RecurrentPPD, RecurrentStudentDistill, RecurrentTeacherDistill
from ppdistill.core.errors import SpaceMismatchError
from ppdistill.envs.recipe import EnvRecipe, ObservationSlice
from ppdistill.envs.views import (
    EntriesWithChange,
    ObservationEntries,
    ObservationGroups,
    ViewError,
    split_observations,
    statistics_view,
)
from ppdistill.teachers.callable import CallableTeacher

from ..helpers import save_student_of_view

PRIVILEGED_FLOOR = 1000.0  # every privileged value is above it; every other one far below


class PrivilegedToyEnv(gym.Env):
    """Dict observations: ``policy`` (2 numbers near 0), ``privileged`` (3 numbers above 1000,
    the step count among them); action 1 pays when the privileged sum is odd; 10-step episodes."""

    def __init__(self) -> None:
        self.observation_space = spaces.Dict(
            {
                "policy": spaces.Box(-10.0, 10.0, (2,), np.float32),
                "privileged": spaces.Box(0.0, np.inf, (3,), np.float32),
            }
        )
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def _obs(self):
        return {
            "policy": self.np_random.normal(size=2).astype(np.float32),
            "privileged": (PRIVILEGED_FLOOR + np.array([self.t, *self.np_random.integers(0, 9, 2)])).astype(
                np.float32
            ),
        }

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.last = self._obs()
        return self.last, {}

    def step(self, action):
        reward = float(int(action) == int(self.last["privileged"].sum()) % 2)
        self.t += 1
        self.last = self._obs()
        return self.last, reward, False, self.t >= 10, {}


class SpyExtractor(FlattenExtractor):
    """A student's features extractor that records every observation the student's network gets
    (acting, training, predicting values, evaluating: all of them pass through it)."""

    seen: list[th.Tensor] = []  # noqa: RUF012

    def forward(self, observations):
        SpyExtractor.seen.append(observations.detach().clone())
        return super().forward(observations)


def spy_teacher():
    """A teacher reading both groups that records every observation it is given; its logits
    follow the parity of the privileged sum (it needs the privileged group)."""
    seen: list[dict[str, th.Tensor]] = []

    def params(obs):
        seen.append({k: v.detach().clone() for k, v in obs.items()})
        odd = (obs["privileged"].sum(dim=1).round() % 2).float()
        return th.stack([-3 * odd, 3 * odd], dim=1)

    space = PrivilegedToyEnv().observation_space
    teacher = CallableTeacher(params, space, spaces.Discrete(2), info={"kind": "callable"}).freeze()
    return teacher, seen


def split_env(seed=0, n_envs=2):
    env = make_vec_env(PrivilegedToyEnv, n_envs=n_envs, seed=seed)
    return split_observations(env, student_keys=["policy"], teacher_keys=["policy", "privileged"])


CASES = {
    "ppd": (PPD, "MlpPolicy"),
    "student-distill": (StudentDistill, "MlpPolicy"),
    "teacher-distill": (TeacherDistill, "MlpPolicy"),
    "recurrent-ppd": (RecurrentPPD, "MlpLstmPolicy"),
    "recurrent-student-distill": (RecurrentStudentDistill, "MlpLstmPolicy"),
    "recurrent-teacher-distill": (RecurrentTeacherDistill, "MlpLstmPolicy"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_student_never_receives_the_privileged_group_and_the_teacher_reads_it(case):
    cls, policy = CASES[case]
    teacher, teacher_seen = spy_teacher()
    SpyExtractor.seen = []
    kwargs = {"lstm_hidden_size": 8} if "Lstm" in policy else {}
    student = cls(policy, split_env(), teacher=teacher, n_steps=16, batch_size=16, n_epochs=2, seed=0,
                  device="cpu", policy_kwargs={"features_extractor_class": SpyExtractor, "net_arch": [8],
                                                **kwargs})  # fmt: skip
    assert student.observation_space == spaces.Box(-10.0, 10.0, (2,), np.float32)
    calls = teacher.n_calls
    student.learn(64)  # 2 rollouts of 16 steps x 2 envs
    evaluate(student, split_env(seed=7), n_episodes=2)

    # every observation the student's network got is the policy group's: 2 numbers, none privileged
    assert len(SpyExtractor.seen) > 10
    for obs in SpyExtractor.seen:
        assert obs.shape[-1] == 2 and bool((obs.abs() < 100).all())
    assert student.rollout_buffer.observations.shape[-1] == 2
    assert np.abs(student.rollout_buffer.observations).max() < 100

    # the teacher got both groups, the privileged one included, on every step of the rollouts
    assert teacher_seen and all(set(obs) == {"policy", "privileged"} for obs in teacher_seen)
    assert all(bool((obs["privileged"] >= PRIVILEGED_FLOOR).all()) for obs in teacher_seen)
    steps = sum(int(obs["policy"].shape[0]) for obs in teacher_seen)
    if "teacher-distill" in case:  # the teacher acts: one step at a time
        assert teacher.n_calls - calls == steps // 2 == 32
    else:  # once per rollout, over the whole rollout
        assert teacher.n_calls - calls == 2 and steps == 64
        # and what it read is what the environment gave at those steps (the step count, in order)
        for rollout, first_steps in ((-2, [0.0, 1.0, 2.0]), (-1, [6.0, 7.0, 8.0])):  # 10-step episodes
            step_counts = teacher_seen[rollout]["privileged"][:, 0] - PRIVILEGED_FLOOR
            assert step_counts.reshape(2, 16)[:, :3].tolist() == [first_steps, first_steps]
        # the same steps the student saw its part of (the buffer's flat order: env by env, in time)
        observed = np.asarray(student.rollout_buffer.observations).reshape(-1, 2)
        np.testing.assert_array_equal(teacher_seen[-1]["policy"].numpy(), observed)


def test_groups_that_overlap_the_wrong_way_are_refused_naming_the_group():
    env = make_vec_env(PrivilegedToyEnv, n_envs=1, seed=0)
    refusals = {
        "the student would read observation group 'privileged', which is privileged": {
            "student_keys": ["policy", "privileged"]
        },
        "the student would read observation group 'policy', which is privileged": {
            "student_keys": ["policy"],
            "privileged_keys": ["policy"],
        },
        "the environment has no observation group 'camera' (it has policy, privileged)": {
            "student_keys": ["camera"]
        },
        "the environment has no observation group 'lidar'": {
            "student_keys": ["policy"],
            "teacher_keys": ["lidar"],
        },
    }
    for expected, kwargs in refusals.items():
        with pytest.raises(ViewError) as caught:
            split_observations(env, **kwargs)
        assert str(caught.value).startswith(expected) and "\n" not in str(caught.value)
    # a group named otherwise is the student's to read, unless declared privileged
    view = split_observations(env, student_keys=["policy", "privileged"], privileged_keys=[])
    assert isinstance(view.observation_space, spaces.Dict)
    with pytest.raises(ViewError, match="not a Dict of named groups"):
        split_observations(make_vec_env("CartPole-v1", n_envs=1), student_keys=["policy"])


def test_a_teacher_not_given_a_group_it_reads_is_refused_naming_it():
    teacher, _ = spy_teacher()
    env = make_vec_env(PrivilegedToyEnv, n_envs=1, seed=0)
    blind = split_observations(env, student_keys=["policy"], teacher_keys=["policy"])
    with pytest.raises(
        SpaceMismatchError, match="reads observation group 'privileged', which it is not given"
    ):
        PPD("MlpPolicy", blind, teacher=teacher, n_steps=16, batch_size=16, device="cpu")


def test_one_group_is_its_own_space_several_a_dict_and_terminal_observations_are_the_students():
    env = make_vec_env(PrivilegedToyEnv, n_envs=2, seed=0)
    view = split_observations(env, student_keys=["policy"])
    assert view.teacher_observation_space == env.observation_space
    obs = view.reset()
    assert obs.shape == (2, 2)
    assert set(view.teacher_observations()) == {"policy", "privileged"}
    for _ in range(10):
        obs, _, dones, infos = view.step(np.zeros(2, dtype=np.int64))
    assert dones.all() and all(info["terminal_observation"].shape == (2,) for info in infos)
    assert view.acted_on()["privileged"].shape == (2, 3)  # the teacher's part of the last step taken
    env = make_vec_env(PrivilegedToyEnv, n_envs=1)
    both = split_observations(env, ["policy", "privileged"], ["privileged"], privileged_keys=[])
    assert isinstance(both.observation_space, spaces.Dict) and list(both.observation_space.spaces) == [
        "policy",
        "privileged",
    ]
    assert both.teacher_observation_space == spaces.Box(0.0, np.inf, (3,), np.float32)
    both.reset()
    assert both.teacher_observations().shape == (1, 3)


def test_entries_view_takes_the_entries_and_their_bounds():
    space = spaces.Box(np.array([-1, -2, -3, -4], np.float32), np.array([1, 2, 3, 4], np.float32))
    view = ObservationEntries((0, 2), "positions")
    assert view.space(space) == spaces.Box(np.array([-1, -3], np.float32), np.array([1, 3], np.float32))
    np.testing.assert_array_equal(view(np.arange(8.0).reshape(2, 4)), [[0, 2], [4, 6]])
    with pytest.raises(ViewError, match="entry 7 of positions is outside"):
        ObservationEntries((7,), "positions").space(space)


def test_entries_with_change_are_the_entries_then_their_difference_with_the_step_before():
    space = spaces.Box(np.array([-1, -2, -np.inf], np.float32), np.array([1, 2, 3], np.float32))
    view = EntriesWithChange((0, 2), "positions")
    expected = spaces.Box(
        np.array([-1, -np.inf, -2, -np.inf], np.float32), np.array([1, 3, 2, np.inf], np.float32)
    )
    assert view.space(space) == expected
    now, before = (
        np.array([[1.0, 5.0, 2.0], [0.5, 0.0, -1.0]]),
        np.array([[0.25, 9.0, 3.0], [0.5, 1.0, -4.0]]),
    )
    np.testing.assert_array_equal(view(now, before), [[1.0, 2.0, 0.75, -1.0], [0.5, -1.0, 0.0, 3.0]])
    np.testing.assert_array_equal(view(now), [[1.0, 2.0, 0.0, 0.0], [0.5, -1.0, 0.0, 0.0]])
    assert statistics_view(view, None) == (False, None)  # the teacher's statistics say nothing of a change
    with pytest.raises(ViewError, match="entry 3 of positions is outside"):
        EntriesWithChange((3,), "positions").space(space)


@pytest.mark.parametrize(
    "view",
    [
        ObservationSlice(-5, None),
        ObservationEntries((0, 2), "positions"),
        EntriesWithChange((0, 2), "positions"),
        ObservationGroups(("policy",)),
    ],
)
def test_a_recipe_reads_back_each_kind_of_view(view):
    teacher = ObservationGroups(("policy", "privileged")) if isinstance(view, ObservationGroups) else None
    recipe = EnvRecipe("CartPole-v1", student_view=view, teacher_view=teacher)
    again = EnvRecipe.from_dict(recipe.as_dict())
    assert again == recipe and not again.plain
    assert "the student sees" in recipe.describe()


def test_a_student_of_a_view_is_refused_as_a_teacher_but_still_loads(tmp_path):
    """As a teacher it would be given the environment's whole observation: on CartPole the
    positions and their change have as many entries as the state, so no space check would stop
    it. Loading it (to inspect or evaluate it on its own view) still works."""
    from ppdistill import load_teacher
    from ppdistill.envs.masked import positions_change_view

    recipe = EnvRecipe("CartPole-v1", student_view=positions_change_view(EnvRecipe("CartPole-v1")))
    save_student_of_view(recipe, tmp_path / "student.zip")
    teacher = load_teacher(tmp_path / "student.zip", env_id="CartPole-v1")
    assert teacher.env_recipe == recipe
    assert evaluate(teacher, recipe, n_episodes=1, seed=0).n_episodes == 1  # on its own view
    with pytest.raises(
        SpaceMismatchError, match=r"is a student that saw positions \(entries 0, 2\) and their change"
    ):
        PPD("MlpPolicy", make_vec_env("CartPole-v1", n_envs=1, seed=0), teacher=teacher)


def test_a_student_of_one_group_still_teaches_when_given_that_group(tmp_path):
    """Only views of entries are refused as teachers: a student of a group is given that group."""
    from ppdistill import load_teacher
    from ppdistill.envs.memory import CueMemory

    recipe = EnvRecipe("ppdistill/CueMemory-v0", student_view=ObservationGroups(("policy",)))
    env = split_observations(make_vec_env(CueMemory, n_envs=1, seed=0), student_keys=["policy"])
    save_student_of_view(recipe, tmp_path / "student.zip", env)
    teacher = load_teacher(tmp_path / "student.zip")
    assert teacher.env_recipe is not None and teacher.env_recipe.student_view == ObservationGroups(
        ("policy",)
    )
    both = make_vec_env(CueMemory, n_envs=1, seed=0)
    view = split_observations(both, student_keys=["policy"], teacher_keys=["policy"])
    PPD("MlpPolicy", view, teacher=teacher, n_steps=32, batch_size=32).learn(32)
