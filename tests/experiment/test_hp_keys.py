"""Every hyperparameter key a run accepts acts, and every other key is refused with one line.

Algorithm keys (those of PPD's, the baselines' and PPO's constructors) reach the algorithm
unchanged; the runner's own keys each change what the run does; keys that are not
hyperparameters of a run (``timesteps``, ``normalize``) end with exit 2 from the CLI.
"""

from __future__ import annotations

import pytest
import torch as th
from stable_baselines3.common.buffers import RolloutBuffer

from ppdistill.cli.main import main
from ppdistill.core.errors import PPDistillError
from ppdistill.core.schedules import Linear
from ppdistill.experiment import models
from ppdistill.experiment.config import (
    HYPERPARAMETERS,
    METHODS,
    NOT_HYPERPARAMETERS,
    RUNNER_KEYS,
    hyperparameters,
    valid_keys,
)
from ppdistill.experiment.runner import Run
from ppdistill.experiment.spec import RunSpec
from ppdistill.teachers.loading import load_teacher

from ..conftest import zoo_path
from ..helpers import CARTPOLE


def spec(method="ppd", teacher=CARTPOLE, timesteps=256, **hp):
    settings = hyperparameters("CartPole-v1", method)
    settings.update({"n_envs": 1, **hp})
    return RunSpec(
        "CartPole-v1", method, str(zoo_path(teacher)), timesteps, student="8,8", hp=settings,
        eval_freq=10_000, eval_episodes=1, final_episodes=2,
    )  # fmt: skip


ALGORITHM_KEYS = [(m, k) for m in METHODS for k in sorted(valid_keys(m) - RUNNER_KEYS - {"policy_kwargs"})]


def marker_for(key):
    """A value of ``key`` that passes its check (RunSpec checks the known keys' values), the
    very object that must reach the algorithm; any object for a key without a rule."""
    if key == "rollout_buffer_class":
        return type("MarkerBuffer", (RolloutBuffer,), {})
    if key == "rollout_buffer_kwargs":
        return {}
    rule = HYPERPARAMETERS.get(key)
    return object() if rule is None else rule.example


@pytest.mark.parametrize(("method", "key"), ALGORITHM_KEYS, ids=[f"{m}-{k}" for m, k in ALGORITHM_KEYS])
def test_every_algorithm_key_reaches_the_algorithm(monkeypatch, cartpole_teacher, method, key):
    received = {}

    class Spy:
        def __init__(self, policy, env, **kwargs):
            env.close()
            received.update(kwargs)

    monkeypatch.setattr(models, "algorithm_class", lambda _method, _student_policy="feedforward": Spy)
    marker = marker_for(key)
    models.build_model(spec(method, **{key: marker}), cartpole_teacher)
    assert received[key] is marker


@pytest.mark.parametrize("method", METHODS)
def test_policy_kwargs_reach_the_student_with_the_preset(cartpole_teacher, method):
    model = models.build_model(spec(method, policy_kwargs={"ortho_init": False}), cartpole_teacher)
    assert model.policy.ortho_init is False
    assert model.policy_kwargs["net_arch"] == {"pi": [8, 8], "vf": [8, 8]}  # the preset is kept


RECURRENT_CLASSES = {
    "ppd": "RecurrentPPD",
    "student-distill": "RecurrentStudentDistill",
    "teacher-distill": "RecurrentTeacherDistill",
    "ppo": "RecurrentPPO",
}


@pytest.mark.parametrize("method", METHODS)
def test_student_policy_lstm_gives_each_method_its_recurrent_student(cartpole_teacher, method):
    model = models.build_model(spec(method, student_policy="lstm"), cartpole_teacher)
    assert type(model).__name__ == RECURRENT_CLASSES[method]
    # the preset (8, 8): an LSTM of 8 units, then the layers after the first
    assert model.policy.lstm_hidden_state_shape == (1, 1, 8)
    assert model.policy_kwargs["net_arch"] == {"pi": [8], "vf": [8]}
    model = models.build_model(spec(method, student_policy="lstm", policy_kwargs={"lstm_hidden_size": 5}),
                               cartpole_teacher)  # fmt: skip
    assert model.policy.lstm_hidden_state_shape == (1, 1, 5)


def test_lstm_settings_and_a_ppo_hand_over_are_refused_without_or_with_an_lstm_student():
    with pytest.raises(
        PPDistillError, match="lstm_hidden_size is for LSTM students: add --student-policy lstm"
    ):
        spec("ppd", policy_kwargs={"lstm_hidden_size": 8})
    with pytest.raises(PPDistillError, match="then_finetune hands the student to PPO, which has no LSTM"):
        spec("student-distill", student_policy="lstm", then_finetune=128)
    with pytest.raises(PPDistillError, match="student_policy must be one of feedforward, lstm"):
        spec("ppd", student_policy="gru")
    with pytest.raises(PPDistillError, match="unknown hyperparameter 'rollout_buffer_class' for ppd"):
        spec("ppd", student_policy="lstm", rollout_buffer_class=None)  # RecurrentPPO builds its own


