"""Teacher loaders: the zoo's real agents, legacy pickles, normalization, callables and bad files."""

from __future__ import annotations

import base64
import json
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch as th

from ppdistill import evaluate, load_teacher
from ppdistill.core.errors import ModelLoadError, SpaceMismatchError, TeacherLoadError
from ppdistill.teachers.actor_critic import ActorCriticTeacher
from ppdistill.teachers.loading import kind_of_source, load_agent
from ppdistill.teachers.q_values import QValueTeacher
from ppdistill.teachers.sb3_zip import read_vecnormalize

from ..conftest import zoo_path

# (zoo run folder, minimum mean return over 10 deterministic episodes on today's gymnasium env)
# Thresholds sit well below what each agent scores here, well above a random policy. Ten
# episodes, not five: ppo/Pendulum's returns spread widely (sd 439 over these ten, mean -280).
ZOO_TEACHERS = [
    ("ppo/CartPole-v1_1", 475),  # random: ~22
    ("dqn/CartPole-v1_1", 475),
    ("qrdqn/CartPole-v1_1", 475),
    ("ppo/Acrobot-v1_1", -100),  # random: -500
    ("dqn/Acrobot-v1_1", -100),
    ("ppo/LunarLander-v2_1", 180),  # random: ~-180
    ("dqn/LunarLander-v2_1", 60),
    ("ppo/Pendulum-v1_1", -300),  # random: ~-1200
    ("sac/Pendulum-v1_1", -300),
    ("ppo/HalfCheetah-v3_1", 3500),  # random: ~-300
    ("sac/HalfCheetah-v3_1", 8000),
    ("ppo/Hopper-v3_1", 2000),  # random: ~20
]


@pytest.mark.parametrize(("folder", "threshold"), ZOO_TEACHERS, ids=[f for f, _ in ZOO_TEACHERS])
def test_every_zoo_teacher_loads_and_plays_competently(folder, threshold):
    teacher = load_teacher(zoo_path(folder))
    assert teacher.info["env_id"] is not None
    result = evaluate(teacher, teacher.info["env_id"], n_episodes=10, deterministic=True, seed=0)
    assert result.mean >= threshold, f"{folder}: {result}"


def test_legacy_zoo_zips_load_without_the_old_gym_package():
    # a fresh interpreter: other tests (Procgen) may have imported gym into this one
    code = (
        "import sys; from ppdistill import load_teacher; "
        f"t = load_teacher({str(zoo_path('ppo/LunarLander-v2_1'))!r}); "
        "assert 'gym' not in sys.modules, 'gym was imported'; "
        "print(t.info['env_id'], t.action_space)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["LunarLander-v3", "Discrete(4)"]


def test_teacher_is_frozen_and_stays_in_eval_mode(cartpole_teacher):
    teacher = cartpole_teacher
    assert all(not p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training and not teacher.policy.training
    out = teacher(th.zeros(3, 4))
    assert out.params.shape == (3, 2) and not out.params.requires_grad


def test_teacher_sees_observations_through_its_own_vecnormalize():
    folder = zoo_path("ppo/Hopper-v3_1")
    teacher = load_teacher(folder)
    assert isinstance(teacher, ActorCriticTeacher) and teacher.obs_normalizer is not None
    # the same statistics, read independently of the teacher
    normalizer, value_scale = read_vecnormalize(folder / "Hopper-v3" / "vecnormalize.pkl")
    assert value_scale > 1.0  # the zoo normalized Hopper's rewards
    obs = th.randn(7, 11, dtype=th.float32) * 3
    manual = th.clamp((obs - normalizer.mean) / normalizer.std, -10, 10)
    dist = teacher.policy.get_distribution(manual)
    assert th.allclose(teacher(obs).params[:, :3], dist.distribution.mean, atol=1e-6)
    # values come back in reward units: the critic's output times sqrt(var(returns) + eps)
    want_values = teacher.policy.predict_values(manual).flatten() * value_scale
    assert th.allclose(teacher(obs, with_values=True).values, want_values, rtol=1e-5)


def test_q_value_teacher_is_softmax_of_q_over_temperature():
    folder = zoo_path("dqn/CartPole-v1_1")
    teacher = load_teacher(folder, temperature=2.0)
    assert isinstance(teacher, QValueTeacher)
    obs = th.randn(5, 4)
    q = teacher.module.q_net(obs)
    out = teacher(obs, with_values=True)
    assert th.allclose(out.params, q / 2.0)
    assert th.allclose(out.values, (th.softmax(q / 2.0, -1) * q).sum(-1))
    assert teacher.info["temperature"] == 2.0


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("inf"), float("nan")])
def test_q_value_teacher_refuses_a_temperature_that_is_not_finite_and_positive(temperature):
    # τ = inf would make every teacher uniform whatever its Q-values, without a word
    with pytest.raises(TeacherLoadError, match="temperature must be a finite number > 0"):
        load_teacher(zoo_path("dqn/CartPole-v1_1"), temperature=temperature)


