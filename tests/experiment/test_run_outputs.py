"""A run never loses a finished result, never writes into its teacher's folder, and reports
scores that mean something."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from ppdistill.core.errors import PPDistillError
from ppdistill.experiment.config import hyperparameters
from ppdistill.experiment.runner import run
from ppdistill.experiment.spec import RunSpec

from ..conftest import zoo_path


def spec(method="ppd", env="CartPole-v1", teacher="ppo/CartPole-v1_1", timesteps=256, **hp):
    settings = hyperparameters(env, method)
    settings.update({"n_envs": 1, "n_steps": 64, "batch_size": 64, **hp})
    return RunSpec(env, method, str(zoo_path(teacher)), timesteps, student="8,8", hp=settings,
                   eval_episodes=1, final_episodes=2)  # fmt: skip


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def test_a_finished_run_is_replaced_only_with_force_and_leaves_nothing_of_the_old_one(tmp_path):
    out = tmp_path / "run"
    finetune = {"then_finetune": 64, "finetune_hp": {"n_steps": 64, "batch_size": 64}}
    run(spec("student-distill", **finetune), out=out, checkpoint_freq=0)
    assert (out / "distilled.zip").is_file()
    with zipfile.ZipFile(out / "student.zip") as archive:  # the fine-tuned PPO knows its teacher
        assert "teacher_info" in json.loads(archive.read("data"))
    before = snapshot(out)
    with pytest.raises(PPDistillError, match="holds a finished run"):
        run(spec("ppo"), out=out, checkpoint_freq=0)
    assert snapshot(out) == before
    run(spec("ppo"), out=out, checkpoint_freq=0, force=True)
    assert json.loads((out / "results.json").read_text())["spec"]["method"] == "ppo"
    assert not (out / "distilled.zip").exists()  # the old pipeline's student is gone with it
    assert not (out / ".ppdistill.lock").exists()


@pytest.mark.parametrize("inside", ["run folder", "side folder", "below it"])
def test_the_teachers_own_folder_is_refused_and_left_alone(tmp_path, inside):
    teacher = tmp_path / "CartPole-v1_1"
    shutil.copytree(zoo_path("ppo/CartPole-v1_1"), teacher)
    before = snapshot(teacher)
    out = {"run folder": teacher, "side folder": teacher / "CartPole-v1", "below it": teacher / "runs" / "x"}[
        inside
    ]
    teacher_ref = teacher if inside != "side folder" else teacher / "CartPole-v1.zip"
    run_spec = spec()
    run_spec.teacher = str(teacher_ref)
    with pytest.raises(PPDistillError, match="inside the teacher's folder"):
        run(run_spec, out=out, checkpoint_freq=0)
    assert snapshot(teacher) == before


def test_results_give_a_ratio_only_where_it_is_one_and_always_the_normalized_score(tmp_path):
    cartpole = run(spec(), checkpoint_freq=0)
    assert cartpole["ratio"] == pytest.approx(cartpole["score"] / cartpole["teacher_score"])
    pendulum = run(spec("ppd", "Pendulum-v1", "ppo/Pendulum-v1_1"), checkpoint_freq=0)
    assert pendulum["teacher_score"] < 0 and pendulum["ratio"] is None  # not "6.62"
    for r in (cartpole, pendulum):
        expected = (r["score"] - r["random_score"]) / (r["teacher_score"] - r["random_score"])
        assert r["normalized_score"] == pytest.approx(expected)


def test_config_yml_records_the_evaluation_interval_the_run_used(tmp_path):
    out = tmp_path / "run"
    run(spec(timesteps=640), out=out, checkpoint_freq=0)  # no eval_freq given: a tenth of the budget
    config = yaml.safe_load((out / "config.yml").read_text())
    curve = json.loads((out / "results.json").read_text())["curve"]
    assert config["eval_freq"] == 64
    assert [row["timesteps"] for row in curve][:3] == [0, 64, 128]


def test_results_name_the_shipped_defaults_they_were_made_with():
    result = run(spec(timesteps=64), checkpoint_freq=0)
    configs = Path(__file__).resolve().parents[2] / "src" / "ppdistill" / "configs"
    shipped = (configs / "distill.yml").read_bytes()
    assert result["defaults_sha256"] == hashlib.sha256(shipped).hexdigest()
