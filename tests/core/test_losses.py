"""Every KL against a hand computation, on all four action spaces, in both directions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from ppdistill.core.losses import action_agreement, distillation_kl, kl_divergence, ppd_term


def softmax(x):
    e = np.exp(np.asarray(x, dtype=np.float64) - np.max(x))
    return e / e.sum()


def cat_kl(p, q):
    return float(sum(pi * math.log(pi / qi) for pi, qi in zip(p, q)))


def bern_kl(p, q):
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def gauss_kl(mu_p, s_p, mu_q, s_q):
    return math.log(s_q / s_p) + (s_p**2 + (mu_p - mu_q) ** 2) / (2 * s_q**2) - 0.5


def t(rows):
    return th.tensor(rows, dtype=th.float64)


def test_discrete_kl_matches_hand_computation():
    space = spaces.Discrete(3)
    a, b = [1.0, 2.0, 0.5], [0.0, -1.0, 0.3]
    p, q = softmax(a), softmax(b)
    got = kl_divergence(space, t([a]), t([b])).item()
    assert got == pytest.approx(cat_kl(p, q), rel=1e-10)
    # forward: KL(teacher ‖ student); reverse swaps the arguments
    assert distillation_kl(space, t([a]), t([b]), "forward").item() == pytest.approx(cat_kl(p, q), rel=1e-10)
    assert distillation_kl(space, t([a]), t([b]), "reverse").item() == pytest.approx(cat_kl(q, p), rel=1e-10)


def test_multidiscrete_kl_is_sum_over_components():
    space = spaces.MultiDiscrete([2, 3])
    a = [0.2, -0.4, 1.0, 0.0, -2.0]
    b = [1.5, 0.5, -0.3, 0.8, 0.1]
    want = cat_kl(softmax(a[:2]), softmax(b[:2])) + cat_kl(softmax(a[2:]), softmax(b[2:]))
    want_rev = cat_kl(softmax(b[:2]), softmax(a[:2])) + cat_kl(softmax(b[2:]), softmax(a[2:]))
    assert distillation_kl(space, t([a]), t([b]), "forward").item() == pytest.approx(want, rel=1e-10)
    assert distillation_kl(space, t([a]), t([b]), "reverse").item() == pytest.approx(want_rev, rel=1e-10)


def test_multibinary_kl_is_sum_over_bits():
    space = spaces.MultiBinary(3)
    a = [0.0, 2.0, -1.0]
    b = [1.0, -0.5, -3.0]
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    want = sum(bern_kl(sig(x), sig(y)) for x, y in zip(a, b))
    want_rev = sum(bern_kl(sig(y), sig(x)) for x, y in zip(a, b))
    assert distillation_kl(space, t([a]), t([b]), "forward").item() == pytest.approx(want, rel=1e-10)
    assert distillation_kl(space, t([a]), t([b]), "reverse").item() == pytest.approx(want_rev, rel=1e-10)


def test_box_kl_is_sum_over_dimensions_of_gaussian_kl():
    space = spaces.Box(-1, 1, (2,))
    mu_t, std_t = [0.3, -0.2], [0.5, 0.07]
    mu_s, std_s = [0.0, 0.1], [1.0, 0.2]
    teacher = t([mu_t + list(np.log(std_t))])
    student = t([mu_s + list(np.log(std_s))])
    want = sum(gauss_kl(mt, st, ms, ss) for mt, st, ms, ss in zip(mu_t, std_t, mu_s, std_s))
    want_rev = sum(gauss_kl(ms, ss, mt, st) for mt, st, ms, ss in zip(mu_t, std_t, mu_s, std_s))
    assert distillation_kl(space, teacher, student, "forward").item() == pytest.approx(want, rel=1e-10)
    assert distillation_kl(space, teacher, student, "reverse").item() == pytest.approx(want_rev, rel=1e-10)


@pytest.mark.parametrize(
    "space",
    [spaces.Discrete(4), spaces.MultiDiscrete([3, 2, 4]), spaces.MultiBinary(5), spaces.Box(-1, 1, (3,))],
    ids=["discrete", "multidiscrete", "multibinary", "box"],
)
def test_kl_agrees_with_torch_distributions_on_random_batches(space):
    from ppdistill.core.distributions import distribution_from_params, param_dim

    g = th.Generator().manual_seed(0)
    p = th.randn(16, param_dim(space), generator=g, dtype=th.float64)
    q = th.randn(16, param_dim(space), generator=g, dtype=th.float64)
    dp, dq = distribution_from_params(space, p), distribution_from_params(space, q)
    if isinstance(space, spaces.MultiDiscrete):
        want = sum(th.distributions.kl_divergence(a, b) for a, b in zip(dp.distribution, dq.distribution))
    else:
        want = th.distributions.kl_divergence(dp.distribution, dq.distribution)
        if want.dim() == 2:
            want = want.sum(-1)
    got = kl_divergence(space, p, q)
    assert got.shape == (16,)
    assert th.allclose(got, want, rtol=1e-9, atol=1e-12)
    assert th.all(got >= 0)
    assert th.allclose(kl_divergence(space, p, p), th.zeros(16, dtype=th.float64), atol=1e-12)


def test_unknown_direction_is_refused():
    with pytest.raises(ValueError, match="forward"):
        distillation_kl(spaces.Discrete(2), t([[0, 0]]), t([[0, 0]]), "sideways")  # type: ignore[arg-type]


def test_ppd_term_weights_and_clipping():
    kl = th.tensor([1.0, 2.0, 3.0])
    ratio = th.tensor([0.5, 1.0, 1.5], requires_grad=True)
    term = ppd_term(kl, ratio, clip_range=0.2)
    # max(ρ, 1−ε) = [0.8, 1.0, 1.5]
    assert term.loss.item() == pytest.approx((0.8 * 1 + 1.0 * 2 + 1.5 * 3) / 3)
    assert float(term.kl) == pytest.approx(2.0)
    assert float(term.clipped_fraction) == pytest.approx(1 / 3)
    term.loss.backward()
    # the gradient through ρ is KL/n where ρ > 1−ε, zero where the weight is held at 1−ε
    assert th.allclose(ratio.grad, th.tensor([0.0, 2 / 3, 1.0]))


def test_ppd_term_detached_ratio_passes_no_gradient_to_the_ratio():
    kl = th.tensor([1.0, 2.0], requires_grad=True)
    ratio = th.tensor([0.5, 1.5], requires_grad=True)
    term = ppd_term(kl, ratio, clip_range=0.2, detach_ratio=True)
    term.loss.backward()
    assert ratio.grad is None
    assert th.allclose(kl.grad, th.tensor([0.8, 1.5]) / 2)


def test_action_agreement_per_space():
    assert action_agreement(spaces.Discrete(3), t([[0, 1, 0], [2, 0, 0]]), t([[0, 2, 0], [0, 3, 0]])) == 0.5
    md = spaces.MultiDiscrete([2, 2])
    assert action_agreement(md, t([[1, 0, 0, 1]]), t([[1, 0, 1, 0]])) == 0.0
    assert action_agreement(spaces.MultiBinary(2), t([[1, -1], [1, 1]]), t([[2, -3], [1, -1]])) == 0.5
    box = spaces.Box(-1, 1, (2,))
    teacher = t([[0.0, 0.0, math.log(0.1), math.log(0.1)]])
    student = t([[0.05, 0.5, 0.0, 0.0]])
    assert (
        action_agreement(box, teacher, student) == 0.5
    )  # within one teacher std in the first dimension only


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_detach_ratio_removes_exactly_the_ratio_term_from_the_students_gradient(direction):
    """Student logits z carry both the KL and ρ = π_z(a)/π_old(a), as in training. By hand:
    detached, ∇_z(λ·mean(w·KL)) = λ/N·w_i·∇KL_i with w = max(ρ, 1−ε) a constant; not detached,
    the gradient adds λ/N·KL_i·∇w_i, where ∇w_i = ρ_i·(e_{a_i} − q_i) if ρ_i > 1−ε and 0 if
    the weight is held at 1−ε. The loss value is the same either way."""
    space, eps, lam = spaces.Discrete(3), 0.2, 1.5
    teacher = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [-1.0, 1.0, 3.0], [0.0, -2.0, 1.0]])
    logits = np.array([[0.1, 0.4, -0.3], [1.0, -1.0, 0.2], [0.0, 0.3, 0.6], [-0.5, 0.2, 0.9]])
    actions = np.array([0, 2, 1, 2])
    rho = np.array([0.5, 0.95, 1.3, 0.7])  # samples 0 and 3 below 1−ε = 0.8: weight held there
    p = np.stack([softmax(r) for r in teacher])
    q = np.stack([softmax(r) for r in logits])
    n = len(actions)
    idx = np.arange(n)
    old_log_prob = np.log(q[idx, actions]) - np.log(rho)  # so that ρ is the one above

    if direction == "forward":  # KL(p ‖ q): ∇_z = q − p
        kl = (p * np.log(p / q)).sum(1)
        grad_kl = q - p
    else:  # KL(q ‖ p): ∇_z = q·(log q − log p − KL)
        kl = (q * np.log(q / p)).sum(1)
        grad_kl = q * (np.log(q / p) - kl[:, None])
    w = np.maximum(rho, 1 - eps)
    grad_w = rho[:, None] * (np.eye(3)[actions] - q) * (rho > 1 - eps)[:, None]
    want_loss = lam * (w * kl).mean()
    want_detached = lam / n * w[:, None] * grad_kl
    ratio_term = lam / n * kl[:, None] * grad_w
    assert np.abs(ratio_term[[1, 2]]).min() > 1e-3  # the two settings' gradients do differ here

    grads = {}
    for detach in (True, False):
        z = t(logits.tolist()).requires_grad_(True)
        log_prob = th.log_softmax(z, -1)[th.arange(n), th.as_tensor(actions)]
        ratio = th.exp(log_prob - th.as_tensor(old_log_prob))
        kl_t = distillation_kl(space, t(teacher.tolist()), z, direction)
        loss = lam * ppd_term(kl_t, ratio, clip_range=eps, detach_ratio=detach).loss
        assert loss.item() == pytest.approx(want_loss, rel=1e-12)
        loss.backward()
        grads[detach] = z.grad.numpy()
    np.testing.assert_allclose(grads[True], want_detached, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grads[False], want_detached + ratio_term, rtol=1e-10, atol=1e-14)
