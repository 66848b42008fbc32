"""`distill --resume`: a run killed with SIGKILL resumes, losing one checkpoint interval at most."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import torch as th

from ppdistill import PPD
from ppdistill.experiment.checkpoints import CHECKPOINT_NAME, read_checkpoint
from ppdistill.experiment.runner import CHECKPOINT_DIR

from ..conftest import zoo_path
from ..helpers import CARTPOLE, assert_clean_error, distill_args, edit_weights, ppdistill

FREQ = 512
ROLLOUT = 64 * 2  # n_steps x n_envs
BUDGET = 4096


@pytest.mark.slow
def test_sigkill_then_resume(tmp_path):
    out = tmp_path / "out"
    log = tmp_path / "stdout.txt"
    args = [
        "distill", "--teacher", zoo_path(CARTPOLE), "--env", "CartPole-v1", "--timesteps", BUDGET,
        "--hp", "n_envs=2", "--hp", "n_steps=64", "--hp", "batch_size=64", "--checkpoint-freq", FREQ,
        "--eval-freq", 2048, "--eval-episodes", 2, "--final-episodes", 3, "--no-progress", "-v", "--out", out,
    ]  # fmt: skip
    checkpoint = out / CHECKPOINT_DIR / CHECKPOINT_NAME
    with log.open("w") as stdout:
        child = subprocess.Popen(
            [sys.executable, "-m", "ppdistill.cli", *map(str, args)],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore"},
        )
        try:
            deadline = time.monotonic() + 300
            # Reading the checkpoint while it is being replaced must always find a whole one.
            while not (checkpoint.is_file() and read_checkpoint(checkpoint).num_timesteps >= 2 * FREQ):
                assert child.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "no checkpoint after 5 minutes"
                time.sleep(0.05)
            time.sleep(0.7)  # kill somewhere between two checkpoints
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    assert child.returncode == -signal.SIGKILL

    # What was lost: the steps done after the checkpoint that survived.
    logged = [int(n) for n in re.findall(r"total_timesteps\s*\|\s*(\d+)", log.read_text())]
    saved = read_checkpoint(checkpoint).num_timesteps
    assert logged and saved >= 2 * FREQ
    assert max(logged) - saved <= FREQ + ROLLOUT  # one interval (rounded to a rollout) at most
    assert not (out / "student.zip").exists()

    proc = ppdistill("distill", "--resume", out, "--no-progress")
    assert "resumed" in proc.stdout
    # A valid output folder: the final files, no checkpoint, no temporary files left anywhere.
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["student.zip", "eval.csv", "learning_curve.png", "results.json", "config.yml"]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "stdout.txt"]
    result = json.loads((out / "results.json").read_text())
    assert result["env_steps"] == BUDGET
    assert result["resumed"] == [{"from_step": saved, "exact": True}]
    assert [r["timesteps"] for r in result["curve"]] == [0, 2048, BUDGET]
    with (out / "eval.csv").open() as f:
        assert [int(row["timesteps"]) for row in csv.DictReader(f)] == [0, 2048, BUDGET]
    student = PPD.load(out / "student.zip", device="cpu")
    assert student.num_timesteps == BUDGET
    with zipfile.ZipFile(out / "student.zip") as z:
        state = th.load(io.BytesIO(z.read("policy.pth")), weights_only=True)
    assert all(th.isfinite(t).all() for t in state.values())


def test_resume_errors_are_one_line(tmp_path):
    # nothing to resume
    assert_clean_error(ppdistill("distill", "--resume", tmp_path, check=False), "no unfinished run")
    # --resume takes the run from the folder: other run options are refused
    proc = ppdistill("distill", "--resume", tmp_path, "--env", "CartPole-v1", check=False)
    assert_clean_error(proc, "drop --env")
    options = ("--finetune-keep-better", 5, "--lambda-schedule", "linear")
    proc = ppdistill("distill", "--resume", tmp_path, *options, check=False)
    assert_clean_error(proc, "drop --lambda-schedule, --finetune-keep-better")
    # without --resume the run options are required
    assert_clean_error(ppdistill("distill", "--env", "CartPole-v1", check=False), "required", "--teacher")


def test_a_new_run_does_not_overwrite_an_unfinished_one(tmp_path):
    out = tmp_path / "out"
    (out / CHECKPOINT_DIR).mkdir(parents=True)
    (out / CHECKPOINT_DIR / "run.json").write_text("{}")
    proc = ppdistill(*distill_args(tmp_path), check=False)
    assert_clean_error(proc, "unfinished run", "--resume")
    assert sorted(p.name for p in (out / CHECKPOINT_DIR).iterdir()) == ["run.json"]
    # and a damaged run record is a clean error too
    assert_clean_error(ppdistill("distill", "--resume", out, check=False), "damaged")


def test_completed_run_has_no_checkpoint_left_and_cannot_be_resumed(tmp_path):
    ppdistill(*distill_args(tmp_path), "--hp", "n_envs=2", "--eval-episodes", 1, "--final-episodes", 1,
              "--checkpoint-freq", 64)  # fmt: skip
    assert not (tmp_path / "out" / CHECKPOINT_DIR).exists()
    assert_clean_error(ppdistill("distill", "--resume", tmp_path / "out", check=False), "it completed")


def test_teacher_with_nan_weights_is_a_one_line_error(tmp_path):
    def poison(state):
        state["value_net.weight"][0, 0] = float("inf")

    bad = tmp_path / "nan.zip"
    bad.write_bytes(edit_weights((zoo_path(CARTPOLE) / "CartPole-v1.zip").read_bytes(), poison))
    proc = ppdistill(*distill_args(tmp_path, **{"--teacher": bad}), check=False)
    assert_clean_error(proc, "value_net.weight holds NaN or infinite values")
    assert not (tmp_path / "out").exists()


def test_nan_during_training_is_one_line_and_points_at_the_kept_checkpoint(tmp_path):
    # finite weights so large that the teacher's logits overflow: it loads, then fails in the first rollout
    def overflow(state):
        state["action_net.weight"].fill_(3e38)

    bad = tmp_path / "overflowing.zip"
    bad.write_bytes(edit_weights((zoo_path(CARTPOLE) / "CartPole-v1.zip").read_bytes(), overflow))
    proc = ppdistill(*distill_args(tmp_path, **{"--teacher": bad}), "--hp", "n_envs=2", check=False)
    assert_clean_error(proc, "teacher's output is NaN or infinite at env step 128", "last good checkpoint")
    assert read_checkpoint(tmp_path / "out" / CHECKPOINT_DIR / CHECKPOINT_NAME).num_timesteps == 0


def test_sigterm_stops_like_ctrl_c_with_the_resume_hint(tmp_path):
    """What a scheduler or `timeout` sends: one line that says how to continue, exit 143."""
    out = tmp_path / "out"
    args = [
        "distill", "--teacher", zoo_path(CARTPOLE), "--env", "CartPole-v1", "--timesteps", 1_000_000,
        "--hp", "n_envs=2", "--checkpoint-freq", 256, "--no-progress", "--out", out,
    ]  # fmt: skip
    checkpoint = out / CHECKPOINT_DIR / CHECKPOINT_NAME
    child = subprocess.Popen(
        [sys.executable, "-m", "ppdistill.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    deadline = time.monotonic() + 120
    while not checkpoint.is_file():
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143
    assert err.strip().splitlines() == [
        f"ppdistill: terminated; continue with: ppdistill distill --resume {out}"
    ]
    assert checkpoint.is_file() and not (out / "results.json").exists()
