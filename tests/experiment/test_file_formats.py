"""Files written by ppdistill 0.1 (the flat-module layout) still load and resume.

``tests/data/layout-0.1`` was made by its ``make.py`` with ppdistill 0.1: a PPD student whose
zip names classes by their 0.1 module paths (the λ schedule, the normalizing extractor, the
rollout buffer), an unfinished run's checkpoint, and the student of the same run left to finish.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch as th

from ppdistill import PPD, load_teacher
from ppdistill.core.schedules import Linear
from ppdistill.experiment.runner import resume
from ppdistill.networks.normalization import NormalizedFlattenExtractor

from ..conftest import zoo_path
from ..helpers import assert_same_tensors, weights

DATA = Path(__file__).resolve().parents[1] / "data" / "layout-0.1"
TWIN = DATA / "finished-run-student.zip"


def test_a_student_saved_by_0_1_loads_predicts_and_keeps_its_schedule():
    model = PPD.load(DATA / "ppd-hopper-student.zip", device="cpu")
    assert model.lambda_schedule == Linear(2.0, 0.5)
    assert isinstance(model.policy.features_extractor, NormalizedFlattenExtractor)
    assert model.teacher is None and model.teacher_info["path"].endswith("Hopper-v3.zip")
    action, _ = model.predict(np.zeros(11, dtype=np.float32), deterministic=True)
    assert action.shape == (3,)
    # and as a teacher (export and compare read students this way)
    agent = load_teacher(DATA / "ppd-hopper-student.zip", env_id="Hopper-v5")
    assert agent.action_space.shape == (3,)


def resume_the_0_1_run(tmp_path):
    out = tmp_path / "run"
    shutil.copytree(DATA / "unfinished-run", out)
    record = out / "checkpoint" / "run.json"
    saved = json.loads(record.read_text())
    saved["spec"]["teacher"] = str(zoo_path("ppo/CartPole-v1_1"))  # made on another machine
    record.write_text(json.dumps(saved))
    return out, resume(out)


def test_an_unfinished_run_of_0_1_resumes_to_the_weights_of_its_uninterrupted_twin(tmp_path):
    out, result = resume_the_0_1_run(tmp_path)
    assert result["env_steps"] == 1024
    assert all(r["exact"] for r in result["resumed"])
    # The twin was trained on another CPU: equal to float noise, not bit for bit (see the
    # helper). Measured: 3.3e-7 of a tensor's scale on one machine, 0 on the one that made it.
    assert_same_tensors(weights(out / "student.zip"), weights(TWIN), rtol=1e-4)


@pytest.mark.parametrize("lost", ["optimizer", "torch_generator"])
def test_the_float_noise_tolerance_still_tells_a_wrong_resume(tmp_path, monkeypatch, lost):
    """A resume that forgets Adam's moments or torch's generator state lands far outside 1e-4
    (measured: about 2 of a tensor's scale)."""
    if lost == "optimizer":
        monkeypatch.setattr(th.optim.Optimizer, "load_state_dict", lambda self, state: None)
    else:
        monkeypatch.setattr(th, "set_rng_state", lambda state: None)
    out, _ = resume_the_0_1_run(tmp_path)
    with pytest.raises(AssertionError, match="differs by"):
        assert_same_tensors(weights(out / "student.zip"), weights(TWIN), rtol=1e-4)
