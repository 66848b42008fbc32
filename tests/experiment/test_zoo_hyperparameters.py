"""The RL Zoo's tuned PPO hyperparameters read from a run's config.yml (PPO from scratch's)."""

from __future__ import annotations

import pytest

from ppdistill.experiment.config import ConfigError
from ppdistill.experiment.spec import RunSpec
from ppdistill.experiment.zoo_hyperparameters import zoo_ppo_hyperparameters
from ppdistill.teachers.zoo_folder import locate

from ..conftest import zoo_path


def test_every_zoo_ppo_config_becomes_valid_ppo_hyperparameters():
    for run in ("CartPole-v1_1", "Acrobot-v1_1", "LunarLander-v2_1", "HalfCheetah-v3_1", "Hopper-v3_1"):
        hp = zoo_ppo_hyperparameters(locate(zoo_path(f"ppo/{run}")).config)
        RunSpec("CartPole-v1", "ppo", "t.zip", 1000, hp=hp)  # checks every key and value


def test_schedules_normalization_and_policy_kwargs_are_read_without_running_python():
    hp = zoo_ppo_hyperparameters(
        {
            "learning_rate": "lin_0.001",
            "clip_range": "lin_0.2",
            "normalize": "dict(norm_obs=True, norm_reward=False)",
            "policy_kwargs": "dict(log_std_init=-2, activation_fn=nn.Tanh, net_arch=[dict(pi=[8], vf=[8])])",
            "n_timesteps": 1e6,
            "policy": "MlpPolicy",
        }
    )
    assert hp == {
        "learning_rate": "lin_0.001",
        "clip_range": "lin_0.2",
        "normalize_reward": False,
        "policy_kwargs": {"log_std_init": -2, "activation_fn": "tanh"},  # the student's size stays
    }


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"buffer_size": 1000}, "'buffer_size' is not a hyperparameter of SB3's PPO"),
        ({"policy_kwargs": "dict(log_std_init=__import__('os').system('x'))"}, "not a plain value"),
        ({"policy_kwargs": "os.system('x')"}, "must be dict"),
        ({"policy_kwargs": "dict(foo=1)"}, "'foo' is not an argument"),
        ({}, "holds no hyperparameters"),
    ],
)
def test_what_cannot_be_read_safely_is_refused(config, message):
    with pytest.raises(ConfigError, match=message):
        zoo_ppo_hyperparameters(config)
