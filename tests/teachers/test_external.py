"""Teachers from outside SB3 zips: torch modules, TorchScript, ONNX, and the Hugging Face Hub's cache.

Each test makes its own artefact from a zoo agent (a module around its network, a traced or
exported copy, a Hub-layout cache in tmp_path) and checks that the loaded teacher acts as the
original on 1,000 observations.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from ppdistill import PPD, evaluate, load_teacher
from ppdistill.cli.main import main
from ppdistill.core.errors import ModelLoadError, SpaceMismatchError, TeacherLoadError
from ppdistill.teachers.external import ExternalTeacher
from ppdistill.teachers.sb3_zip import read_vecnormalize

from ..conftest import zoo_path

N_OBS = 1000


def observations(space: spaces.Box, n: int = N_OBS, seed: int = 0) -> np.ndarray:
    """``n`` observations inside the space's bounds (N(0, 1) where a bound is infinite)."""
    rng = np.random.default_rng(seed)
    low = np.where(np.isfinite(space.low), space.low, -3.0)
    high = np.where(np.isfinite(space.high), space.high, 3.0)
    return rng.uniform(low, high, size=(n, *space.shape)).astype(np.float32)


def act(model, obs: np.ndarray) -> np.ndarray:
    """Deterministic actions of a teacher or an SB3 policy."""
    return model.predict(obs, deterministic=True)[0]


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


# ---- modules around the zoo's networks: one per output kind -------------------------------


class ActorLogits(th.nn.Module):
    """A PPO policy's logits (Discrete)."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy

    def forward(self, obs):
        p = self.policy
        return p.action_net(p.mlp_extractor.forward_actor(p.extract_features(obs, p.pi_features_extractor)))


class ActorGaussian(th.nn.Module):
    """A PPO policy's Gaussian (its gSDE noise folded in): (mean, log_std), or both in one tensor."""

    def __init__(self, policy, flat: bool = False):
        super().__init__()
        self.policy, self.flat = policy, flat

    def forward(self, obs):
        normal = self.policy.get_distribution(obs).distribution
        mean, log_std = normal.mean, normal.stddev.log()
        return th.cat([mean, log_std], dim=1) if self.flat else (mean, log_std)


