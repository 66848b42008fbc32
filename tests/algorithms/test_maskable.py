"""MaskablePPO: masked teachers (their target is their masked distribution, the masks of every
step recorded with the rollout) and MaskablePPD, a PPD whose student is a MaskablePPO."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.utils import get_action_masks
from sb3_contrib.common.wrappers import ActionMasker
from stable_baselines3.common.env_util import make_vec_env

from ppdistill import PPD, StudentDistill, TeacherDistill, load_teacher
from ppdistill.algorithms import MaskablePPD
from ppdistill.core.errors import PPDistillError, SpaceMismatchError
from ppdistill.core.losses import distillation_kl
from ppdistill.teachers.maskable import MASKED_LOGIT, MaskedTeacher, mask_width

from ..toy import recording_logger, toy_teacher

SPACES = {
    "discrete": spaces.Discrete(4),
    "multidiscrete": spaces.MultiDiscrete([3, 4]),
    "multibinary": spaces.MultiBinary(3),
}
SMALL = {"n_steps": 32, "batch_size": 32, "n_epochs": 2, "seed": 0, "device": "cpu"}


def legal_actions(obs: np.ndarray, space: spaces.Space) -> np.ndarray:
    """The mask of an observation (a fixed function of it; at least one legal choice each)."""
    rng = np.random.default_rng(np.frombuffer(np.asarray(obs, np.float32).tobytes(), dtype=np.uint32))
    if isinstance(space, spaces.MultiBinary):  # per bit: both outcomes, only 0 or only 1
        pairs = [(True, True), (True, False), (False, True)]
        return np.array([v for _ in range(space.n) for v in pairs[rng.integers(3)]])
    parts = []
    for n in [space.n] if isinstance(space, spaces.Discrete) else list(space.nvec):
        legal = rng.random(int(n)) < 0.5
        legal[rng.integers(int(n))] = True
        parts.append(legal)
    return np.concatenate(parts)


def is_legal(action, legal: np.ndarray, space: spaces.Space) -> bool:
    action = np.asarray(action).reshape(-1)
    if isinstance(space, spaces.Discrete):
        return bool(legal[int(action[0])])
    if isinstance(space, spaces.MultiBinary):
        return all(legal[2 * i + int(a)] for i, a in enumerate(action))
    offsets = np.concatenate([[0], np.cumsum(space.nvec)[:-1]])
    return all(legal[o + int(a)] for o, a in zip(offsets, action))


def random_legal_action(legal: np.ndarray, space: spaces.Space, rng: np.random.Generator):
    if isinstance(space, spaces.MultiBinary):
        return np.array([rng.choice(np.flatnonzero(legal[2 * i : 2 * i + 2])) for i in range(space.n)])
    sizes = [int(space.n)] if isinstance(space, spaces.Discrete) else [int(n) for n in space.nvec]
    choice = [rng.choice(np.flatnonzero(part)) for part in np.split(legal, np.cumsum(sizes)[:-1])]
    return choice[0] if isinstance(space, spaces.Discrete) else np.array(choice)


class MaskedToyEnv(gym.Env):
    """Random observations; some actions illegal in each state (:func:`legal_actions`); counts
    the illegal actions it is given; 20-step episodes."""

    def __init__(self, action_space: spaces.Space):
        self.observation_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
        self.action_space = action_space
        self.illegal_taken = 0

    def legal(self) -> np.ndarray:
        return legal_actions(self.obs, self.action_space)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.obs = self.np_random.normal(size=4).astype(np.float32)
        return self.obs, {}

    def step(self, action):
        self.illegal_taken += int(not is_legal(action, self.legal(), self.action_space))
        reward = float(np.sum(np.asarray(action) == 0))
        self.t += 1
        self.obs = self.np_random.normal(size=4).astype(np.float32)
        return self.obs, reward, False, self.t >= 20, {}


def masked_env(space_name: str = "discrete", n_envs: int = 2, seed: int = 0, masks: bool = True):
    def make():
        env = MaskedToyEnv(SPACES[space_name])
        return ActionMasker(env, lambda e: e.unwrapped.legal()) if masks else env

    return make_vec_env(make, n_envs=n_envs, seed=seed)


def illegal_taken(vec_env) -> int:
    return sum(e.unwrapped.illegal_taken for e in vec_env.envs)


@pytest.fixture(scope="module")
def maskable_zips(tmp_path_factory):
    """A MaskablePPO trained a few hundred steps on each action space, saved, and the model."""
    folder = tmp_path_factory.mktemp("maskable")
    made = {}
    for name in SPACES:
        model = MaskablePPO("MlpPolicy", masked_env(name), n_steps=64, batch_size=64, n_epochs=2,
                            seed=0, device="cpu", policy_kwargs={"net_arch": [32, 32]})  # fmt: skip
        model.learn(256)
        model.save(folder / f"{name}.zip")
        made[name] = (folder / f"{name}.zip", model)
    return made


@pytest.fixture(scope="module")
def teacher(maskable_zips):
    return load_teacher(maskable_zips["discrete"][0])


@pytest.mark.parametrize("space_name", list(SPACES))
def test_a_maskable_teacher_acts_as_the_model_with_masks_on_a_thousand_observations(
    maskable_zips, space_name
):
    path, model = maskable_zips[space_name]
    loaded = load_teacher(path)
    assert isinstance(loaded, MaskedTeacher) and loaded.info["kind"] == "maskable"
    env = masked_env(space_name, n_envs=8, seed=5)
    obs = env.reset()
    rng = np.random.default_rng(0)
    changed = 0
    for _ in range(125):  # 1,000 observations
        masks = get_action_masks(env)
        theirs, _ = model.predict(obs, action_masks=masks, deterministic=True)
        ours, _ = loaded.predict(obs, action_masks=masks, deterministic=True)
        np.testing.assert_array_equal(ours, theirs)
        unmasked, _ = loaded.predict(obs, deterministic=True)  # without masks: as MaskablePPO without
        np.testing.assert_array_equal(unmasked, model.predict(obs, deterministic=True)[0])
        changed += int(np.any(unmasked != ours))
        obs, _, _, _ = env.step(np.array([random_legal_action(m, env.action_space, rng) for m in masks]))
    assert changed > 10, "the masks never changed the teacher's action: the test shows nothing"


def test_a_maskable_teacher_of_another_environment_names_both_spaces(maskable_zips):
    path, _ = maskable_zips["discrete"]
    with pytest.raises(SpaceMismatchError, match=r"\(4,\).*\(6,\)"):
        load_teacher(path, env_id="Acrobot-v1")
    with pytest.raises(SpaceMismatchError, match=r"Discrete\(4\).*MultiDiscrete\(\[3 4\]\)"):
        PPD("MlpPolicy", masked_env("multidiscrete"), teacher=load_teacher(path))


@pytest.mark.parametrize("space_name", list(SPACES))
def test_the_target_puts_probability_zero_on_illegal_actions(maskable_zips, space_name):
    path, model = maskable_zips[space_name]
    loaded = load_teacher(path)
    space = SPACES[space_name]
    obs = np.random.default_rng(1).normal(size=(256, 4)).astype(np.float32)
    masks = np.stack([legal_actions(o, space) for o in obs])
    assert masks.shape[1] == mask_width(space) and not masks.all()
    params = loaded(th.as_tensor(obs), action_masks=masks).params
    assert th.isfinite(params).all()
    if isinstance(space, spaces.MultiBinary):  # one Bernoulli logit per bit: P(1), P(0) per pair
        p1 = th.sigmoid(params)
        probs = th.stack([1 - p1, p1], dim=-1).reshape(len(obs), -1)
    else:
        sizes = [space.n] if isinstance(space, spaces.Discrete) else list(space.nvec)
        probs = th.cat([th.softmax(p, -1) for p in th.split(params, [int(s) for s in sizes], -1)], -1)
    legal = th.as_tensor(masks)
    assert (probs[~legal] == 0).all()  # exactly 0, not merely small
    if not isinstance(space, spaces.MultiBinary):  # sb3-contrib's logit for an illegal action
        assert (params[~legal] == MASKED_LOGIT).all()
    # the legal actions' probabilities are the model's masked distribution's
    dist = model.policy.get_distribution(th.as_tensor(obs), action_masks=masks)
    theirs = (
        th.cat([d.probs for d in dist.distributions], -1)
        if hasattr(dist, "distributions")
        else dist.distribution.probs
    )
    th.testing.assert_close(probs, theirs, atol=1e-6, rtol=0)
    # the forward KL to any student is finite and ignores the illegal actions (0·log 0 = 0)
    student = th.randn(params.shape, requires_grad=True)
    kl = distillation_kl(space, params, student)
    assert th.isfinite(kl).all() and (kl >= -1e-6).all()


def test_the_kl_never_teaches_an_illegal_action(teacher):
    """The gradient of KL(π_T‖π_θ) on an illegal action's logit only lowers it: q − p = q > 0."""
    obs = np.random.default_rng(2).normal(size=(64, 4)).astype(np.float32)
    masks = np.stack([legal_actions(o, teacher.action_space) for o in obs])
    params = teacher(th.as_tensor(obs), action_masks=masks).params
    student = th.zeros(64, 4, requires_grad=True)
    distillation_kl(teacher.action_space, params, student).sum().backward()
    assert student.grad is not None
    assert (student.grad[th.as_tensor(~masks)] > 0).all()


