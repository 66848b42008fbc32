"""PPD-specific behaviour: λ = 0 is PPO exactly, λ schedules, the weight diagnostics."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO

from ppdistill import PPD, load_teacher
from ppdistill.core.schedules import Linear

from ..conftest import zoo_path
from ..toy import ACTION_SPACES, SMALL, ToyEnv, recording_logger, toy_teacher


def assert_same_parameters(a, b):
    sa, sb = a.policy.state_dict(), b.policy.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert th.equal(sa[k], sb[k]), k
    oa, ob = a.policy.optimizer.state_dict()["state"], b.policy.optimizer.state_dict()["state"]
    for k in oa:
        assert th.equal(oa[k]["exp_avg"], ob[k]["exp_avg"])


@pytest.mark.parametrize(
    ("folder", "env_id"), [("ppo/CartPole-v1_1", "CartPole-v1"), ("ppo/Pendulum-v1_1", "Pendulum-v1")]
)
def test_lambda_zero_reproduces_ppo_exactly(folder, env_id):
    teacher = load_teacher(zoo_path(folder))
    kwargs = {"n_steps": 128, "batch_size": 32, "n_epochs": 3, "seed": 3, "device": "cpu"}
    ppo = PPO("MlpPolicy", env_id, **kwargs).learn(512)
    ppd = PPD("MlpPolicy", env_id, teacher=teacher, distill_lambda=0.0, **kwargs).learn(512)
    assert_same_parameters(ppo, ppd)


@pytest.mark.parametrize("space_name", ["multidiscrete", "multibinary"])
def test_lambda_zero_reproduces_ppo_on_other_action_spaces(space_name):
    space = ACTION_SPACES[space_name]
    kwargs = {**SMALL, "seed": 5}
    ppo = PPO("MlpPolicy", ToyEnv(space), **kwargs).learn(256)
    ppd = PPD("MlpPolicy", ToyEnv(space), teacher=toy_teacher(space), distill_lambda=0.0, **kwargs).learn(256)
    assert_same_parameters(ppo, ppd)


def test_lambda_changes_the_update(cartpole_teacher):
    kwargs = {"n_steps": 128, "batch_size": 32, "n_epochs": 2, "seed": 3, "device": "cpu"}
    ppo = PPO("MlpPolicy", "CartPole-v1", **kwargs).learn(256)
    ppd = PPD("MlpPolicy", "CartPole-v1", teacher=cartpole_teacher, distill_lambda=1.0, **kwargs).learn(256)
    assert not th.equal(ppo.policy.action_net.weight, ppd.policy.action_net.weight)


def test_lambda_schedule_is_followed_and_logged(cartpole_teacher, tmp_path):
    model = PPD(
        "MlpPolicy", "CartPole-v1", teacher=cartpole_teacher, distill_lambda=Linear(2.0, 0.0), **SMALL
    )
    logger, rec = recording_logger()
    model.set_logger(logger)
    model.learn(64 * 4)
    # progress_remaining after rollouts 1..4 of 4 is 0.75, 0.5, 0.25, 0; SB3 dumps the logs
    # before each update, so the last update's values are recorded but not yet written
    assert rec.values("distill/lambda") == pytest.approx([1.5, 1.0, 0.5])
    assert model.logger.name_to_value["distill/lambda"] == 0.0
    model.save(tmp_path / "m")
    loaded = PPD.load(tmp_path / "m", teacher=cartpole_teacher)
    assert loaded.lambda_schedule == Linear(2.0, 0.0)


def test_weight_clipped_fraction_is_the_share_of_ratios_below_the_floor(cartpole_teacher, monkeypatch):
    """The logged fraction is mean over every minibatch of every epoch of mean(ρ < 1−ε),
    computed here by hand from the ratios the update itself used."""
    import ppdistill.algorithms.proximal as ppd_module  # where the PPD update is computed

    seen: list[tuple[th.Tensor, float]] = []
    real_term = ppd_module.ppd_term

    def spy(kl, ratio, clip_range, detach_ratio=False):
        seen.append((ratio.detach().clone(), clip_range))
        return real_term(kl, ratio, clip_range, detach_ratio=detach_ratio)

    monkeypatch.setattr(ppd_module, "ppd_term", spy)
    # a large step size and many epochs move the policy far from the one that collected the data
    model = PPD("MlpPolicy", "CartPole-v1", teacher=cartpole_teacher, learning_rate=0.01, clip_range=0.2,
                **{**SMALL, "batch_size": 16, "n_epochs": 10})  # fmt: skip
    model.learn(64)  # one rollout, one update: its values are recorded, not yet dumped
    assert len(seen) == 10 * (64 // 16)
    assert all(eps == pytest.approx(0.2) for _, eps in seen)
    # before the first gradient step the student is the policy that collected the data: ρ = 1
    assert th.allclose(seen[0][0], th.ones(16), atol=1e-5)
    below = [(r < 1 - eps).double().mean().item() for r, eps in seen]
    assert below[0] == 0.0
    logged = model.logger.name_to_value["distill/weight_clipped_fraction"]
    assert logged == pytest.approx(np.mean(below), rel=1e-6)
    assert logged > 0.05  # the policy did move: the equality above is not 0 == 0
    # not PPO's clip fraction |ρ − 1| > ε, which also counts ρ > 1 + ε
    outside = np.mean([((r - 1).abs() > eps).double().mean().item() for r, eps in seen])
    assert abs(logged - outside) > 0.01


def test_detach_ratio_changes_only_the_ratio_gradient(cartpole_teacher):
    """One plain SGD step on one minibatch, from the same weights and the same rollout: the two
    settings' new weights differ by exactly lr·λ·∇θ mean(KL·max(ρ, 1−ε)) with the KL held
    constant (the gradient through the ratio alone), and the loss they logged is the same."""
    from ppdistill.core.distributions import params_from_distribution
    from ppdistill.core.losses import distillation_kl

    lr, lam, eps = 0.5, 2.0, 0.2
    kwargs = {"n_steps": 64, "batch_size": 64, "n_epochs": 1, "seed": 0, "device": "cpu",
              "learning_rate": lr, "distill_lambda": lam, "clip_range": eps, "max_grad_norm": 1e9,
              "policy_kwargs": {"optimizer_class": th.optim.SGD}}  # fmt: skip
    models, starts = {}, {}
    for d in (True, False):  # one after the other: the seed also drives torch's global generator
        models[d] = PPD("MlpPolicy", "CartPole-v1", teacher=cartpole_teacher, detach_ratio=d, **kwargs)
        starts[d] = copy.deepcopy(models[d].policy)
        models[d].learn(64)
    start = starts[False]
    for (name, a), b in zip(start.state_dict().items(), starts[True].state_dict().values()):
        assert th.equal(a, b), name
    buffers = [models[d].rollout_buffer for d in (True, False)]
    for field in ("observations", "actions", "log_probs", "teacher_params"):
        assert np.array_equal(*(np.asarray(getattr(b, field)) for b in buffers)), field
    logged = [models[d].logger.name_to_value for d in (True, False)]
    assert logged[0]["distill/loss"] == logged[1]["distill/loss"]
    assert logged[0]["distill/kl"] == logged[1]["distill/kl"]

    # the ratio's part of the gradient, at the weights the update started from
    batch = next(buffers[1].get(64))
    dist = start.get_distribution(batch.observations)
    ratio = th.exp(dist.log_prob(batch.actions.long().flatten()) - batch.old_log_prob)
    kl = distillation_kl(models[False].action_space, batch.teacher_params, params_from_distribution(dist))
    ratio_part = lam * (kl.detach() * th.clamp(ratio, min=1 - eps)).mean()
    grads = th.autograd.grad(ratio_part, list(start.parameters()), allow_unused=True)

    after = {d: dict(models[d].policy.named_parameters()) for d in (True, False)}
    largest = 0.0
    for (name, _), g in zip(start.named_parameters(), grads):
        want = th.zeros_like(after[True][name]) if g is None else -lr * g
        got = after[False][name].detach() - after[True][name].detach()
        assert th.allclose(got, want, rtol=0, atol=1e-6), name  # float32 weights: errors ~1e-7
        largest = max(largest, float(want.abs().max()))
    assert largest > 1e-2  # the ratio's gradient is not negligible: the check above can fail


def test_negative_lambda_is_refused(cartpole_teacher):
    with pytest.raises(ValueError, match="distill_lambda"):
        PPD("MlpPolicy", "CartPole-v1", teacher=cartpole_teacher, distill_lambda=-1.0)


def test_student_inherits_teacher_normalization_inside_its_network():
    teacher = load_teacher(zoo_path("ppo/Hopper-v3_1"))
    model = PPD("MlpPolicy", "Hopper-v5", teacher=teacher, **SMALL)
    extractor = model.policy.features_extractor
    assert type(extractor).__name__ == "NormalizedFlattenExtractor"
    assert th.allclose(extractor.normalizer.mean, teacher.obs_normalizer.mean)
    raw = np.full((1, 11), 5.0, dtype=np.float32)
    with th.no_grad():
        feats = extractor(th.as_tensor(raw))
    assert th.allclose(feats, teacher.obs_normalizer(th.as_tensor(raw)))
    plain = PPD("MlpPolicy", "Hopper-v5", teacher=teacher, student_obs_norm="none", **SMALL)
    assert type(plain.policy.features_extractor).__name__ == "FlattenExtractor"


def test_teacher_is_not_run_when_lambda_is_zero(cartpole_teacher):
    from ppdistill.core.schedules import DistillThenFinetune

    teacher = load_teacher(zoo_path("ppo/CartPole-v1_1"))
    model = PPD(
        "MlpPolicy", "CartPole-v1", teacher=teacher, distill_lambda=DistillThenFinetune(1.0, 0.5), **SMALL
    )
    logger, rec = recording_logger()
    model.set_logger(logger)
    model.learn(64 * 4)
    # progress after rollouts 1..4: 0.75, 0.5, 0.25, 0 -> distillation for the first one only
    # (1 - progress < 0.5 holds at 0.75 only)
    assert teacher.n_calls == 1
    assert rec.values("distill/lambda") == [1.0, 0.0, 0.0]
    assert len(rec.values("distill/kl")) == 1


def test_performance_based_lambda_reads_the_students_returns(cartpole_teacher):
    from ppdistill.core.schedules import PerformanceBased

    schedule = PerformanceBased(teacher_return=500.0, random_return=0.0)
    model = PPD("MlpPolicy", "CartPole-v1", teacher=cartpole_teacher, distill_lambda=schedule, **SMALL)
    model.learn(64 * 8)
    returns = [e["r"] for e in model.ep_info_buffer]
    assert model.lambda_schedule.last == pytest.approx(1 - sum(returns) / len(returns) / 500.0)


@pytest.mark.parametrize("space_name", list(ACTION_SPACES))
def test_the_papers_form_still_distills_on_every_action_space(space_name):
    """detach_ratio=False, log_std_from_teacher=False (the paper's exact form) stays a working option."""
    from ..toy import mean_kl

    space = ACTION_SPACES[space_name]
    teacher = toy_teacher(space)
    model = PPD("MlpPolicy", ToyEnv(space), teacher=teacher, learning_rate=3e-3,
                detach_ratio=False, log_std_from_teacher=False, **SMALL)  # fmt: skip
    before = mean_kl(model, teacher)
    model.learn(3072 if space_name == "box" else 1024)
    assert mean_kl(model, teacher) < 0.6 * before


def test_gaussian_student_starts_at_the_teachers_std_by_default():
    teacher = toy_teacher(ACTION_SPACES["box"])  # log-stds in [-1.3, -1.1], state-dependent
    d = ACTION_SPACES["box"].shape[0]
    # learning rate 0: what the student holds after learn() is what the first rollout set
    model = PPD("MlpPolicy", ToyEnv(ACTION_SPACES["box"]), teacher=teacher, learning_rate=0.0, **SMALL)
    assert th.equal(model.policy.log_std, th.zeros(d))
    model.learn(128)
    log_std = model.policy.log_std.detach()
    assert ((log_std > -1.3) & (log_std < -1.1)).all(), log_std
    paper = PPD("MlpPolicy", ToyEnv(ACTION_SPACES["box"]), teacher=teacher, learning_rate=0.0,
                log_std_from_teacher=False, **SMALL)  # fmt: skip
    assert th.equal(paper.learn(128).policy.log_std, th.zeros(d))


def _zero_then_one(progress_remaining: float) -> float:
    return 0.0 if progress_remaining > 0.6 else 1.0


def test_std_is_never_reset_once_training_started_without_the_teacher():
    """λ = 0 on the first rollout (then > 0): the std the student trained is kept."""
    teacher = toy_teacher(ACTION_SPACES["box"])
    model = PPD("MlpPolicy", ToyEnv(ACTION_SPACES["box"]), teacher=teacher, learning_rate=0.0,
                distill_lambda=_zero_then_one, **SMALL)  # fmt: skip
    model.learn(256)
    assert th.equal(model.policy.log_std, th.zeros(ACTION_SPACES["box"].shape[0]))
