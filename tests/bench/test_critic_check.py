"""benchmarks/critic_check.py: a critic's saturation and explained variance, measured."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch as th
from stable_baselines3 import PPO

from ..helpers import benchmark_script


def script():
    return benchmark_script("critic_check")


def _measure(capsys, path: Path) -> tuple[float, list[float]]:
    script().main([str(path), "CartPole-v1", "--gamma", "0.98", "--episodes", "2"])
    out = capsys.readouterr().out
    value_std = float(re.search(r"critic's value: +mean [-\d.]+, std ([\d.]+)", out).group(1))
    layers = [float(v) for v in out.rsplit("by critic layer: ", 1)[1].split(", ")]
    return value_std, layers


def test_a_fresh_critic_is_not_saturated_and_one_pushed_to_the_tanh_bounds_is(tmp_path, capsys):
    model = PPO("MlpPolicy", "CartPole-v1", policy_kwargs={"net_arch": [16, 16]}, seed=0)
    model.save(tmp_path / "fresh.zip")
    fresh_std, fresh_layers = _measure(capsys, tmp_path / "fresh.zip")
    assert len(fresh_layers) == 2 and max(fresh_layers) < 0.5
    with th.no_grad():  # large weights into the second layer: its units sit at ±1 whatever the state
        layer = model.policy.mlp_extractor.value_net[2]
        layer.weight.zero_()
        layer.bias.copy_(50.0 * th.sign(th.randn(layer.bias.shape)))
    model.save(tmp_path / "saturated.zip")
    saturated_std, saturated_layers = _measure(capsys, tmp_path / "saturated.zip")
    assert saturated_layers[1] == 1.0 and saturated_layers[0] == fresh_layers[0]
    assert saturated_std < 1e-6 < fresh_std  # its value no longer depends on the state
    with th.no_grad():  # ±1.5 before the tanh is 0.905 after it: not saturated (read after the tanh)
        layer.bias.copy_(1.5 * th.sign(layer.bias))
    model.save(tmp_path / "steep.zip")
    assert _measure(capsys, tmp_path / "steep.zip")[1][1] == 0.0


def test_discounted_returns_by_hand():
    assert script().discounted_returns([1.0, 1.0, 1.0], 0.5) == [1.75, 1.5, 1.0]


def test_a_student_that_sees_another_view_is_refused(tmp_path):
    model = PPO("MlpPolicy", "CartPole-v1", seed=0)
    model.env_recipe = {"env_id": "CartPole-v1", "student_obs": "positions"}
    model.save(tmp_path / "view.zip")
    with pytest.raises(SystemExit, match="sees another view of CartPole-v1"):
        script().main([str(tmp_path / "view.zip"), "CartPole-v1", "--gamma", "0.98"])
