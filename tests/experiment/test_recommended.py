"""``recommended``: Python users get the settings the command line runs with, from one file."""

from __future__ import annotations

import pytest
from stable_baselines3.common.env_util import make_vec_env

from ppdistill import PPD, load_teacher, recommended, recommended_n_envs
from ppdistill.core.schedules import Linear
from ppdistill.experiment.config import (
    METHODS,
    RUNNER_KEYS,
    ConfigError,
    algorithm_class,
    run_hyperparameters,
)

from ..conftest import zoo_path


@pytest.mark.parametrize("method", METHODS)
def test_the_settings_are_the_command_lines_without_the_runners_keys(method):
    cli = run_hyperparameters("CartPole-v1", method)
    assert recommended(method, "CartPole-v1") == {k: v for k, v in cli.items() if k not in RUNNER_KEYS}
    assert recommended_n_envs(method, "CartPole-v1") == cli.get("n_envs", 1)
    assert not RUNNER_KEYS & set(recommended(method))


def test_an_environments_own_entry_is_used():
    assert recommended("ppd", "Pendulum-v1")["n_steps"] == 1024
    assert recommended("ppd", "Pendulum-v1")["n_steps"] != recommended("ppd")["n_steps"]
    assert recommended_n_envs("ppd", "Pendulum-v1") == 4


@pytest.mark.parametrize("method", METHODS)
def test_each_class_takes_its_settings(method, cartpole_teacher):
    env = make_vec_env("CartPole-v1", n_envs=recommended_n_envs(method), seed=0)
    teacher = {} if method == "ppo" else {"teacher": cartpole_teacher}
    model = algorithm_class(method)("MlpPolicy", env, **teacher, **recommended(method), seed=0)
    for key, value in recommended(method).items():
        assert getattr(model, key) == value, key


def test_the_measured_ppd_differs_from_the_class_defaults_and_one_argument_gives_the_papers(cartpole_teacher):
    settings = recommended("ppd")
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    measured = PPD("MlpPolicy", env, teacher=cartpole_teacher, **settings)
    plain = PPD("MlpPolicy", env, teacher=cartpole_teacher)
    assert (measured.distill_lambda, measured.learning_rate, measured.batch_size) == (3.0, 1.0e-3, 64)
    assert (plain.distill_lambda, plain.learning_rate) == (1.0, 3.0e-4)
    paper = PPD("MlpPolicy", env, teacher=cartpole_teacher, **{**settings, "distill_lambda": 1.0})
    assert paper.distill_lambda == 1.0 and paper.learning_rate == 1.0e-3


def test_a_copy_is_returned():
    recommended("ppd")["learning_rate"] = 123.0
    assert recommended("ppd")["learning_rate"] == 1.0e-3


def test_an_unknown_method_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="method must be one of ppd, student-distill"):
        recommended("dagger")


def test_a_falling_learning_rate_comes_as_a_schedule_the_class_takes():
    # distill.yml gives PPD from SAC-like teachers lin_0.001; the class must get a callable,
    # not the config's string (SB3 refuses strings)
    teacher = load_teacher(zoo_path("sac/Pendulum-v1_1"))
    settings = recommended("ppd", teacher=teacher)
    assert settings["learning_rate"] == Linear(1.0e-3, 0.0)
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    model = PPD("MlpPolicy", env, teacher=teacher, **settings, seed=0)
    assert model.lr_schedule(1.0) == pytest.approx(1.0e-3)
    assert model.lr_schedule(0.25) == pytest.approx(2.5e-4)
    # without the teacher, the plain default: a constant
    assert recommended("ppd")["learning_rate"] == 1.0e-3


def test_lin_x_from_any_config_becomes_a_linear_schedule(tmp_path):
    # needs no zoo teacher: the conversion itself, from a config of the user's
    config = tmp_path / "distill.yml"
    config.write_text("default:\n  ppd: {learning_rate: lin_0.002, clip_range: 0.2}\n")
    settings = recommended("ppd", config=config)
    assert settings["learning_rate"] == Linear(0.002, 0.0)
    assert settings["clip_range"] == 0.2
