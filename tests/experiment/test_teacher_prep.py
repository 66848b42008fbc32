"""Corrupting teachers to a target score (the imperfect-teacher suites use it)."""

from __future__ import annotations

import base64
import io
import json
import math
import pickle
import zipfile
from importlib import resources
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th

from ppdistill.core.errors import PPDistillError
from ppdistill.evaluation import random_policy_score
from ppdistill.experiment.teacher_prep import calibrate_sigma, corrupt_teacher
from ppdistill.teachers.loading import load_teacher
from ppdistill.teachers.sb3_zip import read_sb3_zip, read_vecnormalize, safe_loads, space_from_record

from ..conftest import zoo_path
from ..helpers import CallWhenUnpickled, MakesDir, edit_data, pickle_calling

CARTPOLE = Path(str(resources.files("ppdistill").joinpath("assets", "cartpole-teacher.zip")))


def weights(path: Path) -> dict[str, th.Tensor]:
    return read_sb3_zip(path).policy_state


def decode(data: dict, key: str):
    return safe_loads(base64.b64decode(data[key][":serialized:"]))


def assert_same(a, b):
    if isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


def test_corrupt_teacher_adds_independent_gaussian_noise_of_std_sigma(tmp_path):
    sigma = 0.05
    summary = corrupt_teacher(CARTPOLE, tmp_path / "c.zip", sigma=sigma, seed=1)
    before, after = weights(CARTPOLE), weights(tmp_path / "c.zip")
    assert after.keys() == before.keys()
    floats = [k for k, v in before.items() if v.is_floating_point()]
    for k in before.keys() - set(floats):
        assert th.equal(after[k], before[k]), k
    noise = th.cat([(after[k] - before[k]).double().flatten() for k in floats])
    n = noise.numel()
    assert (summary["tensors"], summary["weights"]) == (len(floats), n)
    assert n > 5000
    # N(0, σ²) samples: the sample std is σ ± σ/√(2n), the mean 0 ± σ/√n; five standard errors
    assert abs(float(noise.std()) - sigma) < 5 * sigma / math.sqrt(2 * n)
    assert abs(float(noise.mean())) < 5 * sigma / math.sqrt(n)
    # Gaussian, not merely the right std: 68.3% within one σ (a uniform noise has 57.7%)
    within = float((noise.abs() < sigma).double().mean())
    assert abs(within - 0.6827) < 5 * math.sqrt(0.6827 * 0.3173 / n)
    # every tensor perturbed, each with its own draws (not one noise vector reused)
    for k in floats:
        assert not th.equal(after[k], before[k]), k
    pairs = [
        (j, k) for i, j in enumerate(floats) for k in floats[i + 1 :] if before[j].shape == before[k].shape
    ]
    assert pairs
    for j, k in pairs:
        assert not th.equal(after[j] - before[j], after[k] - before[k]), (j, k)


def test_corrupt_teacher_noise_is_set_by_its_seed_alone(tmp_path):
    corrupt_teacher(CARTPOLE, tmp_path / "a.zip", sigma=0.1, seed=7)
    corrupt_teacher(CARTPOLE, tmp_path / "b.zip", sigma=0.1, seed=7)
    corrupt_teacher(CARTPOLE, tmp_path / "c.zip", sigma=0.1, seed=8)
    a, b, c, original = (
        weights(p) for p in (tmp_path / "a.zip", tmp_path / "b.zip", tmp_path / "c.zip", CARTPOLE)
    )
    for k, v in original.items():
        assert th.equal(a[k], b[k]), k  # same seed: the same teacher
        if v.is_floating_point():
            assert not th.equal(a[k], c[k]), k  # another seed: other noise in every tensor
    # the rest of the file is the source's, less the optimizer state (it belonged to other weights)
    # and the pickled values the allow-list refuses (schedules: functions); the values it reads
    # are pickled afresh, so that no byte of the source reaches an unpickler
    with zipfile.ZipFile(CARTPOLE) as src, zipfile.ZipFile(tmp_path / "a.zip") as out:
        assert set(out.namelist()) == set(src.namelist()) - {"policy.optimizer.pth"}
        for name in ("_stable_baselines3_version", "system_info.txt"):
            assert out.read(name) == src.read(name), name
        assert th.load(io.BytesIO(out.read("pytorch_variables.pth")), weights_only=True) == {}
        src_data, out_data = json.loads(src.read("data")), json.loads(out.read("data"))
    pickled = {k for k, v in src_data.items() if isinstance(v, dict) and ":serialized:" in v}
    assert out_data.keys() == src_data.keys() - {"clip_range", "lr_schedule"}
    for key, value in out_data.items():
        if key not in pickled:
            assert value == src_data[key], key
        elif key.endswith("_space"):
            assert space_from_record(decode(out_data, key)) == space_from_record(decode(src_data, key)), key
        else:
            assert_same(decode(out_data, key), decode(src_data, key)), key