def test_students_distill_from_a_maskable_teacher_and_a_maskable_ppd_never_takes_an_illegal_action(teacher):
    env = masked_env()
    plain = PPD("MlpPolicy", env, teacher=teacher, **SMALL)
    logger, rec = recording_logger()
    plain.set_logger(logger)
    plain.learn(256)
    assert np.isfinite(rec.values("distill/kl")).all() and rec.values("distill/kl")
    assert illegal_taken(env) > 0  # a plain student does not know the masks (the target does)
    StudentDistill("MlpPolicy", masked_env(), teacher=teacher, **SMALL).learn(128)

    env = masked_env()
    student = MaskablePPD("MlpPolicy", env, teacher=teacher, **SMALL)
    logger, rec = recording_logger()
    student.set_logger(logger)
    student.learn(512)
    assert illegal_taken(env) == 0
    assert np.isfinite(rec.values("distill/kl")).all() and len(rec.values("distill/kl")) >= 3
    # and it acts only legally when asked with the masks, deterministically too
    eval_env = masked_env(n_envs=4, seed=9)
    obs = eval_env.reset()
    for _ in range(50):
        masks = get_action_masks(eval_env)
        actions, _ = student.predict(obs, action_masks=masks, deterministic=True)
        obs, _, _, _ = eval_env.step(actions)
    assert illegal_taken(eval_env) == 0


