"""``teacher_kinds`` in a config: settings a teacher kind gets (DQN, SAC, ...) between ``default``
and an env's entry, applied alike by the command line, the harness and ``recommended``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ppdistill import load_teacher, recommended, recommended_teacher_kwargs
from ppdistill.bench.suite import load_suite
from ppdistill.cli.main import main
from ppdistill.experiment import config as config_module
from ppdistill.experiment.config import ConfigError, hyperparameters

from ..conftest import zoo_path
from ..helpers import CARTPOLE

ROOT = Path(__file__).resolve().parents[2]
DQN = ROOT / "teachers" / "kinds" / "dqn-MountainCar-v0.zip"
KINDS_CONFIG = """
default:
  ppd: {gamma: 0.999, learning_rate: 1.0e-3, n_steps: 64}
teacher_kinds:
  q-values: {ppd: {gamma: 0.97, gae_lambda: 0.8}}
Acrobot-v1:
  ppd: {gamma: 0.95}
"""


@pytest.fixture
def kinds_config(tmp_path) -> Path:
    path = tmp_path / "distill.yml"
    path.write_text(KINDS_CONFIG)
    return path


def test_the_kinds_entry_sits_between_default_and_the_envs(kinds_config):
    plain = hyperparameters("MountainCar-v0", "ppd", kinds_config)
    dqn = hyperparameters("MountainCar-v0", "ppd", kinds_config, teacher_kind="q-values")
    other = hyperparameters("MountainCar-v0", "ppd", kinds_config, teacher_kind="sac")
    on_acrobot = hyperparameters("Acrobot-v1", "ppd", kinds_config, teacher_kind="q-values")
    base = {"learning_rate": 1.0e-3, "n_steps": 64}
    assert plain == other == {**base, "gamma": 0.999}
    assert dqn == {**base, "gamma": 0.97, "gae_lambda": 0.8}
    assert on_acrobot == {**base, "gamma": 0.95, "gae_lambda": 0.8}  # the env's entry wins
    assert hyperparameters("MountainCar-v0", "student-distill", kinds_config, teacher_kind="q-values") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("teacher_kinds:\n  dqn: {ppd: {gamma: 0.9}}\n", "'dqn', which is not a teacher kind; kinds are"),
        ("teacher_kinds:\n  sac: {pdd: {gamma: 0.9}}\n", "entry teacher_kinds.sac has a section 'pdd'"),
        ("teacher_kinds: [sac]\n", "teacher_kinds must map teacher kinds"),
        ("teacher_kinds:\n  sac: {ppd: {gamma: 2.0}}\n", "entry teacher_kinds.sac.ppd"),
        ("teacher_kinds:\n  ddpg: {ppd: {gamma: 0.9}}\n", "DDPG teachers are td3's"),
        ("teacher_kinds:\n  sac: {finetune: {gamma: 0.9}}\n", "teacher_kinds.sac has a finetune section"),
    ],
    ids=["unknown-kind", "misspelt-section", "not-a-mapping", "bad-value", "ddpg", "finetune"],
)
def test_a_bad_kinds_entry_is_refused_in_one_line(tmp_path, text, message):
    path = tmp_path / "distill.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        hyperparameters("Hopper-v5", "ppd", path, teacher_kind="sac")
    assert "\n" not in str(caught.value)


def test_a_kind_no_loader_reads_is_refused_when_asked_for(kinds_config):
    with pytest.raises(ConfigError, match="teacher kind 'dqn' is not one of"):
        hyperparameters("MountainCar-v0", "ppd", kinds_config, teacher_kind="dqn")


def test_a_ddpg_teacher_gets_td3s_settings_from_its_path_and_loaded(tmp_path):
    from stable_baselines3 import DDPG

    path = tmp_path / "ddpg.zip"
    DDPG("MlpPolicy", "Pendulum-v1", seed=0).save(path)
    config = tmp_path / "distill.yml"
    config.write_text("teacher_kinds:\n  td3: {ppd: {gamma: 0.9, target_std: 0.3}}\n")
    loaded = load_teacher(path, "Pendulum-v1")
    assert loaded.info["kind"] == "ddpg"  # what `teacher inspect` shows; the config's kind is td3
    assert recommended("ppd", config=config, teacher=path)["gamma"] == 0.9
    assert recommended("ppd", config=config, teacher=loaded)["gamma"] == 0.9
    assert recommended_teacher_kwargs("ppd", config=config, teacher=loaded) == {"target_std": 0.3}
    assert "target_std" not in recommended("ppd", config=config, teacher=loaded)


def test_recommended_gives_a_teachers_kind_its_settings_from_a_path_or_a_loaded_teacher(kinds_config):
    loaded = load_teacher(DQN, "MountainCar-v0")
    by_path = recommended("ppd", config=kinds_config, teacher=DQN)
    assert by_path == recommended("ppd", config=kinds_config, teacher=loaded)
    assert by_path["gamma"] == 0.97
    assert recommended("ppd", config=kinds_config)["gamma"] == 0.999


def test_the_command_line_runs_with_the_teachers_kind_settings(tmp_path, kinds_config):
    out = tmp_path / "out"
    argv = ["distill", "--teacher", str(DQN), "--env", "MountainCar-v0", "--timesteps", "512",
            "--n-envs", "2", "--eval-freq", "512", "--final-episodes", "1",
            "--config", str(kinds_config), "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    hp = yaml.safe_load((out / "config.yml").read_text())["hp"]
    assert (hp["gamma"], hp["gae_lambda"]) == (0.97, 0.8)
    assert json.loads((out / "results.json").read_text())["spec"]["hp"]["gamma"] == 0.97


def test_the_harness_gives_each_entry_its_teachers_kind_settings(tmp_path, monkeypatch, kinds_config):
    shipped = yaml.safe_load(kinds_config.read_text())
    monkeypatch.setattr(config_module, "_shipped_config", lambda: shipped)
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"name: kinds\nseeds: [0]\nstudents: [smaller]\nmethods: [ppd]\nenvs:\n"
        f"  - {{env: MountainCar-v0, teacher: {DQN}, timesteps: 512}}\n"
        f"  - {{env: CartPole-v1, teacher: {zoo_path(CARTPOLE)}, timesteps: 512}}\n"
    )
    gammas = {spec.env_id: spec.hp["gamma"] for _, spec, _ in load_suite(suite).runs()}
    assert gammas == {"MountainCar-v0": 0.97, "CartPole-v1": 0.999}


def test_a_kinds_running_statistics_go_to_students_of_vector_teachers_only(tmp_path):
    config = tmp_path / "distill.yml"
    config.write_text("teacher_kinds:\n  q-values: {ppd: {gamma: 0.97, student_obs_norm: running}}\n")
    vector = hyperparameters("MountainCar-v0", "ppd", config, teacher_kind="q-values")
    image = hyperparameters(
        "MountainCar-v0", "ppd", config, teacher_kind="q-values", vector_observations=False
    )
    assert vector == {"gamma": 0.97, "student_obs_norm": "running"}
    assert image == {"gamma": 0.97}  # the kind's other settings still apply
    config.write_text(config.read_text() + "MountainCar-v0:\n  ppd: {student_obs_norm: running}\n")
    # asked for by the env's own entry (or --hp), it is the user's: kept, and checked by the run
    env_asks = hyperparameters(
        "MountainCar-v0", "ppd", config, teacher_kind="q-values", vector_observations=False
    )
    assert env_asks["student_obs_norm"] == "running"


def test_whether_a_teacher_reads_a_vector_is_read_from_its_zip(tmp_path):
    import gymnasium as gym
    import numpy as np
    from gymnasium import spaces
    from stable_baselines3 import DQN as SB3DQN

    from ppdistill.teachers.loading import has_vector_observations

    class Grid(gym.Env):  # a 3x4 "image"
        observation_space = spaces.Box(0.0, 1.0, (3, 4), np.float32)
        action_space = spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            return np.zeros((3, 4), np.float32), {}

        def step(self, action):
            return np.zeros((3, 4), np.float32), 0.0, True, False, {}

    image = tmp_path / "grid-dqn.zip"
    SB3DQN("MlpPolicy", Grid(), learning_starts=0, buffer_size=10).save(image)
    assert has_vector_observations(DQN)  # gymnasium's record ('_shape')
    assert not has_vector_observations(image)
    assert not has_vector_observations(_as_old_gym(image, tmp_path / "old-gym.zip"))  # its 'shape'
    assert has_vector_observations(tmp_path / "missing.zip")  # cannot tell: the run's checks speak
    assert "student_obs_norm" in recommended("ppd", teacher=DQN)
    assert "student_obs_norm" in recommended("ppd", teacher=load_teacher(DQN, "MountainCar-v0"))
    for method in ("ppd", "student-distill"):
        assert "student_obs_norm" not in recommended(method, teacher=image)
        assert "student_obs_norm" not in recommended(method, teacher=load_teacher(image))


def _as_old_gym(path: Path, out: Path) -> Path:
    """A copy of an SB3 zip whose observation space is recorded as the old gym package did."""
    import zipfile

    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            content = src.read(item)
            if item.filename == "data":
                data = json.loads(content)
                record = data["observation_space"]
                record["shape"] = record.pop("_shape")
                record[":type:"] = "<class 'gym.spaces.box.Box'>"
                content = json.dumps(data).encode()
            dst.writestr(item, content)
    return out


def test_a_kinds_running_statistics_follow_what_the_student_reads():
    from ppdistill.experiment.spec import student_reads_vector

    image = ROOT / "teachers" / "minatar" / "ppo-Breakout-v1.zip"
    assert student_reads_vector(DQN, "MountainCar-v0")
    assert not student_reads_vector(image, "MinAtar/Breakout-v1")
    # a Dict teacher whose student reads one flat group gets them; a student of two groups not
    assert student_reads_vector("any.zip", "ppdistill/CueMemory-v0", "policy")
    assert not student_reads_vector("any.zip", "ppdistill/CueMemory-v0", "policy,privileged")
    assert not student_reads_vector(DQN, "MinAtar/Breakout-v1", "raw")  # the env's own images
    assert student_reads_vector(image, "MinAtar/Breakout-v1", "positions")  # refused later, in its words


def test_the_shipped_value_based_kinds_give_students_their_own_running_statistics():
    # chosen in results/teachers-ablation-norm (MountainCar's velocity at a twentieth of its
    # position's scale); QR-DQN teachers share DQN's settings
    for kind in ("q-values", "quantiles"):
        for method in ("ppd", "student-distill"):
            assert (
                hyperparameters("MountainCar-v0", method, teacher_kind=kind)["student_obs_norm"] == "running"
            )


def test_a_sac_kinds_target_settings_are_load_teacher_keywords_not_the_classs(tmp_path):
    config = tmp_path / "distill.yml"
    config.write_text(
        "teacher_kinds:\n  sac: {ppd: {squashed_target: mode, squashed_std_scale: 0.5, gamma: 0.9}}\n"
    )
    teacher = zoo_path("sac/Pendulum-v1_1")
    kwargs = recommended_teacher_kwargs("ppd", config=config, teacher=teacher)
    assert kwargs == {"squashed_target": "mode", "squashed_std_scale": 0.5}
    assert load_teacher(teacher, "Pendulum-v1", **kwargs).std_scale == 0.5
    settings = recommended("ppd", config=config, teacher=teacher)
    assert settings["gamma"] == 0.9 and not set(kwargs) & set(settings)