def test_corrupt_teacher_with_zero_sigma_keeps_the_weights_and_refuses_a_negative_one(tmp_path):
    corrupt_teacher(CARTPOLE, tmp_path / "z.zip", sigma=0.0, seed=3)
    original, kept = weights(CARTPOLE), weights(tmp_path / "z.zip")
    assert kept.keys() == original.keys()
    for k in original:
        assert th.equal(kept[k], original[k]), k
    with pytest.raises(PPDistillError, match="sigma"):
        corrupt_teacher(CARTPOLE, tmp_path / "n.zip", sigma=-0.1)


def test_calibrate_sigma_finds_a_noise_level_that_halves_the_score(tmp_path, monkeypatch):
    import ppdistill.experiment.teacher_prep as prep

    episode_seeds = []
    real_evaluate = prep.evaluate

    def spy(*args, **kwargs):
        episode_seeds.append(kwargs["seed"])
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(prep, "evaluate", spy)
    target, tolerance, episodes = 0.5, 0.15, 5
    found = calibrate_sigma(CARTPOLE, "CartPole-v1", target_fraction=target, episodes=episodes,
                            tolerance=tolerance, seed=0)  # fmt: skip
    assert found["teacher_score"] > 400
    tried = found["tried"]
    assert 1 <= len(tried) <= 10
    # the teacher and every candidate are scored on the same seeded episodes
    assert len(episode_seeds) == 1 + len(tried) and len(set(episode_seeds)) == 1
    # it stops at the first σ within tolerance, and returns that σ with its fraction
    assert all(abs(f - target) > tolerance for _, f in tried[:-1]), tried
    assert (found["sigma"], found["fraction"]) == tried[-1]
    assert abs(found["fraction"] - target) <= tolerance, tried
    # the search: from 0.05, doubled while the score stays above target, halved while below,
    # then bisected in log scale once the target is bracketed
    lo = hi = None
    expected = 0.05
    for sigma, f in tried:
        assert sigma == pytest.approx(expected, rel=1e-12), tried
        lo, hi = (sigma, hi) if f > target else (lo, sigma)
        expected = math.sqrt(lo * hi) if lo and hi else (sigma * 2 if hi is None else sigma / 2)
    # the fraction reported is that σ's: the corrupted teacher, scored again independently
    corrupt_teacher(CARTPOLE, tmp_path / "t.zip", sigma=found["sigma"], seed=0)
    teacher = load_teacher(tmp_path / "t.zip", env_id="CartPole-v1")
    score = real_evaluate(teacher, "CartPole-v1", episodes, True, seed=episode_seeds[0]).mean
    random_score = random_policy_score("CartPole-v1", episodes, seed=episode_seeds[0])
    assert found["random_score"] == random_score
    want = (score - random_score) / (found["teacher_score"] - random_score)
    assert found["fraction"] == pytest.approx(want, rel=1e-9)


def test_calibrate_sigma_refuses_a_bad_target():
    with pytest.raises(PPDistillError, match="target fraction"):
        calibrate_sigma(CARTPOLE, "CartPole-v1", target_fraction=1.5)


# ---- hostile sources: refused, or nothing of theirs reaches an unpickler -------------------


