"""ONNX export: ONNX Runtime reproduces PyTorch on >= 1000 observations, normalization folded in."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from ppdistill import PPD, evaluate, load_teacher
from ppdistill.core.errors import MissingExtraError
from ppdistill.deploy.export import PARITY_TOLERANCE, ExportError, export_onnx, onnx_outputs
from ppdistill.envs.make import make_env

from ..conftest import zoo_path
from ..helpers import save_student_of_view
from ..toy import ACTION_SPACES, ToyEnv

pytest.importorskip("onnxruntime", reason="needs the [onnx] extra")

N_SAMPLED = 1000


def env_observations(model, env_id: str, n: int) -> np.ndarray:
    """Observations the student meets when it plays (about ``n``)."""
    seen = evaluate(model, env_id, n_episodes=2, seed=1, record_observations=True).observations
    return seen[:n]


def sampled_observations(space: spaces.Box, n: int, scale: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, *space.shape)) * scale).astype(space.dtype)


def assert_parity(reference_model, onnx_path, observations, normalize=None):
    """The exported model against SB3's own predict and distribution (not the export's code)."""
    exported = onnx_outputs(onnx_path, observations)
    obs_in = normalize(observations) if normalize is not None else observations
    actions, _ = reference_model.predict(obs_in, deterministic=True)
    obs_t, _ = reference_model.policy.obs_to_tensor(obs_in)
    dist = reference_model.policy.get_distribution(obs_t)
    space = reference_model.action_space
    if isinstance(space, spaces.Box):
        mean = dist.distribution.mean.detach().numpy()
        diff = max(np.abs(exported["mean"] - mean).max(), np.abs(exported["action"] - actions).max())
        assert exported["action"].dtype == np.float32
    else:
        if isinstance(space, spaces.MultiDiscrete):
            logits = np.concatenate([d.logits.detach().numpy() for d in dist.distribution], axis=1)
        else:
            logits = dist.distribution.logits.detach().numpy()
        diff = np.abs(exported["logits"] - logits).max()
        assert exported["action"].dtype == np.int64
        np.testing.assert_array_equal(exported["action"], actions.astype(np.int64))
    assert diff <= PARITY_TOLERANCE, diff
    return float(diff)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "Hopper-v5"])
def test_export_matches_pytorch(saved_students, tmp_path, env_id):
    path = saved_students(env_id)
    report = export_onnx(path, tmp_path / "student.onnx")
    assert report.parity.ok and report.parity.n_observations == 1000
    student = PPD.load(path, device="cpu")
    obs = np.concatenate(
        [sampled_observations(student.observation_space, N_SAMPLED), env_observations(student, env_id, 500)]
    ).astype(student.observation_space.dtype)
    assert len(obs) > N_SAMPLED
    assert_parity(student, report.path, obs)
    # the batch axis is dynamic
    one = onnx_outputs(report.path, obs[:1])
    assert one["action"].shape[0] == 1


def test_hopper_student_takes_raw_observations(saved_students, tmp_path):
    """The teacher's normalization lives in the student's network and goes into the graph."""
    path = saved_students("Hopper-v5")
    report = export_onnx(path, tmp_path / "hopper.onnx")
    assert "inside the student's network" in report.normalization
    student = PPD.load(path, device="cpu")
    obs = env_observations(student, "Hopper-v5", 1000)
    exported = onnx_outputs(report.path, obs)
    # counterfactual: the same network fed pre-normalized observations would act differently,
    # so parity on raw ones means the normalization is in the graph
    normalizer = student.policy.features_extractor.normalizer
    mean_raw = exported["mean"]
    pre_normalized = normalizer(student.policy.obs_to_tensor(obs)[0]).numpy().astype(obs.dtype)
    mean_twice = onnx_outputs(report.path, pre_normalized)["mean"]
    assert np.abs(mean_raw - mean_twice).max() > 1e-3
    assert_parity(student, report.path, obs)


def test_vecnormalize_file_beside_the_student_is_folded_in(tmp_path):
    venv = VecNormalize(DummyVecEnv([lambda: make_env("Pendulum-v1")]), norm_reward=False)
    model = PPO("MlpPolicy", venv, n_steps=128, batch_size=64, n_epochs=1, seed=0)
    model.learn(256)
    venv.training = False
    model.save(tmp_path / "student.zip")
    venv.save(str(tmp_path / "student.vecnormalize.pkl"))

    obs = sampled_observations(model.observation_space, 1500, scale=5.0)
    report = export_onnx(tmp_path / "student.zip", tmp_path / "from-file.onnx")
    assert "student.vecnormalize.pkl" in report.normalization
    assert_parity(model, report.path, obs, normalize=venv.normalize_obs)
    in_memory = export_onnx(model, tmp_path / "in-memory.onnx")
    assert_parity(model, in_memory.path, obs, normalize=venv.normalize_obs)
    # without the statistics the answer differs: the check above is not vacuous
    assert (
        np.abs(model.predict(obs, deterministic=True)[0] - onnx_outputs(report.path, obs)["action"]).max()
        > 1e-3
    )


@pytest.mark.parametrize("kind", ["discrete", "multidiscrete", "multibinary", "box", "box-gsde-squashed"])
def test_every_action_space(tmp_path, kind):
    space = ACTION_SPACES["box" if kind.startswith("box") else kind]
    kwargs = {}
    if kind == "box-gsde-squashed":
        kwargs = {"use_sde": True, "policy_kwargs": {"squash_output": True}}
    model = PPO("MlpPolicy", ToyEnv(space), n_steps=64, batch_size=64, seed=3, **kwargs)
    model.save(tmp_path / "m.zip")
    report = export_onnx(tmp_path / "m.zip", tmp_path / "m.onnx")
    assert report.parity.ok
    obs = sampled_observations(model.observation_space, N_SAMPLED)
    assert_parity(model, report.path, obs)


class ImageEnv(gym.Env):
    """Random channel-last RGB frames (SB3 transposes them for its CnnPolicy)."""

    observation_space = spaces.Box(0, 255, (36, 36, 3), np.uint8)
    action_space = spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, True, {}


def test_discrete_and_image_observations(tmp_path):
    lake = PPO("MlpPolicy", "FrozenLake-v1", n_steps=64, seed=0)  # Discrete(16) observations, one-hot
    lake.save(tmp_path / "lake.zip")
    report = export_onnx(tmp_path / "lake.zip", tmp_path / "lake.onnx")
    assert report.input == "obs (batch) int64"
    assert_parity(lake, report.path, np.tile(np.arange(16), 70))

    cnn = PPO("CnnPolicy", ImageEnv(), n_steps=64, seed=0)
    cnn.save(tmp_path / "cnn.zip")
    report = export_onnx(tmp_path / "cnn.zip", tmp_path / "cnn.onnx", n_check=200)
    assert report.input == "obs (batch, 3, 36, 36) uint8"  # channel-first, as the policy sees them
    frames = np.random.default_rng(0).integers(0, 256, (200, 3, 36, 36), dtype=np.uint8)
    assert_parity(cnn, report.path, frames)


def test_seeded_model_zip_loads_without_env_id(tmp_path):
    # A model built with seed= pickles a seeded action space (numpy's SeedSequence inside).
    model = PPO("MlpPolicy", "CartPole-v1", seed=1, n_steps=64)
    model.save(tmp_path / "seeded.zip")
    teacher = load_teacher(tmp_path / "seeded.zip")
    assert teacher.action_space == spaces.Discrete(2)


def test_parity_failure_writes_nothing(saved_students, tmp_path, monkeypatch):
    import ppdistill.deploy.export as export

    def off_by_a_bit(path, observations):
        out = onnx_outputs(path, observations)
        out["logits"] = out["logits"] + 1e-3
        return out

    monkeypatch.setattr(export, "onnx_outputs", off_by_a_bit)
    with pytest.raises(ExportError, match="does not reproduce PyTorch"):
        export_onnx(saved_students("CartPole-v1"), tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []


def test_refuses_what_is_not_a_student(tmp_path):
    with pytest.raises(ExportError, match="not an actor-critic student"):
        export_onnx(zoo_path("dqn/CartPole-v1_1"), tmp_path / "dqn.onnx")
    with pytest.raises(ExportError, match="does not exist"):
        export_onnx(tmp_path / "missing.zip", tmp_path / "x.onnx")
    with pytest.raises(ExportError, match="cannot be exported"):
        export_onnx(
            PPO("MultiInputPolicy", ToyEnv(ACTION_SPACES["discrete"], dict_obs=True)), tmp_path / "d.onnx"
        )


def test_missing_extra_is_named(monkeypatch, saved_students, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript now raises ImportError
    with pytest.raises(MissingExtraError, match=r"\[onnx\]"):
        export_onnx(saved_students("CartPole-v1"), tmp_path / "x.onnx")


def recurrent_student(env_id: str, teacher_dir: str):
    """A RecurrentPPD student that sees the positions only (velocities masked), trained a little."""
    from ppdistill.algorithms import RecurrentPPD
    from ppdistill.envs.masked import positions_view
    from ppdistill.envs.recipe import EnvRecipe

    recipe = EnvRecipe(env_id, student_view=positions_view(EnvRecipe(env_id)))
    teacher = load_teacher(zoo_path(teacher_dir))
    small = {"n_steps": 32, "batch_size": 32, "n_epochs": 2, "seed": 0, "device": "cpu"}
    memory = {"lstm_hidden_size": 16, "net_arch": [16]}
    env = recipe.make(n_envs=2, seed=0)
    model = RecurrentPPD("MlpLstmPolicy", env, teacher=teacher, policy_kwargs=memory, **small)
    model.learn(128)
    return model, recipe


@pytest.mark.parametrize(
    ("env_id", "teacher_dir"), [("CartPole-v1", "ppo/CartPole-v1_1"), ("Pendulum-v1", "ppo/Pendulum-v1_1")]
)
def test_a_recurrent_student_exports_with_its_state_and_acts_as_pytorch_step_by_step(
    tmp_path, env_id, teacher_dir
):
    """The exported model takes the LSTM state and returns the next one: fed back, over whole
    episodes of the real environment, it takes the actions RecurrentPPO's predict takes."""
    import onnxruntime

    model, recipe = recurrent_student(env_id, teacher_dir)
    report = export_onnx(model, tmp_path / "student.onnx", n_check=256)
    assert report.parity.ok and "state_h (1, batch, 16) float32" in report.input
    session = onnxruntime.InferenceSession(str(tmp_path / "student.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["obs", "state_h", "state_c", "episode_start"]
    names = [o.name for o in session.get_outputs()]
    env = recipe.make(n_envs=3, seed=11, training=False)
    obs = env.reset()
    starts = np.ones(3, dtype=bool)
    theirs_state = None
    h = c = np.zeros((1, 3, 16), np.float32)
    worst, resets = 0.0, 0
    for _ in range(60):  # CartPole's first episodes end within these; Pendulum runs 60 of its 200 steps
        theirs, theirs_state = model.predict(obs, theirs_state, starts, deterministic=True)
        out = dict(zip(names, session.run(names, {"obs": obs, "state_h": h, "state_c": c,
                                                   "episode_start": starts.astype(np.float32)})))  # fmt: skip
        h, c = out["state_h_out"], out["state_c_out"]
        worst = max(worst, float(np.abs(h - theirs_state[0]).max()), float(np.abs(c - theirs_state[1]).max()))
        if isinstance(model.action_space, spaces.Box):
            np.testing.assert_allclose(out["action"], theirs, atol=1e-4)
        else:
            np.testing.assert_array_equal(out["action"], theirs)
        obs, _, starts, _ = env.step(theirs)
        resets += int(starts.sum())
    assert worst < 1e-4, worst
    assert resets > 0 or env_id == "Pendulum-v1"  # states reset by episode_start mid-run (CartPole)
    env.close()


def test_a_student_of_a_privileged_teacher_exports_with_the_students_observation_only(tmp_path):
    """The teacher read the policy and privileged groups; the ONNX model takes the policy group alone."""
    import onnxruntime
    from stable_baselines3.common.env_util import make_vec_env

    from ppdistill.envs.memory import CueMemory
    from ppdistill.envs.views import split_observations
    from ppdistill.teachers.callable import CallableTeacher

    teacher = CallableTeacher(lambda obs: 6 * obs["privileged"] - 3, CueMemory().observation_space,
                              spaces.Discrete(2), info={"kind": "callable"})  # fmt: skip
    env = split_observations(make_vec_env(CueMemory, n_envs=2, seed=0), student_keys=["policy"])
    student = PPD(
        "MlpPolicy", env, teacher=teacher, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu"
    )
    student.learn(64)
    student.save(tmp_path / "student.zip")
    report = export_onnx(tmp_path / "student.zip", tmp_path / "student.onnx", n_check=64)
    assert report.input == "obs (batch, 3) float32" and report.parity.ok
    session = onnxruntime.InferenceSession(str(tmp_path / "student.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape[1:]) for i in session.get_inputs()] == [("obs", [3])]


def test_the_file_says_what_a_student_of_a_view_is_fed(tmp_path):
    """Positions and their change: the caller computes the change, so the file must say so."""
    import onnx

    from ppdistill.envs.masked import positions_change_view
    from ppdistill.envs.recipe import EnvRecipe

    recipe = EnvRecipe("CartPole-v1", student_view=positions_change_view(EnvRecipe("CartPole-v1")))
    student = save_student_of_view(recipe, tmp_path / "student.zip")
    words = (
        "positions (entries 0, 2) and their change since the step before of the observation of CartPole-v1"
    )
    for source in (student, tmp_path / "student.zip"):  # in memory, and a zip read without env_id
        report = export_onnx(source, tmp_path / "student.onnx", n_check=16)
        assert report.view == words
        metadata = {p.key: p.value for p in onnx.load(str(report.path)).metadata_props}
        assert metadata["ppdistill.observation"] == words
    plain = PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32, seed=0)
    report = export_onnx(plain, tmp_path / "plain.onnx", n_check=16)
    assert report.view is None
    assert "ppdistill.observation" not in {p.key for p in onnx.load(str(report.path)).metadata_props}


def test_a_student_with_its_own_running_statistics_exports_them(tmp_path):
    teacher = load_teacher(zoo_path("sac/Pendulum-v1_1"))  # a teacher without normalization
    model = PPD("MlpPolicy", "Pendulum-v1", teacher=teacher, student_obs_norm="running", n_steps=64,
                batch_size=64, n_epochs=1, seed=0, policy_kwargs={"net_arch": [16]})  # fmt: skip
    model.learn(64 * 3)  # the statistics moved twice
    extractor = model.policy.features_extractor
    assert float(extractor.count) > 100
    model.save(tmp_path / "student.zip")
    report = export_onnx(tmp_path / "student.zip", tmp_path / "student.onnx")
    assert report.parity.ok and "own statistics" in report.normalization
    assert_parity(PPD.load(tmp_path / "student.zip", device="cpu"), report.path,
                  sampled_observations(model.observation_space, 200))  # fmt: skip