def test_sac_teacher_acts_through_tanh_within_bounds():
    teacher = load_teacher(zoo_path("sac/Pendulum-v1_1"))
    actions, _ = teacher.predict(np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32))
    assert actions.shape == (64, 1) and np.all(np.abs(actions) <= 2.0)


def test_sac_target_is_the_moment_matched_gaussian_of_its_squashed_actions():
    teacher = load_teacher(zoo_path("sac/HalfCheetah-v3_1"))
    obs = th.as_tensor(np.random.default_rng(1).normal(size=(8, 17)), dtype=th.float32)
    target = teacher(obs).params
    mean, std = teacher.pre_tanh(obs)
    # Monte Carlo over the real squashed distribution (bounds are [-1, 1])
    g = th.Generator().manual_seed(0)
    samples = th.tanh(mean + std * th.randn((200_000, *mean.shape), generator=g))
    # quadrature error (measured against 10^6 samples: 1e-3 on the mean, 3e-3 on the std)
    assert th.allclose(target[:, :6], samples.mean(0), atol=6e-3)
    assert th.allclose(target[:, 6:].exp(), samples.std(0), atol=1e-2)


def test_sac_target_mode_is_centred_on_its_deterministic_action_with_the_moments_std():
    obs = np.random.default_rng(2).normal(size=(32, 17)).astype(np.float32)
    moments = load_teacher(zoo_path("sac/HalfCheetah-v3_1"))
    mode = load_teacher(zoo_path("sac/HalfCheetah-v3_1"), squashed_target="mode")
    assert mode.info["squashed_target"] == "mode" and moments.info["squashed_target"] == "moments"
    target, moment_target = mode(th.as_tensor(obs)).params, moments(th.as_tensor(obs)).params
    actions, _ = mode.predict(obs, deterministic=True)  # unscale(tanh(μ)), as SAC acts
    np.testing.assert_allclose(target[:, :6].numpy(), actions, atol=1e-6)
    th.testing.assert_close(target[:, 6:], moment_target[:, 6:])
    # where σ is wide the two centres differ: the mean of tanh is pulled towards 0
    assert (target[:, :6].abs() >= moment_target[:, :6].abs() - 1e-6).all()
    assert (target[:, :6] - moment_target[:, :6]).abs().max() > 0.01
    with pytest.raises(TeacherLoadError, match="squashed_target must be one of moments, mode"):
        load_teacher(zoo_path("sac/HalfCheetah-v3_1"), squashed_target="median")


def test_squashed_std_scale_multiplies_the_targets_std_and_nothing_else():
    obs = th.as_tensor(np.random.default_rng(4).normal(size=(32, 17)).astype(np.float32))
    plain = load_teacher(zoo_path("sac/HalfCheetah-v3_1"), squashed_target="mode")
    narrow = load_teacher(zoo_path("sac/HalfCheetah-v3_1"), squashed_target="mode", squashed_std_scale=0.25)
    assert plain.info["squashed_std_scale"] == 1.0 and narrow.info["squashed_std_scale"] == 0.25
    from ppdistill.teachers.describe import describe_teacher  # what `teacher inspect` prints

    assert describe_teacher(narrow)["squashed_std_scale"] == 0.25
    wide, thin = plain(obs).params, narrow(obs).params
    th.testing.assert_close(thin[:, :6], wide[:, :6])  # the same centre
    th.testing.assert_close(thin[:, 6:].exp(), 0.25 * wide[:, 6:].exp())
    # the teacher still acts through its own distribution: only the target is narrowed
    act = {"deterministic": True}
    np.testing.assert_allclose(narrow.predict(obs.numpy(), **act)[0], plain.predict(obs.numpy(), **act)[0])
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(TeacherLoadError, match="squashed_std_scale must be a finite number > 0"):
            load_teacher(zoo_path("sac/HalfCheetah-v3_1"), squashed_std_scale=bad)