def test_teacher_corrupt_refuses_a_hostile_teacher_in_one_line_and_writes_nothing(tmp_path, capsys):
    """Issue 14, item 11: the copy kept the pickle payload, which `PPO.load` then ran."""
    from ppdistill.cli.main import main

    marker = tmp_path / "ran"
    evil = tmp_path / "EVIL.zip"
    zoo = (zoo_path("ppo/CartPole-v1_1") / "CartPole-v1.zip").read_bytes()
    evil.write_bytes(edit_data(zoo, "policy_class", pickle.dumps(MakesDir(marker))))
    out = tmp_path / "out"
    out.mkdir()
    code = main(["teacher", "corrupt", str(evil), str(out / "c.zip")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith("ppdistill: error:") and "refusing to unpickle posix.mkdir" in err[0], err
    assert not any(out.iterdir()) and not marker.exists()


def assert_same_statistics(loaded, path: Path) -> None:
    """SB3's VecNormalize ``loaded`` holds the statistics and settings of the pickle at ``path``."""
    original = safe_loads(path.read_bytes()).__dict__
    for name in ("obs_rms", "ret_rms"):
        for key, value in original[name].__dict__.items():
            np.testing.assert_array_equal(getattr(getattr(loaded, name), key), value, err_msg=f"{name}.{key}")
    for key in ("clip_obs", "clip_reward", "gamma", "epsilon", "norm_obs", "norm_reward"):
        assert getattr(loaded, key) == original[key], key


def hostile_teacher(folder: Path, markers: Path) -> Path:
    """CartPole's teacher, loadable by load_teacher, with three pickles that run code (each
    makes a folder in ``markers``) when SB3 reads the model or its statistics:

    - ``lr_schedule``: a plain payload, which the allow-list refuses (load_teacher never reads it);
    - ``observation_space``: a real Box that also calls ``gymnasium.os.mkdir``, which the
      allow-list decodes (it reads gymnasium as inert records) but ``pickle`` runs;
    - ``<stem>.vecnormalize.pkl``: real statistics that also call ``gymnasium.os.mkdir``.
    """
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    archive = edit_data(CARTPOLE.read_bytes(), "lr_schedule", pickle.dumps(MakesDir(markers / "lr_schedule")))
    space = gym.make("CartPole-v1").observation_space
    space.payload = CallWhenUnpickled(str(markers / "observation_space"))
    archive = edit_data(archive, "observation_space", pickle_calling(space, "gymnasium", "os.mkdir"))
    folder.mkdir()
    (folder / "teacher.zip").write_bytes(archive)
    venv = VecNormalize(make_vec_env("CartPole-v1", n_envs=2, seed=0))
    venv.reset()
    for _ in range(50):
        venv.step(np.array([venv.action_space.sample() for _ in range(2)]))
    venv.payload = CallWhenUnpickled(str(markers / "vecnormalize"))
    blob = pickle_calling(venv, "gymnasium", "os.mkdir")
    (folder / "teacher.vecnormalize.pkl").write_bytes(blob)
    return folder / "teacher.zip"


def test_corrupted_teacher_holds_no_pickle_of_its_source(tmp_path):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.save_util import load_from_zip_file
    from stable_baselines3.common.vec_env import VecNormalize

    markers = tmp_path / "markers"
    markers.mkdir()
    source = hostile_teacher(tmp_path / "source", markers)
    teacher = load_teacher(source)  # the safe reader takes it: nothing in it is refused
    assert teacher.obs_normalizer is not None

    summary = corrupt_teacher(source, tmp_path / "out" / "c.zip", sigma=0.1)
    out, stats = tmp_path / "out" / "c.zip", tmp_path / "out" / "c.vecnormalize.pkl"
    # SB3's own readers: cloudpickle for every data entry, pickle for the statistics
    data, params, _ = load_from_zip_file(out)
    loaded = VecNormalize.load(str(stats), make_vec_env("CartPole-v1", n_envs=1))
    assert not any(markers.iterdir()), sorted(p.name for p in markers.iterdir())
    assert "lr_schedule" in summary["left_out"]
    # what they read is the teacher's: its spaces, its statistics, the noisy weights
    assert data["observation_space"] == teacher.observation_space
    assert "lr_schedule" not in data and data["policy_class"] is type(teacher.policy)
    assert_same_statistics(loaded, source.with_name("teacher.vecnormalize.pkl"))
    assert not hasattr(loaded, "payload")
    corrupted = load_teacher(out)
    assert corrupted.info["vecnormalize"] == str(stats.resolve())
    for k, v in corrupted.obs_normalizer.stats().items():
        np.testing.assert_array_equal(v, teacher.obs_normalizer.stats()[k])
    assert set(params["policy"]) == set(weights(source))

    # the payloads are live: the same readers run all three on the source
    load_from_zip_file(source)
    source_stats = source.with_name("teacher.vecnormalize.pkl")
    VecNormalize.load(str(source_stats), make_vec_env("CartPole-v1", n_envs=1))
    assert sorted(p.name for p in markers.iterdir()) == ["lr_schedule", "observation_space", "vecnormalize"]


def test_corrupted_zoo_teacher_is_read_by_sb3_without_the_old_gym_package(tmp_path):
    """A zoo teacher's pickles name `gym`; the corrupted copy's are today's gymnasium objects."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.save_util import load_from_zip_file
    from stable_baselines3.common.vec_env import VecNormalize

    folder = zoo_path("ppo/Hopper-v3_1")
    corrupt_teacher(folder, tmp_path / "h.zip", sigma=0.0)
    data, _, _ = load_from_zip_file(tmp_path / "h.zip")
    assert data["observation_space"].shape == (11,) and data["action_space"].shape == (3,)
    stats = VecNormalize.load(str(tmp_path / "h.vecnormalize.pkl"), make_vec_env("Hopper-v5", n_envs=1))
    assert_same_statistics(stats, folder / "Hopper-v3" / "vecnormalize.pkl")
    _, value_scale = read_vecnormalize(folder / "Hopper-v3" / "vecnormalize.pkl")
    assert stats.norm_reward and np.sqrt(stats.ret_rms.var + stats.epsilon) == pytest.approx(value_scale)
    teacher, corrupted = load_teacher(folder), load_teacher(tmp_path / "h.zip")
    obs = th.randn(32, 11) * 3
    assert th.equal(teacher(obs, with_values=True).params, corrupted(obs, with_values=True).params)
    assert th.allclose(teacher(obs, with_values=True).values, corrupted(obs, with_values=True).values)


# ---- training teachers of every kind the teachers suite needs ---------------------------

TIME_FEATURE = "sb3_contrib.common.wrappers.TimeFeatureWrapper"


def test_a_tqc_teacher_trained_in_a_time_feature_is_read_back_inside_it(tmp_path, capsys):
    from sb3_contrib import TQC

    from ppdistill.cli.main import main

    out = tmp_path / "tqc.zip"
    code = main([
        "teacher", "train", "--env", "Pendulum-v1", "--algo", "tqc", "--timesteps", "200", "--no-progress",
        "--hp", "learning_starts=100", "--hp", "policy_kwargs={net_arch: [16, 16], n_critics: 1}",
        "--hp", f"env_wrapper={TIME_FEATURE}", "--hp", "learning_rate=lin_1e-3", "--out", str(out),
    ])  # fmt: skip
    assert code == 0 and "deterministic return" in capsys.readouterr().out
    model = TQC.load(out, device="cpu")
    # a corrupted copy keeps the wrapper it needs (its .args.yml carries it)
    corrupt_teacher(out, tmp_path / "tqc-corrupted.zip", sigma=0.01, seed=0)
    corrupted = load_teacher(tmp_path / "tqc-corrupted.zip", env_id="Pendulum-v1")
    assert corrupted.info["env"]["wrappers"] == [{"path": TIME_FEATURE, "kwargs": {}}]
    # the zoo's lin_X: X at the start, half of it halfway
    assert model.lr_schedule(1.0) == pytest.approx(1e-3) and model.lr_schedule(0.5) == pytest.approx(5e-4)
    teacher = load_teacher(out)  # env and wrapper from the .args.yml beside it
    assert teacher.info["kind"] == "tqc"
    assert teacher.observation_space.shape == (4,)  # 3 + the time feature
    assert teacher.info["env"]["wrappers"] == [{"path": TIME_FEATURE, "kwargs": {}}]


def test_a_qrdqn_teacher_is_trained_and_read_as_a_value_based_teacher(tmp_path):
    from ppdistill.experiment.teacher_prep import teacher_hyperparameters, train_teacher

    assert teacher_hyperparameters("MountainCar-v0", "qrdqn")["policy_kwargs"]["n_quantiles"] == 25
    out = tmp_path / "qrdqn.zip"
    model = train_teacher("CartPole-v1", "qrdqn", out, timesteps=300, overrides={"learning_starts": 100})
    teacher = load_teacher(out)
    assert teacher.info["kind"] == "quantiles"  # QR-DQN: softmax of its mean quantiles
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    logits = teacher(th.as_tensor(obs)).params
    np.testing.assert_array_equal(logits.argmax(-1).numpy(), model.predict(obs, deterministic=True)[0])


@pytest.mark.parametrize(
    ("env", "algo", "overrides", "message"),
    [
        ("Pendulum-v1", "qrdqn", {}, "qrdqn cannot act in Pendulum-v1's Box action space"),
        ("Pendulum-v1", "tqc", {"env_wrapper": "os.system"}, "env_wrapper os.system is not imported"),
        ("Pendulum-v1", "sac", {"learning_rate": "lin_fast"}, "learning_rate 'lin_fast' is neither a number"),
    ],
)
def test_train_teacher_refuses_bad_settings_in_one_line_and_writes_nothing(tmp_path, env, algo, overrides,
                                                                          message):  # fmt: skip
    from ppdistill.experiment.config import ConfigError
    from ppdistill.experiment.teacher_prep import train_teacher

    with pytest.raises(ConfigError) as info:
        train_teacher(env, algo, tmp_path / "t.zip", timesteps=10, overrides=overrides)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []
