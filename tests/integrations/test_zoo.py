"""The RL Baselines3 Zoo runs PPD with the teacher given as a hyperparameter (extra [zoo])."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from ppdistill import PPD
from ppdistill.integrations.zoo import main

from ..conftest import zoo_path


def zoo_train(tmp_path, hyperparams: dict, *args):
    (tmp_path / "hyperparams.yml").write_text(yaml.safe_dump({"CartPole-v1": hyperparams}))
    return subprocess.run(
        [sys.executable, "-m", "ppdistill.integrations.zoo", "train", "--algo", "ppd", "--env", "CartPole-v1",
         "-conf", "hyperparams.yml", "-f", "logs", "--eval-freq", "-1", "--seed", "3", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip


SMALL = {
    "n_timesteps": 384,
    "policy": "MlpPolicy",
    "n_envs": 2,
    "n_steps": 64,
    "batch_size": 64,
    "n_epochs": 2,
    "distill_lambda": 2.0,
    "policy_kwargs": "dict(net_arch=[32, 16])",
}


@pytest.mark.slow
def test_zoo_trains_ppd_from_a_teacher_hyperparameter(tmp_path):
    pytest.importorskip("rl_zoo3", reason="needs the [zoo] extra")
    teacher = zoo_path("ppo/CartPole-v1_1")
    proc = zoo_train(tmp_path, {**SMALL, "teacher": str(teacher)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "logs" / "ppd" / "CartPole-v1_1"
    student = PPD.load(run / "CartPole-v1.zip", device="cpu")
    assert student.num_timesteps >= 384
    assert student.distill_lambda == 2.0
    assert student.policy.net_arch == [32, 16]
    assert student.teacher_info["path"] == str((teacher / "CartPole-v1.zip").resolve())
    assert "distill/" in proc.stdout and "kl" in proc.stdout  # PPD's own metrics reach the zoo's logger
    saved = yaml.load((run / "CartPole-v1" / "config.yml").read_text(), Loader=yaml.UnsafeLoader)
    assert dict(saved)["teacher"] == str(teacher)


@pytest.mark.slow
def test_zoo_bad_teacher_is_one_line(tmp_path):
    pytest.importorskip("rl_zoo3", reason="needs the [zoo] extra")
    proc = zoo_train(tmp_path, {**SMALL, "teacher": "missing/teacher.zip"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("ppdistill: error:") and "does not exist" in lines[-1]
    assert "Traceback" not in proc.stderr


def test_zoo_needs_a_command_and_a_config(capsys):
    assert main([]) == 2
    assert "give a command: train" in capsys.readouterr().err
    assert main(["train", "--algo", "ppd", "--env", "CartPole-v1"]) == 2
    assert "-conf hyperparams.yml" in capsys.readouterr().err