def test_sac_target_mode_is_in_the_environments_units():
    # Pendulum's torque is in [-2, 2]: a centre in the policy's [-1, 1] would be half of it
    teacher = load_teacher(zoo_path("sac/Pendulum-v1_1"), squashed_target="mode")
    obs = np.random.default_rng(3).normal(size=(64, 3)).astype(np.float32)
    actions, _ = teacher.predict(obs, deterministic=True)
    assert np.abs(actions).max() > 1.0  # the zoo's agent uses the whole range
    np.testing.assert_allclose(teacher(th.as_tensor(obs)).params[:, :1].numpy(), actions, atol=1e-5)


def test_td3_teacher_target_is_a_narrow_gaussian_around_its_action(tmp_path):
    from stable_baselines3 import TD3

    model = TD3("MlpPolicy", "Pendulum-v1", learning_starts=50, seed=0).learn(100)
    model.save(tmp_path / "td3")
    teacher = load_teacher(tmp_path / "td3.zip", env_id="Pendulum-v1", target_std=0.2)
    obs = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    params = teacher(th.as_tensor(obs)).params
    want, _ = model.predict(obs, deterministic=True)
    assert np.allclose(params[:, :1].numpy(), want, atol=1e-5)
    assert th.allclose(params[:, 1:].exp(), th.full((16, 1), 0.2 * 2.0))  # 0.2 x half of [-2, 2]
    actions, _ = teacher.predict(obs, deterministic=True)
    assert np.allclose(actions, want, atol=1e-5)


def test_callable_teacher_from_a_function():
    def params_fn(obs):
        return th.stack([obs[:, 0], -obs[:, 0]], dim=1)

    teacher = load_teacher(params_fn, env_id="CartPole-v1")
    obs = np.array([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]], dtype=np.float32)
    actions, _ = teacher.predict(obs, deterministic=True)
    assert list(actions) == [0, 1]
    single, _ = teacher.predict(obs[1], deterministic=True)
    assert int(single) == 1


def test_callable_with_wrong_width_is_a_clear_error():
    teacher = load_teacher(lambda obs: th.zeros(obs.shape[0], 3), env_id="CartPole-v1")
    with pytest.raises(TeacherLoadError, match="needs 2"):
        teacher(th.zeros(1, 4))


def test_missing_file(tmp_path):
    with pytest.raises(TeacherLoadError, match="does not exist"):
        load_teacher(tmp_path / "nope.zip")


def test_not_a_zip(tmp_path):
    bad = tmp_path / "model.zip"
    bad.write_bytes(b"definitely not a zip")
    with pytest.raises(TeacherLoadError, match="not a readable zip"):
        load_teacher(bad)


def test_zip_that_is_not_an_sb3_model(tmp_path):
    bad = tmp_path / "model.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(TeacherLoadError, match="not a stable-baselines3 model"):
        load_teacher(bad)


def test_teacher_for_another_environment_is_a_space_mismatch():
    with pytest.raises(SpaceMismatchError, match="spaces differ"):
        load_teacher(zoo_path("ppo/CartPole-v1_1"), env_id="Acrobot-v1")


def test_foreign_pickle_inside_a_model_is_refused(tmp_path):
    src = zoo_path("ppo/CartPole-v1_1") / "CartPole-v1.zip"
    dst = tmp_path / "evil.zip"

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "data":
                d = json.loads(data)
                d["policy_class"] = {":serialized:": base64.b64encode(pickle.dumps(Evil())).decode()}
                data = json.dumps(d).encode()
            zout.writestr(item, data)
    with pytest.raises(TeacherLoadError, match="allow-list"):
        load_teacher(dst, env_id="CartPole-v1")


