"""The env factory: every family builds and steps, and a distillation runs on each."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import PPO

from ppdistill import PPD, StudentDistill, TeacherDistill, evaluate, load_teacher
from ppdistill.core.errors import MissingExtraError
from ppdistill.envs.ids import env_family
from ppdistill.envs.make import env_spaces, make_vec_env
from ppdistill.networks.presets import STUDENT_SIZES, image_student_kwargs

FAMILIES = {
    "atari": "PongNoFrameskip-v4",
    "minatar": "MinAtar/Breakout-v1",
    "procgen": "procgen/coinrun",
    "mujoco": "Hopper-v5",
    "other": "CartPole-v1",
}
# what a policy sees
POLICY_SHAPES = {
    "atari": (4, 84, 84),
    "minatar": (4, 10, 10),
    "procgen": (3, 64, 64),
    "mujoco": (11,),
    "other": (4,),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_builds_and_steps(family):
    env_id = FAMILIES[family]
    assert env_family(env_id) == family
    obs_space, act_space = env_spaces(env_id)
    assert obs_space.shape == POLICY_SHAPES[family]
    env = make_vec_env(env_id, n_envs=2, seed=0)
    obs = env.reset()
    assert obs.shape[0] == 2
    for _ in range(5):
        obs, rewards, _dones, infos = env.step(np.array([act_space.sample() for _ in range(2)]))
    assert np.all(np.isfinite(rewards)) and len(infos) == 2
    env.close()


def test_atari_training_episodes_end_on_life_loss_evaluation_ones_do_not():
    from stable_baselines3.common.atari_wrappers import EpisodicLifeEnv

    train = make_vec_env("BreakoutNoFrameskip-v4", n_envs=1, seed=0, training=True)
    evaluation = make_vec_env("BreakoutNoFrameskip-v4", n_envs=1, seed=0, training=False)
    assert train.env_is_wrapped(EpisodicLifeEnv)[0]
    assert not evaluation.env_is_wrapped(EpisodicLifeEnv)[0]


def test_procgen_training_and_test_levels():
    train = make_vec_env("procgen/coinrun", n_envs=1, training=True)
    test = make_vec_env("procgen/coinrun", n_envs=1, training=False)
    assert train.num_levels == 200 and test.num_levels == 0


def test_procgen_reports_episodes():
    env = make_vec_env("procgen/coinrun", n_envs=4, seed=0)
    env.reset()
    episodes = []
    for _ in range(1100):  # coinrun ends a game after 1000 steps at the latest
        _, _, _dones, infos = env.step(np.random.default_rng(0).integers(0, 15, size=4))
        episodes += [i["episode"] for i in infos if "episode" in i]
    assert episodes and all(e["l"] > 0 for e in episodes)


@pytest.mark.parametrize("shape", [(4, 84, 84), (3, 64, 64), (4, 10, 10), (7, 10, 10)])
def test_image_presets_build_on_every_input_size(shape):
    import torch as th
    from gymnasium import spaces

    space = spaces.Box(0, 255, shape, np.uint8)
    counts = []
    for size in STUDENT_SIZES:
        kwargs = image_student_kwargs(size)
        net = kwargs["features_extractor_class"](space, **kwargs["features_extractor_kwargs"])
        out = net(th.zeros(2, *shape))
        assert out.shape == (2, kwargs["features_extractor_kwargs"]["features_dim"])
        counts.append(sum(p.numel() for p in net.parameters()))
    assert counts[0] < counts[1] < counts[2]


def test_image_presets_match_the_papers_parameter_counts():
    from gymnasium import spaces

    def count(size, shape):
        kwargs = image_student_kwargs(size)
        net = kwargs["features_extractor_class"](
            spaces.Box(0, 255, shape, np.uint8), **kwargs["features_extractor_kwargs"]
        )
        return sum(p.numel() for p in net.parameters())

    # the paper: IMPALA same 1.1M (Atari), 626k (Procgen); larger 8.3M, 4.6M
    assert count("same", (4, 84, 84)) == pytest.approx(1.1e6, rel=0.03)
    assert count("larger", (4, 84, 84)) == pytest.approx(8.3e6, rel=0.03)
    assert count("same", (3, 64, 64)) == pytest.approx(626e3, rel=0.03)
    assert count("larger", (3, 64, 64)) == pytest.approx(4.6e6, rel=0.03)
    assert count("smaller", (4, 84, 84)) / count("same", (4, 84, 84)) == pytest.approx(0.25, abs=0.05)


@pytest.fixture(scope="module")
def untrained_teachers(tmp_path_factory):
    """An untrained IMPALA PPO teacher per image family, saved as an SB3 zip (tests the plumbing)."""
    folder = tmp_path_factory.mktemp("teachers")
    paths = {}
    for family in ("atari", "minatar", "procgen"):
        env_id = FAMILIES[family]
        model = PPO(
            "CnnPolicy", make_vec_env(env_id, n_envs=1, seed=0), policy_kwargs=image_student_kwargs("same")
        )
        path = folder / f"{family}.zip"
        model.save(path)
        paths[family] = path
    return paths


@pytest.mark.slow
@pytest.mark.parametrize("family", ["atari", "minatar", "procgen"])
@pytest.mark.parametrize("algo", [PPD, StudentDistill, TeacherDistill], ids=lambda a: a.__name__)
def test_smoke_distillation_on_image_families(family, algo, untrained_teachers):
    env_id = FAMILIES[family]
    teacher = load_teacher(untrained_teachers[family], env_id=env_id)
    kwargs = image_student_kwargs("smaller")
    env = make_vec_env(env_id, n_envs=2, seed=0)
    model = algo(
        "CnnPolicy", env, teacher=teacher, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs=kwargs, seed=0
    )
    model.learn(128)
    assert model.num_timesteps >= 128 and teacher.n_samples >= 128
    result = evaluate(model, env_id, n_episodes=1, deterministic=family != "procgen", seed=0)
    assert np.isfinite(result.mean)


def test_smoke_distillation_on_mujoco():
    from ..conftest import zoo_path

    teacher = load_teacher(zoo_path("ppo/Hopper-v3_1"))
    model = PPD(
        "MlpPolicy", make_vec_env("Hopper-v5", n_envs=2, seed=0), teacher=teacher, n_steps=64, batch_size=64
    )
    model.learn(256)
    assert model.num_timesteps >= 256


def test_missing_procgen_names_the_install_step(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "procgen", None)  # makes `import procgen` fail
    with pytest.raises(MissingExtraError, match="make install-procgen"):
        make_vec_env("procgen/coinrun", n_envs=1)


def test_missing_ale_names_the_atari_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ale_py", None)
    with pytest.raises(MissingExtraError, match=r"\[atari\]"):
        make_vec_env("PongNoFrameskip-v4", n_envs=1)


@pytest.mark.parametrize("env_id", ["PongNoFrameskip-v4", "HalfCheetah-v5"])
def test_envpool_backend_matches_the_gymnasium_spaces(env_id):
    pytest.importorskip("envpool")
    pool = make_vec_env(env_id, n_envs=2, seed=0, backend="envpool")
    obs_space, act_space = env_spaces(env_id)
    assert pool.observation_space.shape == obs_space.shape
    assert pool.action_space.shape == act_space.shape
    obs = pool.reset()
    for _ in range(3):
        obs, _rewards, _dones, _infos = pool.step(np.array([act_space.sample() for _ in range(2)]))
    assert obs.shape == (2, *obs_space.shape)
    pool.close()


def test_mujoco_warnings_go_to_a_logger_not_to_a_file_in_the_working_folder(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    caplog.set_level("DEBUG", logger="ppdistill.mujoco")
    from ppdistill.envs import make_vec_env

    for env_id in ("Ant-v5", "HalfCheetah-v5"):  # Ant's model has a deprecated attribute
        make_vec_env(env_id, n_envs=1, seed=0).close()
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
    assert any("MuJoCo:" in record.getMessage() for record in caplog.records)