class SacAction(th.nn.Module):
    """A SAC actor's deterministic action, in the environment's units."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy
        space = policy.action_space
        self.register_buffer("low", th.as_tensor(space.low))
        self.register_buffer("high", th.as_tensor(space.high))

    def forward(self, obs):
        scaled = self.policy.actor(obs, deterministic=True)
        return self.low + (scaled + 1) / 2 * (self.high - self.low)


def _cartpole_logits():
    policy = load_teacher(zoo_path("ppo/CartPole-v1_1")).policy
    return ActorLogits(policy), policy, "CartPole-v1", {}


def _dqn_q_values():
    policy = load_teacher(zoo_path("dqn/CartPole-v1_1")).module
    return policy.q_net, policy, "CartPole-v1", {"temperature": 0.5}


def _pendulum_gaussian(flat: bool):
    def make():
        policy = load_teacher(zoo_path("ppo/Pendulum-v1_1")).policy
        return ActorGaussian(policy, flat=flat), policy, "Pendulum-v1", {}

    return make


def _sac_deterministic():
    policy = load_teacher(zoo_path("sac/Pendulum-v1_1")).policy
    return SacAction(policy), policy, "Pendulum-v1", {"target_std": 0.2}


KINDS = {
    "logits": _cartpole_logits,
    "q-values": _dqn_q_values,
    "gaussian": _pendulum_gaussian(flat=False),
    "gaussian-flat": _pendulum_gaussian(flat=True),
    "deterministic": _sac_deterministic,
}


@pytest.mark.parametrize("case", list(KINDS))
def test_a_module_of_each_output_kind_acts_as_the_original(case):
    module, original, env_id, options = KINDS[case]()
    output = case.removesuffix("-flat")
    teacher = load_teacher(module, env_id=env_id, output=output, **options)
    assert isinstance(teacher, ExternalTeacher) and teacher.info["kind"] == output
    obs = observations(teacher.observation_space)
    expected, _ = original.predict(obs, deterministic=True)
    actions, _ = teacher.predict(obs, deterministic=True)
    if isinstance(teacher.action_space, spaces.Discrete):
        assert np.array_equal(actions, expected)
    else:  # SAC scales its action in numpy, the module in torch: the same to float precision
        np.testing.assert_allclose(actions, expected, atol=1e-5)
    out = teacher(th.as_tensor(obs[:8]), with_values=True)
    assert out.params.shape == (8, teacher.param_dim)
    if output == "q-values":  # softmax(Q/τ), and E_π[Q] as the value
        q = module(th.as_tensor(obs[:8]))
        assert th.allclose(out.params, q / 0.5) and out.values is not None
        assert th.allclose(out.values, (th.softmax(q / 0.5, -1) * q).sum(-1))
    if output == "gaussian":  # the zoo agent's own parameters, as its SB3-zip teacher gives them
        zoo_teacher = load_teacher(zoo_path("ppo/Pendulum-v1_1"))
        assert th.allclose(out.params, zoo_teacher(th.as_tensor(obs[:8])).params)
    if output == "deterministic":  # N(a, σ_T²), σ_T = 0.2 × half the range (2 for Pendulum)
        assert th.allclose(out.params[:, 1:], th.full((8, 1), float(np.log(0.2 * 2.0))))
    assert not any(p.requires_grad for p in teacher.parameters())


def test_a_plain_callable_with_a_declared_output_is_read_too():
    teacher = load_teacher(lambda obs: obs[:, :2] * 3, env_id="CartPole-v1", output="q-values")
    obs = observations(teacher.observation_space)
    actions, _ = teacher.predict(obs, deterministic=True)
    assert np.array_equal(actions, np.argmax(obs[:, :2], axis=1))
    # a Gaussian whose log-std is one row for every observation (SB3's own, without gSDE)
    shared = load_teacher(
        lambda obs: (obs[:, :1], th.tensor([-1.0])), env_id="Pendulum-v1", output="gaussian"
    )
    params = shared(th.zeros(3, 3)).params
    assert params.shape == (3, 2) and th.equal(params[:, 1], th.full((3,), -1.0))


# ---- TorchScript ------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:DeprecationWarning")
def test_a_torchscript_file_is_read_only_when_trusted(tmp_path):
    module, original, env_id, _ = _cartpole_logits()
    path = tmp_path / "actor.pt"
    th.jit.trace(module, th.zeros(1, 4)).save(str(path))

    with pytest.raises(TeacherLoadError) as refused:
        load_teacher(path, env_id=env_id, output="logits")
    assert "trust_pickle=True" in one_line(refused) and "TorchScript" in str(refused.value)

    teacher = load_teacher(path, env_id=env_id, output="logits", trust_pickle=True)
    assert teacher.info["format"] == "torchscript"
    obs = observations(teacher.observation_space)
    assert np.array_equal(act(teacher, obs), act(original, obs))


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_torch_save_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "model.pt"
    th.save({"model": _Payload(marker)}, path)
    with pytest.raises(TeacherLoadError) as refused:
        load_teacher(path, env_id="CartPole-v1", output="logits", trust_pickle=True)
    assert "not a TorchScript archive" in one_line(refused)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:DeprecationWarning")
def test_a_torchscript_file_without_an_output_kind_says_how_to_declare_it(tmp_path):
    path = tmp_path / "actor.pt"
    th.jit.trace(th.nn.Linear(4, 2), th.zeros(1, 4)).save(str(path))
    with pytest.raises(TeacherLoadError) as refused:
        load_teacher(path, env_id="CartPole-v1")
    text = one_line(refused)
    assert "output=" in text and "logits, q-values, gaussian, deterministic" in text
    assert "load_teacher(path, output=...)" in text and "ppdistill export" in text


# ---- ONNX ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The zoo's CartPole (logits) and Pendulum (mean) PPO agents, exported by ppdistill export."""
    pytest.importorskip("onnxruntime")
    from ppdistill.deploy.export import export_onnx

    folder = tmp_path_factory.mktemp("onnx")
    made = {}
    for env_id, zoo in (("CartPole-v1", "ppo/CartPole-v1_1"), ("Pendulum-v1", "ppo/Pendulum-v1_1")):
        original = load_teacher(zoo_path(zoo))
        made[env_id] = (export_onnx(original, folder / f"{env_id}.onnx", n_check=64).path, original)
    return made


@pytest.mark.parametrize(("env_id", "kind"), [("CartPole-v1", "logits"), ("Pendulum-v1", "deterministic")])
def test_an_onnx_file_from_ppdistill_export_declares_its_output(exported, env_id, kind):
    path, original = exported[env_id]
    teacher = load_teacher(path, env_id=env_id)  # no output=: the export's output names say it
    assert teacher.info["output"] == kind and teacher.info["format"] == "onnx"
    obs = observations(teacher.observation_space)
    actions, _ = teacher.predict(obs, deterministic=True)
    expected, _ = original.predict(obs, deterministic=True)
    if kind == "logits":
        assert np.array_equal(actions, expected)
    else:
        np.testing.assert_allclose(actions, expected, atol=1e-5)