def test_privileged_prediction_reaches_a_recurrent_student_and_is_refused_for_others():
    assert "privileged_prediction" in valid_keys("ppd", "lstm")
    assert "privileged_prediction" in valid_keys("teacher-distill", "lstm")
    assert "privileged_prediction" not in valid_keys("ppo", "lstm")  # RecurrentPPO has no teacher
    with pytest.raises(PPDistillError, match="it is for an LSTM student: student_policy lstm"):
        spec("ppd", privileged_prediction=1.0)
    with pytest.raises(PPDistillError, match="privileged_prediction"):
        spec("ppd", student_policy="lstm", privileged_prediction=-1.0)


def test_a_config_file_may_set_privileged_prediction_for_the_lstm_student_the_command_line_asks_for(tmp_path):
    config = tmp_path / "distill.yml"
    config.write_text("default:\n  ppd:\n    privileged_prediction: 0.5\n")
    settings = hyperparameters("CartPole-v1", "ppd", config)
    assert settings["privileged_prediction"] == 0.5
    assert "privileged_prediction" in valid_keys("ppd", "lstm")
    with pytest.raises(PPDistillError, match="it is for an LSTM student"):  # a feedforward run refuses it
        RunSpec("CartPole-v1", "ppd", "t.zip", 256, hp=settings)


def test_n_envs_sets_the_training_environments(cartpole_teacher):
    assert models.build_model(spec(n_envs=3), cartpole_teacher).n_envs == 3


def test_temperature_sets_a_value_based_teachers_softmax():
    run = Run.start(spec("ppd", "dqn/CartPole-v1_1", temperature=0.5), checkpoint_freq=0)
    assert run.teacher.temperature == 0.5


def test_temperature_for_a_teacher_without_q_values_is_refused():
    with pytest.raises(PPDistillError, match="temperature applies to value-based teachers"):
        Run.start(spec("ppd", temperature=0.5), checkpoint_freq=0)


def pendulum_spec(teacher, **hp):
    settings = {**hyperparameters("Pendulum-v1", "ppd"), "n_envs": 1, "n_steps": 64, **hp}
    return RunSpec("Pendulum-v1", "ppd", str(teacher), 256, student="8,8", hp=settings,
                   eval_freq=10_000, eval_episodes=1, final_episodes=2)  # fmt: skip


def test_target_std_sets_a_deterministic_teachers_target_width(tmp_path):
    from ppdistill.experiment.teacher_prep import train_teacher

    td3 = tmp_path / "td3.zip"
    train_teacher("Pendulum-v1", "td3", td3, timesteps=110, overrides={"learning_starts": 100})
    run = Run.start(pendulum_spec(td3, target_std=0.3), checkpoint_freq=0)
    assert run.teacher.target_std == 0.3
    log_std = run.teacher(th.zeros(2, 3)).params[:, 1]
    assert th.allclose(log_std.exp(), th.full((2,), 0.3 * 2.0))  # half of Pendulum's range is 2
    with pytest.raises(PPDistillError, match="target_std applies to deterministic teachers"):
        Run.start(pendulum_spec(zoo_path("sac/Pendulum-v1_1"), target_std=0.3), checkpoint_freq=0)


def test_an_ars_teacher_takes_the_setting_of_its_action_space(tmp_path):
    from sb3_contrib import ARS

    ars = ARS("LinearPolicy", "CartPole-v1", n_delta=2, zero_policy=False, seed=0, device="cpu")
    ars.learn(200)
    ars.save(tmp_path / "ars.zip")
    run = Run.start(spec("ppd", tmp_path / "ars.zip", temperature=0.5), checkpoint_freq=0)
    assert run.teacher.temperature == 0.5  # Discrete actions: softmax(outputs / τ)
    with pytest.raises(PPDistillError, match="target_std applies to deterministic teachers"):
        Run.start(spec("ppd", tmp_path / "ars.zip", target_std=0.3), checkpoint_freq=0)


def test_squashed_target_centres_a_sac_teachers_target():
    run = Run.start(pendulum_spec(zoo_path("sac/Pendulum-v1_1"), squashed_target="mode"), checkpoint_freq=0)
    assert run.teacher.target == "mode"
    with pytest.raises(PPDistillError, match="squashed_target applies to squashed-Gaussian teachers"):
        Run.start(spec("ppd", squashed_target="mode"), checkpoint_freq=0)


