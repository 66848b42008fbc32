"""What all three algorithms share: spaces, the frozen teacher, once-per-rollout, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize

from ppdistill import PPD, StudentDistill, TeacherDistill, load_teacher
from ppdistill.core.errors import MissingTeacherError, SpaceMismatchError
from ppdistill.teachers.callable import CallableTeacher

from ..conftest import zoo_path
from ..toy import ACTION_SPACES, SMALL, LinearTeacherNet, ToyEnv, mean_kl, recording_logger, toy_teacher

ALGOS = [PPD, StudentDistill, TeacherDistill]


@pytest.mark.parametrize("space_name", list(ACTION_SPACES))
@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_distillation_reduces_kl_on_every_action_space(algo, space_name):
    space = ACTION_SPACES[space_name]
    teacher = toy_teacher(space)
    model = algo("MlpPolicy", ToyEnv(space), teacher=teacher, learning_rate=3e-3, **SMALL)
    before = mean_kl(model, teacher)
    # a Gaussian student's log-std has to travel from 0 to the teacher's -1.2, at most ~lr per Adam step
    model.learn(3072 if space_name == "box" else 1024)
    after = mean_kl(model, teacher)
    assert after < 0.6 * before, (before, after)


@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_dict_observations(algo):
    space = ACTION_SPACES["discrete"]
    teacher = toy_teacher(space, dict_obs=True)
    model = algo(
        "MultiInputPolicy", ToyEnv(space, dict_obs=True), teacher=teacher, learning_rate=3e-3, **SMALL
    )
    before = mean_kl(model, teacher)
    model.learn(1024)
    assert mean_kl(model, teacher) < 0.6 * before


@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_teacher_untouched_and_run_once_per_rollout(algo, cartpole_teacher):
    teacher = load_teacher(zoo_path("ppo/CartPole-v1_1"))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    model = algo("MlpPolicy", "CartPole-v1", teacher=teacher, **SMALL)
    model.learn(64 * 5)
    assert all(th.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert not teacher.training
    n_rollouts = 5
    # student-acting methods run the teacher once per rollout over the whole batch;
    # teacher-distill runs it once per step (it must act), never again in train()
    expected_calls = n_rollouts if algo is not TeacherDistill else n_rollouts * 64
    assert teacher.n_calls == expected_calls
    assert teacher.n_samples == n_rollouts * 64


@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_space_mismatch_is_one_clear_error(algo, cartpole_teacher):
    with pytest.raises(SpaceMismatchError) as info:
        algo("MlpPolicy", "Acrobot-v1", teacher=cartpole_teacher)
    msg = str(info.value)
    assert "Discrete(2)" in msg and "Discrete(3)" in msg and "\n" not in msg


@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_teacher_sees_raw_observations_when_the_student_env_normalizes(algo):
    seen = []
    space = ACTION_SPACES["discrete"]
    net = LinearTeacherNet(4, space)

    def params_fn(obs):
        seen.append(obs.clone())
        return net(obs)

    teacher = CallableTeacher(params_fn, ToyEnv(space).observation_space, space).freeze()
    env = VecNormalize(
        make_vec_env(lambda: ToyEnv(space, obs_offset=100.0), n_envs=2, seed=0), norm_reward=False
    )
    model = algo("MlpPolicy", env, teacher=teacher, **SMALL)
    model.learn(128)
    seen_all = th.cat(seen)
    # raw observations sit around 100; normalized ones would sit around 0
    assert seen_all.mean().item() == pytest.approx(100.0, abs=0.5)
    stored = model.rollout_buffer.observations
    assert abs(float(np.mean(stored))) < 5.0  # while the student itself saw normalized inputs


@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_save_records_teacher_and_load_without_it_refuses_to_learn(algo, tmp_path, cartpole_teacher):
    model = algo("MlpPolicy", "CartPole-v1", teacher=cartpole_teacher, **SMALL)
    model.learn(128)
    model.save(tmp_path / "student")
    loaded = algo.load(tmp_path / "student", env=make_vec_env("CartPole-v1"))
    assert loaded.teacher is None
    assert loaded.teacher_info["path"].endswith("CartPole-v1.zip")
    assert loaded.teacher_info["kind"] == "actor-critic"
    obs = np.zeros((3, 4), dtype=np.float32)
    assert np.array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    with pytest.raises(MissingTeacherError, match=r"CartPole-v1\.zip"):
        loaded.learn(64)
    resumed = algo.load(
        tmp_path / "student", env=make_vec_env("CartPole-v1"), teacher=loaded.teacher_info["path"]
    )
    resumed.learn(128, reset_num_timesteps=False)
    assert resumed.num_timesteps == 256


def test_load_with_a_teacher_path_reads_it_with_the_target_settings_it_was_distilled_with(tmp_path):
    path = zoo_path("sac/Pendulum-v1_1")
    teacher = load_teacher(path, "Pendulum-v1", squashed_target="mode", squashed_std_scale=0.5)
    model = PPD("MlpPolicy", "Pendulum-v1", teacher=teacher, **SMALL)
    model.learn(64)
    model.save(tmp_path / "student")
    resumed = PPD.load(tmp_path / "student", env=make_vec_env("Pendulum-v1"), teacher=path)
    assert resumed.teacher.target == "mode" and resumed.teacher.std_scale == 0.5
    obs = th.as_tensor(np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32))
    th.testing.assert_close(resumed.teacher(obs).params, teacher(obs).params)
    # a Teacher given as it is: its own settings, whatever the student recorded
    plain = PPD.load(tmp_path / "student", env=make_vec_env("Pendulum-v1"), teacher=load_teacher(path))
    assert plain.teacher.target == "moments" and plain.teacher.std_scale == 1.0


@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_learn_without_teacher_and_bad_budget(algo):
    model = algo("MlpPolicy", "CartPole-v1", **SMALL)
    with pytest.raises(MissingTeacherError, match="no teacher"):
        model.learn(64)


@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_distill_diagnostics_are_logged(algo, cartpole_teacher):
    model = algo("MlpPolicy", "CartPole-v1", teacher=cartpole_teacher, **SMALL)
    logger, rec = recording_logger()
    model.set_logger(logger)
    model.learn(64 * 3)
    for key in ("distill/kl", "distill/loss", "distill/agreement"):
        values = rec.values(key)
        assert len(values) >= 2 and all(np.isfinite(values)), key
    assert all(0.0 <= a <= 1.0 for a in rec.values("distill/agreement"))


def test_gsde_student_against_gaussian_teacher():
    teacher = load_teacher(zoo_path("ppo/Pendulum-v1_1"))
    model = PPD("MlpPolicy", "Pendulum-v1", teacher=teacher, use_sde=True, **SMALL)
    model.learn(256)
    assert np.isfinite(model.logger.name_to_value.get("distill/kl", 0.0))


# ---- student_obs_norm="running": the student's own observation statistics --------------------


@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_running_obs_norm_takes_a_rollout_only_after_training_on_it(algo, tmp_path):
    space = ACTION_SPACES["discrete"]
    env = make_vec_env(lambda: ToyEnv(space, obs_offset=100.0), n_envs=2, seed=0)
    model = algo("MlpPolicy", env, teacher=toy_teacher(space), student_obs_norm="running", **SMALL)
    extractor = model.policy.features_extractor
    assert type(extractor).__name__ == "RunningNormalizedFlattenExtractor"
    model.learn(128)  # one rollout of 64 x 2, and the update on it
    first = model.rollout_buffer.observations.reshape(-1, 4).astype(np.float64)
    # collected and trained on with the same (initial) statistics: PPO's ratio starts at 1
    assert th.equal(extractor.mean, th.zeros(4)) and th.equal(extractor.var, th.ones(4))
    model.learn(128, reset_num_timesteps=False)
    # the second rollout and its update used the first rollout's statistics, not its own
    reference = RunningMeanStd(shape=(4,))
    reference.update(first)
    np.testing.assert_allclose(extractor.mean.numpy(), reference.mean, rtol=1e-6)
    np.testing.assert_allclose(extractor.var.numpy(), reference.var, rtol=1e-5)
    # saved with the policy: a loaded student normalizes as the trained one did
    model.save(tmp_path / "student")
    loaded = algo.load(tmp_path / "student", device="cpu")
    assert th.equal(loaded.policy.features_extractor.mean, extractor.mean)
    obs = model.rollout_buffer.observations.reshape(-1, 4)[:5]
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0],
                                  model.predict(obs, deterministic=True)[0])  # fmt: skip
    # trained on after loading: its new (empty) rollout buffer is not merged into the statistics
    loaded.set_env(make_vec_env(lambda: ToyEnv(space, obs_offset=100.0), n_envs=2, seed=1))
    loaded.set_teacher(toy_teacher(space))
    loaded.learn(128)
    assert th.equal(loaded.policy.features_extractor.mean, extractor.mean)
    loaded.learn(128, reset_num_timesteps=False)  # then its own rollouts, around 100
    assert float(loaded.policy.features_extractor.mean.min()) > 99.0


def test_running_obs_norm_needs_a_flat_box_observation_not_normalized_already():
    space = ACTION_SPACES["discrete"]
    with pytest.raises(ValueError, match="student_obs_norm 'running' needs a flat Box observation"):
        PPD("MultiInputPolicy", ToyEnv(space, dict_obs=True), teacher=toy_teacher(space, dict_obs=True),
            student_obs_norm="running", **SMALL)  # fmt: skip
    env = VecNormalize(make_vec_env(lambda: ToyEnv(space), n_envs=2, seed=0))
    with pytest.raises(ValueError, match="would normalize observations twice"):
        PPD("MlpPolicy", env, teacher=toy_teacher(space), student_obs_norm="running", **SMALL)


@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_a_student_of_positions_and_their_change_keeps_its_own_statistics_by_default(algo):
    """The teacher's statistics say nothing of a change: by default the student's are running."""
    from ppdistill.envs.masked import positions_change_view, positions_view
    from ppdistill.envs.recipe import EnvRecipe

    plain = EnvRecipe("CartPole-v1")
    teacher = load_teacher(zoo_path("ppo/CartPole-v1_1"), env_id="CartPole-v1")
    for view, expected in [(positions_change_view(plain), "running"), (positions_view(plain), "teacher")]:
        env = EnvRecipe("CartPole-v1", student_view=view).make(n_envs=2, seed=0)
        model = algo("MlpPolicy", env, teacher=teacher, **SMALL)
        assert model.student_obs_norm == expected
        running = type(model.policy.features_extractor).__name__ == "RunningNormalizedFlattenExtractor"
        assert running is (expected == "running")
        asked = algo("MlpPolicy", env, teacher=teacher, student_obs_norm="none", **SMALL)
        assert type(asked.policy.features_extractor).__name__ == "FlattenExtractor"
        env.close()
