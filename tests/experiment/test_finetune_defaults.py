"""The fine-tuning PPO's settings: the RL Zoo's tuned PPO where distill.yml says so."""

from __future__ import annotations

import importlib.resources
import inspect
from pathlib import Path

import pytest
import yaml
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from ppdistill.core.schedules import Linear, Phase
from ppdistill.experiment.checkpoints import CHECKPOINT_NAME, read_checkpoint
from ppdistill.experiment.config import (
    ConfigError,
    finetune_hyperparameters,
    hyperparameters,
    run_hyperparameters,
)
from ppdistill.experiment.runner import CHECKPOINT_DIR, resume, run
from ppdistill.experiment.spec import RunSpec
from ppdistill.experiment.zoo_hyperparameters import zoo_ppo_hyperparameters

from ..helpers import Interrupt, assert_same_tensors, interrupt_after, weights

BUNDLED = Path(__file__).resolve().parents[2] / "src" / "ppdistill" / "assets" / "cartpole-teacher.zip"

# distill.yml's env id → the rl_zoo3 entry it copies
ZOO_ENTRIES = {
    "LunarLander-v3": "LunarLander-v3",
    "HalfCheetah-v5": "HalfCheetah-v4",
    "Acrobot-v1": "Acrobot-v1",
    "Hopper-v5": "Hopper-v4",
    "CartPole-v1": "CartPole-v1",
    "Pendulum-v1": "Pendulum-v1",  # its ppo section, which is the zoo's
}


@pytest.mark.parametrize(("env_id", "zoo_id"), sorted(ZOO_ENTRIES.items()))
def test_finetune_settings_are_the_rl_zoos_tuned_ppo(env_id, zoo_id):
    text = importlib.resources.files("rl_zoo3").joinpath("hyperparams/ppo.yml").read_text()
    zoo = zoo_ppo_hyperparameters(yaml.safe_load(text)[zoo_id], f"rl_zoo3's ppo.yml ({zoo_id})")
    zoo.pop("policy_kwargs", None)  # the student's network is the distilled one
    settings = finetune_hyperparameters(env_id)
    defaults = {k: p.default for k, p in inspect.signature(PPO.__init__).parameters.items()}
    # a key the zoo writes out at SB3's default may be left to the default (Pendulum's clip_range)
    assert {k: settings.get(k, defaults.get(k)) for k in zoo} == zoo
    # every other key is SB3's PPO default, as it is for the zoo
    assert {k: v for k, v in settings.items() if k not in zoo} == {
        k: defaults[k] for k in settings if k not in zoo
    }
    # and a pipeline gets them (its distillation phase takes their gamma and GAE)
    hp = run_hyperparameters(env_id, "student-distill", {"then_finetune": 1000})
    assert hp["finetune_hp"] == settings
    assert (hp["gamma"], hp["gae_lambda"]) == (settings["gamma"], settings["gae_lambda"])
    assert hp.get("normalize_reward") == settings.get("normalize_reward")


def test_envs_without_an_entry_fine_tune_with_the_ppo_section():
    assert finetune_hyperparameters("MountainCar-v0") == hyperparameters("MountainCar-v0", "ppo")


def test_a_misspelt_section_is_refused(tmp_path):
    config = tmp_path / "hp.yml"
    config.write_text("CartPole-v1:\n  finetunes: {n_steps: 64}\n")
    with pytest.raises(ConfigError, match="entry CartPole-v1 has a section 'finetunes'; sections are ppd, "):
        hyperparameters("CartPole-v1", "ppo", config)


def small_pipeline(then_finetune: int, **finetune_hp: object) -> RunSpec:
    """A CartPole student-distill of 128 env steps, then ``then_finetune`` of PPO (2 x 64 rollouts)."""
    hp = run_hyperparameters(
        "CartPole-v1",
        "student-distill",
        {"n_envs": 2, "then_finetune": then_finetune,
         "finetune_hp": {"n_envs": 2, "n_steps": 64, "batch_size": 64, **finetune_hp}},
    )  # fmt: skip
    return RunSpec(
        env_id="CartPole-v1", method="student-distill", teacher=str(BUNDLED), timesteps=128,
        student="32,16", seed=0, hp=hp, eval_freq=128, eval_episodes=1, final_episodes=1,
    )  # fmt: skip


