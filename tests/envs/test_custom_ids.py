"""``--env module:EnvId``: an environment of one's own, registered by its module."""

from __future__ import annotations

import pytest

from ppdistill.cli.main import main
from ppdistill.core.errors import PPDistillError
from ppdistill.envs import canonical_env_id, make_vec_env

from ..conftest import zoo_path

MODULE = """
import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv

gym.register("MyCartPole-v0", entry_point=CartPoleEnv, max_episode_steps=50)
"""


@pytest.fixture
def my_module(tmp_path, monkeypatch):
    (tmp_path / "my_envs.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_envs"


def test_module_colon_id_imports_the_module_and_builds_the_env(my_module):
    assert canonical_env_id(f"{my_module}:MyCartPole-v0") == "MyCartPole-v0"
    env = make_vec_env(f"{my_module}:MyCartPole-v0", n_envs=1, seed=0)
    assert env.observation_space.shape == (4,)
    env.close()
    with pytest.raises(PPDistillError, match="module 'no_such_module' cannot be imported"):
        canonical_env_id("no_such_module:X-v0")


def test_the_cli_evaluates_a_teacher_on_an_env_of_ones_own(my_module, capsys):
    env = f"{my_module}:MyCartPole-v0"
    code = main(["evaluate", "--model", str(zoo_path("ppo/CartPole-v1_1")), "--env", env, "--episodes", "2"])
    assert code == 0 and "mean 50.00" in capsys.readouterr().out  # the teacher balances to the 50-step limit