def test_teacher_distill_acts_only_legally_with_a_maskable_teacher(teacher):
    for deterministic in (False, True):
        env = masked_env()
        student = TeacherDistill("MlpPolicy", env, teacher=teacher, teacher_deterministic=deterministic,
                                 **SMALL)  # fmt: skip
        student.learn(128)
        assert illegal_taken(env) == 0
        inputs = student.rollout_buffer.teacher_inputs()
        masks = np.stack([legal_actions(o, teacher.action_space) for o in inputs])
        params = student.rollout_buffer.teacher_params
        assert params is not None and (params[th.as_tensor(~masks)] == MASKED_LOGIT).all()


def test_lambda_zero_maskable_ppd_reproduces_maskable_ppo_exactly(teacher):
    kwargs = {"n_steps": 64, "batch_size": 32, "n_epochs": 3, "seed": 3, "device": "cpu"}
    ppo = MaskablePPO("MlpPolicy", masked_env(seed=4), **kwargs).learn(512)

    def distilled(lam: float) -> MaskablePPD:
        return MaskablePPD("MlpPolicy", masked_env(seed=4), teacher=teacher, distill_lambda=lam, **kwargs)

    ppd = distilled(0.0).learn(512)
    theirs, ours = ppo.policy.state_dict(), ppd.policy.state_dict()
    assert theirs.keys() == ours.keys()
    for name in theirs:
        assert th.equal(theirs[name], ours[name]), name
    # and λ > 0 does change the update
    other = distilled(1.0).learn(512)
    assert not th.equal(other.policy.action_net.weight, ppo.policy.action_net.weight)


@pytest.mark.parametrize("algo", [PPD, MaskablePPD])
def test_the_teacher_runs_once_per_rollout_with_each_steps_masks(teacher, algo):
    """One call per rollout, and the masks it got are those of the observations it got, in order."""
    student = algo("MlpPolicy", masked_env(), teacher=teacher, **SMALL)
    seen = []
    original = student._store_teacher_outputs

    def keep(buffer):
        calls = teacher.n_calls
        original(buffer)
        assert teacher.n_calls == calls + 1
        seen.append(
            (buffer.teacher_inputs().copy(), buffer.teacher_masks().copy(), buffer.teacher_params.clone())
        )

    student._store_teacher_outputs = keep  # type: ignore[method-assign]
    student.learn(128)  # 2 rollouts of 32 steps x 2 envs
    assert len(seen) == 2
    for inputs, masks, params in seen:
        expected = np.stack([legal_actions(o, teacher.action_space) for o in inputs])
        np.testing.assert_array_equal(masks, expected)
        again = teacher(th.as_tensor(inputs), action_masks=expected).params
        assert th.equal(again, params)


def test_a_maskable_ppd_learns_a_plain_teachers_target_masked_too():
    """A teacher that knows nothing of masks is renormalized over the legal actions: the KL
    stays below a nat (unmasked against the student's −1e8 logits it would be ~1e8) and the
    student learns it."""
    env = masked_env()
    student = MaskablePPD("MlpPolicy", env, teacher=toy_teacher(spaces.Discrete(4)), distill_lambda=3.0,
                          learning_rate=1e-3, **{**SMALL, "n_epochs": 4})  # fmt: skip
    logger, rec = recording_logger()
    student.set_logger(logger)
    student.learn(1024)
    kls = rec.values("distill/kl")
    assert max(kls) < 1.0 and kls[-1] < kls[0] / 3
    assert illegal_taken(env) == 0


def test_a_maskable_teacher_needs_an_environment_with_masks(teacher):
    for algo in (PPD, TeacherDistill, MaskablePPD):
        with pytest.raises(PPDistillError, match="ActionMasker") as info:
            algo("MlpPolicy", masked_env(masks=False), teacher=teacher, **SMALL)
        assert "\n" not in str(info.value)


def test_a_maskable_ppd_saves_and_resumes_with_its_teacher(teacher, tmp_path):
    student = MaskablePPD("MlpPolicy", masked_env(), teacher=teacher, **SMALL).learn(64)
    student.save(tmp_path / "student")
    loaded = MaskablePPD.load(tmp_path / "student", env=masked_env(seed=1), teacher=teacher)
    assert loaded.teacher_info["kind"] == "maskable"
    loaded.learn(64, reset_num_timesteps=False)
    assert loaded.num_timesteps == 128