def test_squashed_std_scale_narrows_a_sac_teachers_target():
    run = Run.start(pendulum_spec(zoo_path("sac/Pendulum-v1_1"), squashed_std_scale=0.5), checkpoint_freq=0)
    assert run.teacher.std_scale == 0.5
    with pytest.raises(PPDistillError, match="squashed_std_scale applies to squashed-Gaussian teachers"):
        Run.start(spec("ppd", squashed_std_scale=0.5), checkpoint_freq=0)


def test_a_teacher_loaded_with_other_target_settings_than_the_runs_is_refused():
    path = zoo_path("sac/Pendulum-v1_1")
    loaded = load_teacher(path, "Pendulum-v1")  # squashed_std_scale 1, squashed_target moments
    for key, value in (("squashed_std_scale", 0.5), ("squashed_target", "mode")):
        with pytest.raises(PPDistillError, match=f"loaded with {key}=.* but the run's settings say"):
            Run.start(pendulum_spec(path, **{key: value}), teacher=loaded, checkpoint_freq=0)
    run = Run.start(pendulum_spec(path, squashed_std_scale=1.0), teacher=loaded, checkpoint_freq=0)
    assert run.teacher is loaded


def trained_models(run_spec, teacher):
    """The models a run trains (one per phase), from a tiny run."""
    seen = []
    Run.start(run_spec, teacher=teacher, checkpoint_freq=0, on_model=seen.append).execute()
    return seen


def test_lambda_schedule_gives_ppd_its_schedule(cartpole_teacher):
    (model,) = trained_models(spec("ppd", lambda_schedule="linear", distill_lambda=2.0), cartpole_teacher)
    assert model.lambda_schedule == Linear(2.0, 0.0)


def test_then_finetune_critic_warmup_and_finetune_hp_make_the_second_phase(cartpole_teacher):
    finetune_hp = {"learning_rate": 0.0123, "n_envs": 2, "n_steps": 16, "batch_size": 32}
    ft = spec("student-distill", then_finetune=128, critic_warmup=64, finetune_hp=finetune_hp)
    assert ft.total_timesteps == 256 + 128
    seen = []
    result = Run.start(ft, teacher=cartpole_teacher, checkpoint_freq=0, on_model=seen.append).execute()
    distiller, ppo = seen
    assert type(distiller).__name__ == "StudentDistill" and type(ppo).__name__ == "PPO"
    assert ppo.learning_rate == 0.0123 and ppo.n_envs == 2
    assert ppo.num_timesteps == result["env_steps"] == 256 + 128
    assert result["phases"][1]["actor_frozen_until_step"] == 256 + 64  # two rollouts of 2 x 16


@pytest.mark.parametrize("key", sorted(NOT_HYPERPARAMETERS))
def test_keys_that_are_not_hyperparameters_exit_2_with_one_line(tmp_path, capsys, key):
    code = main(
        ["distill", "--teacher", str(zoo_path(CARTPOLE)), "--env", "CartPole-v1", "--timesteps", "64",
         "--out", str(tmp_path / "out"), "--no-progress", "--hp", f"{key}=true"]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"'{key}'" in err[0] and "not a hyperparameter" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("method", METHODS)
def test_normalize_reward_scales_training_rewards_only(cartpole_teacher, method):
    (model,) = trained_models(spec(method, normalize_reward=True, gamma=0.9), cartpole_teacher)
    vecnorm = model.get_vec_normalize_env()
    assert vecnorm is not None and vecnorm.norm_reward and not vecnorm.norm_obs
    assert vecnorm.gamma == 0.9 and vecnorm.ret_rms.count > 200  # it saw the run's rewards
    # CartPole pays 1 per step: normalized, the stored rewards are no longer 1
    assert not (model.rollout_buffer.rewards == 1.0).all()


def test_without_normalize_reward_the_rewards_are_the_environments(cartpole_teacher):
    (model,) = trained_models(spec("ppo"), cartpole_teacher)
    assert model.get_vec_normalize_env() is None and (model.rollout_buffer.rewards == 1.0).all()


def test_rl_zoo_linear_schedules_become_linear_schedules(cartpole_teacher):
    model = models.build_model(spec("ppo", learning_rate="lin_0.001", clip_range="lin_0.2"), cartpole_teacher)
    assert model.learning_rate == Linear(0.001, 0.0) and model.clip_range(0.5) == pytest.approx(0.1)


def test_the_runner_checks_every_target_keyword_of_the_loader():
    from ppdistill.experiment.runner import TARGET_SETTINGS
    from ppdistill.teachers.loading import TARGET_KEYWORDS

    # one list of the loader's target keywords: the runner checks and forwards each of them
    assert set(TARGET_SETTINGS) == set(TARGET_KEYWORDS)