def test_fine_tuning_normalizes_rewards_when_its_settings_say_so_and_distilling_too():
    seen = []
    spec = small_pipeline(128, normalize_reward=True, gamma=0.9)
    run(spec, on_model=lambda model: seen.append(model.get_vec_normalize_env()))
    distilled, tuned = seen
    # the distillation phase's critic learns on the fine-tuning's reward scale (and discount)
    for env in (distilled, tuned):
        assert isinstance(env, VecNormalize) and env.norm_reward and not env.norm_obs and env.gamma == 0.9
    assert tuned is not distilled and tuned.ret_rms.count > 1  # fresh envs, which saw the returns


def test_the_fine_tunings_lin_schedules_start_at_the_switch():
    # rl_zoo3's lin_X falls from X over the zoo's own training: here over the fine-tuning phase,
    # whose step counter (and SB3's progress) continues the distillation's
    seen: list[object] = []
    run(small_pipeline(384, learning_rate="lin_0.001", clip_range="lin_0.2"), on_model=seen.append)
    tuned = seen[-1]
    assert isinstance(tuned, PPO)
    at_switch, half_way = 1.0 - 128 / 512, 1.0 - (128 + 192) / 512
    assert tuned.lr_schedule(at_switch) == pytest.approx(1e-3)
    assert tuned.lr_schedule(half_way) == pytest.approx(5e-4)
    assert tuned.clip_range(at_switch) == pytest.approx(0.2) and tuned.clip_range(0.0) == 0.0
    # the model's own attribute, which its zip pickles: a loaded or resumed model keeps the phase
    assert tuned.learning_rate == Phase(Linear(1e-3), share=384 / 512)


@pytest.mark.parametrize("env_id", ["MinAtar/Breakout-v1", "MinAtar/SpaceInvaders-v1"])
def test_minatar_fine_tunes_with_its_teachers_training_settings(env_id):
    text = importlib.resources.files("ppdistill").joinpath("configs/teachers.yml").read_text()
    trained = dict(yaml.safe_load(text)[env_id]["ppo"])
    trained.pop("timesteps")  # the budget is the pipeline's
    settings = finetune_hyperparameters(env_id)
    assert {k: settings[k] for k in trained} == trained


def test_a_fine_tuning_with_normalized_rewards_resumes_bit_identically(tmp_path):
    hp = run_hyperparameters(
        "CartPole-v1",
        "student-distill",
        {"n_envs": 2, "then_finetune": 512, "finetune_hp": {
            "n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 2, "normalize_reward": True}},
    )  # fmt: skip
    # CartPole's fine-tuning (the zoo's) runs lin_ schedules over its phase: the resumed model's
    # are rebuilt the same (a resume that ran them over the whole run fails the tensors below)
    assert (hp["finetune_hp"]["learning_rate"], hp["finetune_hp"]["clip_range"]) == ("lin_0.001", "lin_0.2")
    assert hp["normalize_reward"] is True  # the distillation phase's critic learns on the same scale
    spec = RunSpec(
        env_id="CartPole-v1", method="student-distill", teacher=str(BUNDLED), timesteps=512,
        student="32,16", seed=2, hp=hp, eval_freq=256, eval_episodes=2, final_episodes=3,
    )  # fmt: skip
    whole = run(spec, out=tmp_path / "whole", checkpoint_freq=200)
    with pytest.raises(Interrupt):
        run(spec, out=tmp_path / "cut", checkpoint_freq=200, on_model=interrupt_after(2, only=PPO))
    saved = read_checkpoint(tmp_path / "cut" / CHECKPOINT_DIR / CHECKPOINT_NAME)
    assert 512 < saved.num_timesteps < 1024 and saved.state["vecnormalize"]["ret_rms"]["count"] > 1
    resumed = resume(tmp_path / "cut")
    assert resumed["resumed"][0]["exact"] is True
    assert_same_tensors(
        weights(tmp_path / "whole" / "student.zip"), weights(tmp_path / "cut" / "student.zip")
    )
    assert resumed["score"] == whole["score"]