def test_vecnormalize_of_another_shape_is_refused():
    with pytest.raises(TeacherLoadError, match="normalizes observations of shape"):
        load_teacher(
            zoo_path("ppo/Acrobot-v1_1"),
            vecnormalize=zoo_path("ppo/Hopper-v3_1") / "Hopper-v3" / "vecnormalize.pkl",
        )


MINATAR = Path(__file__).resolve().parents[2] / "teachers" / "minatar"
# (game, minimum mean deterministic return over 5 episodes; random policies score 0.4 and 5.2)
MINATAR_TEACHERS = [("Breakout", 10.0), ("SpaceInvaders", 15.0)]


@pytest.mark.parametrize(("game", "threshold"), MINATAR_TEACHERS, ids=[g for g, _ in MINATAR_TEACHERS])
def test_our_minatar_teachers_load_and_play_well(game, threshold):
    """The CPU suite's image teachers (trained with `ppdistill teacher train`, see their README)."""
    pytest.importorskip("minatar")
    path = MINATAR / f"ppo-{game}-v1.zip"
    if not path.exists():
        pytest.fail(f"{path} is missing: train it with the command in teachers/minatar/README.md")
    teacher = load_teacher(path)
    assert teacher.info["env_id"] == f"MinAtar/{game}-v1"
    result = evaluate(teacher, f"MinAtar/{game}-v1", n_episodes=5, seed=0)
    assert result.mean >= threshold, result


def test_a_model_loaded_as_a_student_is_named_so_and_a_teacher_error_is_a_teacher_load_error(tmp_path):
    bad = tmp_path / "student.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError, match="not a readable zip") as as_student:
        load_agent(bad, role="student")
    assert not isinstance(as_student.value, TeacherLoadError)
    with pytest.raises(TeacherLoadError, match="not a readable zip"):  # what callers of load_teacher catch
        load_teacher(bad)
    dqn = zoo_path("dqn/CartPole-v1_1")
    with pytest.raises(SpaceMismatchError, match="student"):
        load_agent(dqn, env_id="Acrobot-v1", role="student")


def test_a_students_recorded_environment_is_read_not_built_without_env_id(tmp_path):
    """Its spaces come from the zip, so it loads where its environment is not installed (a
    deployment machine); what it sees is kept in its info."""
    from stable_baselines3 import PPO

    from ppdistill.envs.recipe import EnvRecipe
    from ppdistill.envs.views import ObservationEntries

    model = PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32, seed=0)
    recorded = EnvRecipe("no_such_robot_package:CartPole-v1", student_view=ObservationEntries((0, 1, 2, 3)))
    model.env_recipe = recorded.as_dict()  # type: ignore[attr-defined]
    model.save(tmp_path / "student.zip")
    agent = load_agent(tmp_path / "student.zip", role="student")
    assert agent.env_recipe == recorded and agent.observation_space.shape == (4,)


# ---- whose vecnormalize.pkl: a model takes only statistics saved with it ---------------------


