"""Velocity-masked views: the student sees the positions of the state, the teacher all of it."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from ppdistill.core.errors import PPDistillError
from ppdistill.envs.masked import POSITIONS, positions_change_view, positions_view
from ppdistill.envs.recipe import EnvRecipe, WrapperSpec
from ppdistill.envs.views import find_student_view


def masked_recipe(env_id: str, **kwargs) -> EnvRecipe:
    recipe = EnvRecipe(env_id, **kwargs)
    return EnvRecipe(env_id, student_view=positions_view(recipe), **kwargs)


@pytest.mark.parametrize(
    ("env_id", "kept", "dropped"),
    [
        ("CartPole-v1", [0, 2], [1, 3]),  # x, θ kept; ẋ, θ̇ dropped
        ("LunarLander-v3", [0, 1, 4, 6, 7], [2, 3, 5]),  # x, y, angle, legs; vx, vy, ω dropped
        ("Hopper-v5", [0, 1, 2, 3, 4], list(range(5, 11))),  # qpos[1:]; qvel dropped
    ],
)
def test_the_student_sees_the_positions_and_the_teacher_the_whole_state(env_id, kept, dropped):
    recipe = masked_recipe(env_id)
    env = recipe.make(n_envs=2, seed=3)
    view = find_student_view(env)
    assert view is not None
    assert env.observation_space.shape == (len(kept),)
    obs = env.reset()
    for _ in range(5):  # the student's observation is exactly the positions of the teacher's
        whole = view.teacher_observations()
        assert whole.shape == (2, POSITIONS[env_id].size)
        np.testing.assert_array_equal(obs, whole[:, kept])
        obs, *_ = env.step(np.stack([env.action_space.sample() for _ in range(2)]))
    # and the velocities are what changes between steps: none of them reaches the student
    assert set(kept).isdisjoint(dropped) and sorted(kept + dropped) == list(range(POSITIONS[env_id].size))
    env.close()


def test_the_change_is_since_the_step_before_and_zero_where_an_episode_starts():
    """CartPole with random actions ends episodes within a few dozen steps: copies reset while
    others go on, and each finished episode's terminal observation carries its own last change."""
    recipe = EnvRecipe("CartPole-v1", student_view=positions_change_view(EnvRecipe("CartPole-v1")))
    env = recipe.make(n_envs=3, seed=5)
    view = find_student_view(env)
    assert view is not None and env.observation_space.shape == (4,)
    assert "and their change since the step before" in recipe.describe()
    obs = env.reset()
    before = view.teacher_observations()
    np.testing.assert_array_equal(obs, np.concatenate([before[:, [0, 2]], np.zeros((3, 2))], axis=1))
    ends = 0
    for _ in range(80):
        obs, _, dones, infos = env.step(np.array([env.action_space.sample() for _ in range(3)]))
        now = view.teacher_observations()
        np.testing.assert_array_equal(obs[:, :2], now[:, [0, 2]])
        for i in range(3):
            if dones[i]:  # the next episode's first step: no step before it
                ends += 1
                np.testing.assert_array_equal(obs[i, 2:], [0.0, 0.0])
                terminal = infos[i]["terminal_observation"]
                np.testing.assert_allclose(terminal[2:], terminal[:2] - before[i, [0, 2]], rtol=1e-6)
            else:
                np.testing.assert_allclose(obs[i, 2:], now[i, [0, 2]] - before[i, [0, 2]], rtol=1e-6)
                assert np.abs(obs[i, 2:]).sum() > 0
        before = now
    assert ends >= 3
    env.close()


def test_positions_of_the_mujoco_state_are_its_qpos():
    env = masked_recipe("Hopper-v5").make(n_envs=1, seed=0)
    obs = env.reset()
    data = env.envs[0].unwrapped.data  # type: ignore[attr-defined]
    np.testing.assert_allclose(obs[0], data.qpos[1:], rtol=1e-6)
    env.close()


def test_a_time_feature_stays_where_it_is_and_the_bounds_follow_the_entries():
    wrapper = WrapperSpec("sb3_contrib.common.wrappers.TimeFeatureWrapper")
    recipe = masked_recipe("Pendulum-v1", wrappers=(wrapper,))
    env = recipe.make(n_envs=1, seed=0)
    view = find_student_view(env)
    assert view is not None and view.teacher_observation_space.shape == (4,)  # cos, sin, θ̇, time
    assert env.observation_space == spaces.Box(-1.0, 1.0, (2,), np.float32)
    obs = env.reset()
    np.testing.assert_array_equal(obs, view.teacher_observations()[:, :2])
    env.close()


def test_environments_and_layouts_it_does_not_know_are_refused_in_one_line():
    with pytest.raises(
        PPDistillError, match=r"^--student-obs positions: ppdistill does not know .*MountainCar-v0"
    ):
        positions_view(EnvRecipe("MountainCar-v0"))
    with pytest.raises(PPDistillError, match="changes the observation's layout \\(frame_stack 4\\)"):
        positions_view(EnvRecipe("CartPole-v1", frame_stack=4))
    with pytest.raises(PPDistillError, match="not the 11 entries"):
        positions_view(
            EnvRecipe("Hopper-v5", env_kwargs={"exclude_current_positions_from_observation": False})
        )
    with pytest.raises(PPDistillError, match=r"^--student-obs positions-change: ppdistill does not know"):
        positions_change_view(EnvRecipe("MountainCar-v0"))
