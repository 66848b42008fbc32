"""Learning tests: the zoo's teachers, small budgets, thresholds set from measured runs.

Each test states its counterfactual: what PPO from scratch reaches with the same budget and
settings (measured on this machine, seed 0, 20 deterministic evaluation episodes).
"""

from __future__ import annotations

import pytest
from stable_baselines3.common.env_util import make_vec_env

from ppdistill import PPD, StudentDistill, TeacherDistill, evaluate, load_teacher

from ..conftest import zoo_path

pytestmark = pytest.mark.slow

SMALL_STUDENT = {"net_arch": [32, 16]}  # about a quarter of the (64, 64) teacher's actor
PAPER_PPD = {"n_steps": 64, "batch_size": 128, "n_epochs": 4, "gamma": 0.999, "gae_lambda": 0.9}


def score(model, env_id):
    return evaluate(model, env_id, n_episodes=20, deterministic=True, seed=100).mean


@pytest.mark.parametrize(
    ("algo", "n_envs", "budget", "kwargs"),
    [
        (PPD, 8, 20_000, PAPER_PPD),
        (StudentDistill, 1, 20_000, {}),
        (TeacherDistill, 1, 40_000, {}),
    ],
    ids=["ppd", "student-distill", "teacher-distill"],
)
def test_cartpole_teacher_into_smaller_student(algo, n_envs, budget, kwargs):
    """Each method copies the zoo's PPO CartPole teacher (500) into a (32, 16) student: ≥ 95%.

    Counterfactual: PPO from scratch with PPD's settings and student scores 77 at 10k steps
    and 473 at 20k (below 475). CartPole is easy, so this test guards correctness across the
    three methods more than it shows a speed-up; Pendulum below shows one.
    Measured: PPD 500 at 20k; student-distill 500 at 10k; teacher-distill 464 at 20k, 500 at 30k.
    """
    teacher = load_teacher(zoo_path("ppo/CartPole-v1_1"))
    teacher_score = score(teacher, "CartPole-v1")
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=0)
    model = algo(
        "MlpPolicy", env, teacher=teacher, seed=0, policy_kwargs=SMALL_STUDENT, device="cpu", **kwargs
    )
    model.learn(budget)
    assert score(model, "CartPole-v1") >= 0.95 * teacher_score


def test_pendulum_ppd_reaches_the_teacher_quickly():
    """PPD from the zoo's gSDE PPO Pendulum teacher reaches ≥ 90% of its score in 12k steps.

    Score normalized between a random policy (-1250) and the teacher (about -206):
    (R - R_random) / (R_teacher - R_random). Measured: PPD -205 at 12k steps (1.00).
    Counterfactual: PPO from scratch with the same (zoo) settings: -951 at 12k (0.29),
    -225 at 25k.
    """
    teacher = load_teacher(zoo_path("ppo/Pendulum-v1_1"))
    teacher_score = score(teacher, "Pendulum-v1")
    random_score = -1250.0
    env = make_vec_env("Pendulum-v1", n_envs=4, seed=0)
    model = PPD(
        "MlpPolicy",
        env,
        teacher=teacher,
        n_steps=1024,
        n_epochs=10,
        gamma=0.9,
        gae_lambda=0.95,
        learning_rate=1e-3,
        use_sde=True,
        sde_sample_freq=4,
        seed=0,
        device="cpu",
    )
    model.learn(12_288)
    normalized = (score(model, "Pendulum-v1") - random_score) / (teacher_score - random_score)
    assert normalized >= 0.9


def test_dqn_teacher_into_ppd_student():
    """The zoo's DQN CartPole teacher (softmax(Q/0.01): nearly greedy) distills into a PPD student.

    With SB3's PPO defaults (rollouts of 2048 steps, 10 epochs of 64-sample minibatches) the
    (32, 16) student scored 500 at 30k steps on seeds 0 and 1. With the paper's n_steps 64 × 8
    envs and 4 epochs it only reached 180-300 at 50k: the greedy teacher's action flips across
    nearby states and the student needs many KL steps per sample to follow it (issue 6 studies
    τ). Counterfactual: PPO from scratch with the same defaults and student: 336 at 30k steps,
    465 at 40k, 500 at 50k (seed 0).
    """
    teacher = load_teacher(zoo_path("dqn/CartPole-v1_1"))
    env = make_vec_env("CartPole-v1", n_envs=1, seed=0)
    model = PPD("MlpPolicy", env, teacher=teacher, seed=0, policy_kwargs=SMALL_STUDENT, device="cpu")
    model.learn(30_000)
    assert score(model, "CartPole-v1") >= 0.95 * score(teacher, "CartPole-v1")