def pendulum_statistics(path: Path) -> Path:
    """VecNormalize statistics of Pendulum-v1 far from the identity (mean and scale of 200 steps)."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    venv = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=0))
    venv.reset()
    for _ in range(100):
        venv.step(np.stack([venv.action_space.sample() for _ in range(2)]))
    path.parent.mkdir(parents=True, exist_ok=True)
    venv.save(str(path))
    return path


def test_a_student_saved_in_its_teachers_folder_is_not_normalized_twice(tmp_path, saved_students):
    """Issue 14, item 2: `--out` inside a zoo teacher's folder put the student beside the
    teacher's vecnormalize.pkl, which was then applied on top of the student's own."""
    clean = tmp_path / "clean" / "student.zip"
    clean.parent.mkdir()
    clean.write_bytes(saved_students("Hopper-v5").read_bytes())
    beside = tmp_path / "Hopper-v3"  # as `--out <zoo>/ppo/Hopper-v3_1/Hopper-v3` leaves it
    shutil.copytree(zoo_path("ppo/Hopper-v3_1") / "Hopper-v3", beside)
    shutil.copy(clean, beside / "student.zip")
    assert (beside / "vecnormalize.pkl").is_file()

    student = load_agent(beside / "student.zip", env_id="Hopper-v5", role="student")
    reference = load_agent(clean, env_id="Hopper-v5", role="student")
    assert student.info["vecnormalize"] is None and student.obs_normalizer is None
    obs = th.randn(64, 11, dtype=th.float32) * 3
    assert th.equal(student(obs).params, reference(obs).params)
    returns = [evaluate(agent, "Hopper-v5", n_episodes=2, seed=0).returns for agent in (student, reference)]
    np.testing.assert_array_equal(*returns)
    # what the folder's statistics would have done to it
    doubled = load_agent(beside / "student.zip", env_id="Hopper-v5", vecnormalize=beside / "vecnormalize.pkl")
    assert not th.allclose(doubled(obs).params, reference(obs).params)


@pytest.mark.parametrize(
    ("place", "student_takes_it"),
    [("vecnormalize.pkl", False), ("{stem}.vecnormalize.pkl", False), ("{stem}/vecnormalize.pkl", True)],
    ids=["beside", "named-beside", "rl-zoo-run-folder"],
)
def test_which_found_statistics_a_model_takes(tmp_path, saved_students, place, student_takes_it):
    """A ppdistill student takes only its rl-zoo run's own statistics (a student trained in the
    zoo with `normalize: true`); a plain SB3 zip takes all three places, as before."""
    from stable_baselines3 import PPO

    plain = tmp_path / "plain"
    plain.mkdir()
    PPO("MlpPolicy", "Pendulum-v1", seed=0, device="cpu").save(plain / "model.zip")
    student = tmp_path / "student"
    student.mkdir()
    (student / "model.zip").write_bytes(saved_students("Pendulum-v1").read_bytes())
    for folder in (plain, student):
        stats = pendulum_statistics(folder / place.format(stem="model"))
        assert stats.is_file()
    taken = load_agent(student / "model.zip", env_id="Pendulum-v1", role="student")
    assert (taken.info["vecnormalize"] is not None) is student_takes_it
    assert (taken.obs_normalizer is not None) is student_takes_it
    plain_taken = load_agent(plain / "model.zip", env_id="Pendulum-v1")
    assert plain_taken.info["vecnormalize"] == str((plain / place.format(stem="model")).resolve())
    # named explicitly, it is always used
    explicit = load_agent(student / "model.zip", env_id="Pendulum-v1", vecnormalize=stats)
    assert explicit.info["vecnormalize"] == str(stats.resolve()) and explicit.obs_normalizer is not None


def test_a_network_that_normalizes_its_inputs_takes_no_statistics_found_beside_it(tmp_path):
    """A PPO given the teacher's statistics inside its network (as `--method ppo` builds it)."""
    from stable_baselines3 import PPO

    from ppdistill.networks.normalization import with_normalization

    teacher = load_teacher(zoo_path("ppo/Hopper-v3_1"))
    kwargs = with_normalization({}, teacher.obs_normalizer, teacher.observation_space)
    assert kwargs  # the statistics went into the network
    PPO("MlpPolicy", "Hopper-v5", policy_kwargs=kwargs, seed=0, device="cpu").save(tmp_path / "m.zip")
    shutil.copy(zoo_path("ppo/Hopper-v3_1") / "Hopper-v3" / "vecnormalize.pkl", tmp_path / "vecnormalize.pkl")
    model = load_agent(tmp_path / "m.zip", env_id="Hopper-v5")
    assert model.info["vecnormalize"] is None and model.obs_normalizer is None


KINDS = Path(__file__).resolve().parents[2] / "teachers" / "kinds"


def test_a_sources_kind_is_read_from_its_zip_without_loading_it():
    assert kind_of_source(KINDS / "dqn-MountainCar-v0.zip") == "q-values"
    assert kind_of_source(str(KINDS / "qrdqn-MountainCar-v0.zip")) == "quantiles"
    assert kind_of_source(zoo_path("ppo/CartPole-v1_1")) == "actor-critic"
    assert kind_of_source(KINDS / "no-such-teacher.zip") is None  # loading it says why
    assert kind_of_source(lambda obs: obs) is None