def _gemm_onnx(path: Path, weight: np.ndarray, external: bool = False) -> None:
    """A hand-made ONNX graph obs (batch, 4) → obs @ weight, not made by ppdistill."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["obs", "w"], ["q"])],
        "q_net",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("q", TensorProto.FLOAT, ["batch", weight.shape[1]])],
        [numpy_helper.from_array(weight.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if external:
        onnx.save(model, str(path), save_as_external_data=True, location="w.bin", size_threshold=0)
    else:
        onnx.save(model, str(path))


def test_an_onnx_file_of_ones_own_is_read_with_its_declared_output(tmp_path):
    weight = np.random.default_rng(1).normal(size=(4, 2))
    path = tmp_path / "q.onnx"
    _gemm_onnx(path, weight)
    with pytest.raises(TeacherLoadError) as refused:
        load_teacher(path, env_id="CartPole-v1")
    assert "declare its output kind" in one_line(refused) and "q-values" in str(refused.value)

    teacher = load_teacher(path, env_id="CartPole-v1", output="q-values")
    obs = observations(teacher.observation_space)
    actions, _ = teacher.predict(obs, deterministic=True)
    assert np.array_equal(actions, np.argmax(obs @ weight.astype(np.float32), axis=1))


def test_an_onnx_file_with_external_data_is_refused(tmp_path):
    path = tmp_path / "q.onnx"
    _gemm_onnx(path, np.ones((4, 2)), external=True)
    assert (tmp_path / "w.bin").exists()
    with pytest.raises(TeacherLoadError) as refused:
        load_teacher(path, env_id="CartPole-v1", output="q-values")
    assert "external data" in one_line(refused)


# ---- spaces that do not fit: both named ----------------------------------------------------------


def test_an_onnx_teacher_on_another_environment_names_both_spaces(exported):
    path, _ = exported["CartPole-v1"]
    with pytest.raises(SpaceMismatchError) as refused:
        load_teacher(path, env_id="Acrobot-v1")
    text = one_line(refused)
    assert "(batch, 4)" in text and "(6,)" in text


def test_a_module_with_the_wrong_output_width_names_both():
    module, _, _, _ = _cartpole_logits()
    obs_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
    with pytest.raises(SpaceMismatchError) as refused:
        load_teacher(module, observation_space=obs_space, action_space=spaces.Discrete(3), output="logits")
    text = one_line(refused)
    assert "returns 2 logits" in text and "Discrete(3) needs 3" in text

    with pytest.raises(SpaceMismatchError) as refused:
        load_teacher(module, env_id="CartPole-v1", output="gaussian")
    assert "needs a Box action space" in one_line(refused) and "Discrete(2)" in str(refused.value)

    with pytest.raises(SpaceMismatchError) as refused:
        load_teacher(module, env_id="Acrobot-v1", output="logits")
    assert "Acrobot-v1" in one_line(refused) and "(6,)" in str(refused.value)


def test_an_unknown_output_kind_names_the_choices():
    with pytest.raises(TeacherLoadError) as refused:
        load_teacher(th.nn.Linear(4, 2), env_id="CartPole-v1", output="probabilities")
    assert "logits, q-values, gaussian, deterministic" in one_line(refused)


def test_output_is_refused_for_an_sb3_zip():
    with pytest.raises(ModelLoadError, match="drop output="):
        load_teacher(zoo_path("ppo/CartPole-v1_1"), output="logits")


# ---- the Hugging Face Hub's cache, offline ---------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def hub_cache(root: Path, repo: str, files: dict[str, Path], commit: str = "a" * 40) -> Path:
    """A Hub cache as huggingface_hub lays it out: blobs, snapshot links, refs/main."""
    org, name = repo.split("/")
    repo_dir = root / f"models--{org}--{name}"
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo_dir / "blobs").mkdir()
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    for filename, source in files.items():
        data = source.read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / filename)
    return snapshot


def test_a_hub_model_in_the_cache_loads_offline_and_plays(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    zoo = zoo_path("ppo/CartPole-v1_1")
    hub_cache(tmp_path / "hub", "sb3/ppo-CartPole-v1", {"ppo-CartPole-v1.zip": zoo / "CartPole-v1.zip"})
    teacher = load_teacher("hf://sb3/ppo-CartPole-v1")  # the env id from the name: no args.yml here
    assert teacher.info["env_id"] == "CartPole-v1" and "models--sb3--ppo-CartPole-v1" in teacher.info["path"]
    original = load_teacher(zoo)
    obs = observations(teacher.observation_space)
    assert np.array_equal(act(teacher, obs), act(original, obs))
    assert evaluate(teacher, "CartPole-v1", n_episodes=2, deterministic=True, seed=0).mean >= 475


def test_a_hub_model_takes_its_vec_normalize_pkl(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # the cache is $HF_HOME/hub
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    zoo = zoo_path("ppo/Hopper-v3_1")
    files = {
        "ppo-Hopper-v3.zip": zoo / "Hopper-v3.zip",
        "vec_normalize.pkl": zoo / "Hopper-v3" / "vecnormalize.pkl",
        "args.yml": zoo / "Hopper-v3" / "args.yml",
        "train_eval_metrics.zip": zoo / "Hopper-v3.zip",  # the zoo's metrics: never taken for the model
    }
    hub_cache(tmp_path / "hf" / "hub", "sb3/ppo-Hopper-v3", files)
    teacher = load_teacher("hf://sb3/ppo-Hopper-v3")
    expected, _ = read_vecnormalize(zoo / "Hopper-v3" / "vecnormalize.pkl")
    assert teacher.obs_normalizer is not None and expected is not None
    assert np.allclose(teacher.obs_normalizer.stats()["mean"], expected.stats()["mean"])
    original = load_teacher(zoo)
    obs = observations(spaces.Box(-1, 1, teacher.observation_space.shape))
    np.testing.assert_array_equal(act(teacher, obs), act(original, obs))


def test_a_model_missing_from_the_cache_says_how_to_fetch_it_in_one_line(tmp_path, monkeypatch, no_network):
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    with pytest.raises(TeacherLoadError) as refused:
        load_teacher("hf://sb3/ppo-Acrobot-v1")
    text = one_line(refused)
    assert str(cache) in text and "never downloads" in text and "hf download sb3/ppo-Acrobot-v1" in text

    # fetched in part (config only), or at another revision than the one asked for
    zoo = zoo_path("ppo/Acrobot-v1_1")
    hub_cache(cache, "sb3/ppo-Acrobot-v1", {"args.yml": zoo / "Acrobot-v1" / "args.yml"})
    with pytest.raises(TeacherLoadError) as refused:
        load_teacher("hf://sb3/ppo-Acrobot-v1")
    assert "ppo-Acrobot-v1.zip" in one_line(refused) and "never downloads" in str(refused.value)
    with pytest.raises(TeacherLoadError) as refused:
        load_teacher("hf://sb3/ppo-Acrobot-v1@v2")
    assert "'v2'" in one_line(refused) and "it holds main" in str(refused.value)


def test_the_command_line_reads_hub_models_and_ppdistill_onnx_files(tmp_path, monkeypatch, exported, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    zoo = zoo_path("ppo/CartPole-v1_1")
    hub_cache(tmp_path / "hub", "sb3/ppo-CartPole-v1", {"ppo-CartPole-v1.zip": zoo / "CartPole-v1.zip"})
    for model in ("hf://sb3/ppo-CartPole-v1", exported["CartPole-v1"][0]):
        code = main(["evaluate", "--model", str(model), "--env", "CartPole-v1", "--episodes", "2"])
        assert code == 0 and "mean 500.00" in capsys.readouterr().out


# ---- end to end ------------------------------------------------------------------------------------


def test_ppd_distills_from_an_onnx_teacher(exported, tmp_path):
    teacher = load_teacher(exported["CartPole-v1"][0], env_id="CartPole-v1")
    model = PPD("MlpPolicy", "CartPole-v1", teacher=teacher, n_steps=64, batch_size=64, n_epochs=2, seed=0,
                policy_kwargs={"net_arch": [32, 16]})  # fmt: skip
    model.learn(256)
    assert model.num_timesteps >= 256 and teacher.n_samples >= 256
    assert model.teacher_info is not None and model.teacher_info["format"] == "onnx"
    model.save(tmp_path / "student.zip")  # without its teacher, which is never pickled
    assert load_teacher(tmp_path / "student.zip", env_id="CartPole-v1").info["env_id"] == "CartPole-v1"
