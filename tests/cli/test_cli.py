"""The command line end to end, in subprocesses, with small budgets; every bad input exits 2."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
import torch as th

from ..conftest import zoo_path
from ..helpers import CARTPOLE, FAST, assert_clean_error, distill_args, ppdistill, run_main


@pytest.mark.parametrize("method", ["ppd", "student-distill", "teacher-distill"])
def test_distill_writes_student_curve_and_results(tmp_path, method):
    out = tmp_path / "run"
    proc = ppdistill(
        "distill", "--teacher", zoo_path(CARTPOLE), "--env", "CartPole-v1", "--method", method,
        "--timesteps", 1024, "--seed", 1, "--out", out, *FAST,
    )  # fmt: skip
    assert method in proc.stdout
    for name in ("student.zip", "eval.csv", "learning_curve.png", "results.json", "config.yml"):
        assert (out / name).is_file(), name
    result = json.loads((out / "results.json").read_text())
    assert result["spec"]["method"] == method and result["env_steps"] >= 1024
    assert result["student_net_arch"] == {"pi": [32, 16], "vf": [32, 16]}
    assert len(result["curve"]) >= 2 and 0 <= result["agreement"] <= 1
    assert not list(tmp_path.glob(".run.*"))  # the staging folder is gone

    proc = ppdistill("evaluate", "--model", out / "student.zip", "--env", "CartPole-v1", "--episodes", 3,
                     "--json", tmp_path / "e.json")  # fmt: skip
    assert "IQM" in proc.stdout
    numbers = json.loads((tmp_path / "e.json").read_text())
    assert numbers["n_episodes"] == 3 and {"mean", "std", "iqm"} <= set(numbers)


def test_distill_hp_override_and_lambda(tmp_path):
    out = tmp_path / "run"
    ppdistill(
        "distill", "--teacher", zoo_path(CARTPOLE), "--env", "CartPole-v1", "--timesteps", 512,
        "--student", "16,16", "--lambda", 2.0, "--hp", "learning_rate=1e-3", "--out", out, *FAST,
    )  # fmt: skip
    result = json.loads((out / "results.json").read_text())
    assert result["spec"]["hp"]["distill_lambda"] == 2.0
    assert result["spec"]["hp"]["learning_rate"] == 1e-3
    assert result["student_net_arch"]["pi"] == [16, 16]


def test_tensorboard_logs_distill_metrics(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ppdistill(*distill_args(tmp_path), "--tensorboard", tmp_path / "tb", *FAST)
    events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert {"distill/kl", "distill/agreement", "distill/lambda"} <= set(acc.Tags()["scalars"])


def test_teacher_train_evaluate_and_corrupt(tmp_path):
    teacher = tmp_path / "t.zip"
    proc = ppdistill("teacher", "train", "--env", "CartPole-v1", "--timesteps", 1024, "--no-progress",
                     "--out", teacher)  # fmt: skip
    assert teacher.is_file() and "deterministic return" in proc.stdout
    bad = tmp_path / "bad.zip"
    proc = ppdistill("teacher", "corrupt", teacher, bad, "--sigma", 0.05, "--seed", 3)
    assert "perturbed" in proc.stdout

    def weights(path):
        with zipfile.ZipFile(path) as z:
            return th.load(z.open("policy.pth"), weights_only=True)

    a, b = weights(teacher), weights(bad)
    diff = th.cat([(b[k] - a[k]).flatten() for k in a if a[k].is_floating_point()])
    assert diff.std().item() == pytest.approx(0.05, rel=0.05)
    ppdistill("evaluate", "--model", bad, "--env", "CartPole-v1", "--episodes", 2)


def test_students_lists_presets_relative_to_the_teacher():
    proc = ppdistill("students", "--env", "CartPole-v1", "--teacher", zoo_path(CARTPOLE))
    assert "(32, 16)" in proc.stdout and "(64, 64)" in proc.stdout and "(128, 128)" in proc.stdout
    proc = ppdistill("students", "--env", "HalfCheetah-v5", "--teacher", zoo_path("ppo/HalfCheetah-v3_1"))
    assert "(128, 64)" in proc.stdout and "(512, 512)" in proc.stdout


def test_quickstart_small(tmp_path):
    out = tmp_path / "qs"
    proc = ppdistill("quickstart", "--out", out, "--timesteps", 1024, "--episodes", 3)
    for method in ("ppd", "student-distill", "teacher-distill"):
        assert method in proc.stdout
        assert (out / f"student-{method}.zip").is_file()
    assert (out / "learning_curves.png").is_file()
    summary = json.loads((out / "results.json").read_text())
    assert len(summary["runs"]) == 3 and summary["teacher_score"] > 200  # the bundled LunarLander teacher


# ---- bad input: one line, exit 2, nothing written ------------------------------------


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"--teacher": "missing.zip"}, ["does not exist"]),
        ({"--env": "CartPol-v1"}, ["unknown environment", "CartPole-v1"]),
        ({"--env": "Acrobot-v1"}, ["spaces differ"]),
        ({"--timesteps": "0"}, ["must be positive"]),
        ({"--timesteps": "-5"}, ["must be positive"]),
    ],
    ids=["missing-teacher", "unknown-env", "space-mismatch", "zero-steps", "negative-steps"],
)
def test_bad_distill_input(tmp_path, changes, fragments):
    proc = ppdistill(*distill_args(tmp_path, **changes), check=False)
    assert_clean_error(proc, *fragments)
    assert not (tmp_path / "out").exists()


def test_unreadable_teacher_and_non_sb3_zip(tmp_path):
    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(os.urandom(300))
    assert_clean_error(ppdistill(*distill_args(tmp_path, **{"--teacher": garbage}), check=False), "zip")
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as z:
        z.writestr("hello.txt", "not a model")
    proc = ppdistill(*distill_args(tmp_path, **{"--teacher": foreign}), check=False)
    assert_clean_error(proc, "not a stable-baselines3 model")
    assert not (tmp_path / "out").exists()


def test_unknown_hp_key(tmp_path):
    proc = ppdistill(*distill_args(tmp_path), "--hp", "learning_rat=1e-3", check=False)
    assert_clean_error(proc, "unknown hyperparameter", "learning_rate")


def test_out_is_a_file(tmp_path):
    target = tmp_path / "out"
    target.write_text("keep me")
    proc = ppdistill(*distill_args(tmp_path), check=False)
    assert_clean_error(proc, "is a file")
    assert target.read_text() == "keep me"


def test_missing_optional_extra_names_it(tmp_path):
    # Hide the mujoco package from the child interpreter.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "mujoco.py").write_text("raise ImportError('mujoco hidden for this test')\n")
    proc = ppdistill(
        *distill_args(tmp_path, **{"--env": "HalfCheetah-v5", "--teacher": zoo_path("ppo/HalfCheetah-v3_1")}),
        env={"PYTHONPATH": str(shadow)},
        check=False,
    )
    assert_clean_error(proc, "[mujoco]", "pip install")


def test_evaluate_missing_model(tmp_path):
    proc = ppdistill("evaluate", "--model", tmp_path / "nope.zip", "--env", "CartPole-v1", check=False)
    assert_clean_error(proc, "does not exist")


def test_argparse_errors_are_one_line():
    proc = ppdistill("distill", "--env", "CartPole-v1", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_existing_output_folder_keeps_other_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    proc = ppdistill(*distill_args(tmp_path, **{"--env": "CartPol-v1"}), check=False)
    assert proc.returncode == 2
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert Path(out / "notes.txt").read_text() == "mine"


def test_version(capsys):
    from ppdistill import __version__
    from ppdistill.cli.main import main

    with pytest.raises(SystemExit) as exc_info:
        main(["--version"])
    assert exc_info.value.code == 0 and capsys.readouterr().out.strip() == f"ppdistill {__version__}"


def test_teacher_inspect_says_how_a_teacher_will_be_read(tmp_path, capsys):
    from ppdistill.cli.main import main

    out = tmp_path / "t.json"
    teacher = str(zoo_path("ppo/Hopper-v3_1"))
    code = main(["teacher", "inspect", teacher, "--env", "Hopper-v5", "--episodes", "1", "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "vecnormalize.pkl" in printed and "[256, 256]" in printed
    found = json.loads(out.read_text())
    assert found["kind"] == "actor-critic" and found["action_space"].startswith("Box(-1.0, 1.0, (3,)")
    assert found["normalization"].startswith("frozen VecNormalize statistics")
    assert float(found["score"].split(" ± ")[0]) > 1000


@pytest.fixture(scope="module")
def cue_teacher(tmp_path_factory):
    """A PPO teacher of the memory task reading both of its groups, policy and privileged (its
    quality does not matter here)."""
    from stable_baselines3 import PPO

    from ppdistill.envs.memory import CueMemory

    model = PPO("MultiInputPolicy", CueMemory(), n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"net_arch": [16]})  # fmt: skip
    model.learn(64)
    path = tmp_path_factory.mktemp("cue") / "teacher.zip"
    model.save(path)
    return path


def cue_distill(teacher, out, *options):
    return ("distill", "--teacher", teacher, "--env", "ppdistill/CueMemory-v0", "--timesteps", 256,
            "--hp", "n_steps=32", "--hp", "batch_size=32", "--out", out, *options, *FAST)  # fmt: skip


def test_a_privileged_teacher_distilled_into_an_lstm_student_exports_on_the_students_observation(
    tmp_path, cue_teacher
):
    onnxruntime = pytest.importorskip("onnxruntime", reason="export needs the [onnx] extra")
    out = tmp_path / "run"
    views = ("--student-obs", "policy", "--teacher-obs", "policy,privileged")
    # with the memory's prediction of the privileged group: a head the export leaves out
    proc = ppdistill(*cue_distill(cue_teacher, out, *views, "--student-policy", "lstm",
                                  "--hp", "privileged_prediction=1"))  # fmt: skip
    assert (
        "the student sees groups policy" in proc.stdout
        and "the teacher reads groups policy, privileged" in proc.stdout
    )
    result = json.loads((out / "results.json").read_text())
    assert result["spec"]["student_obs"] == "policy" and result["spec"]["teacher_obs"] == "policy,privileged"
    assert result["student_policy"] == "lstm" and result["agreement"] is None
    assert result["env"]["student"]["student_view"] == {"groups": ["policy"]}
    with zipfile.ZipFile(out / "student.zip") as archive:  # the memory's head reached the student
        assert "privileged_head.pth" in archive.namelist()
    assert result["env"]["student"]["teacher_view"] == {"groups": ["policy", "privileged"]}
    onnx_file = tmp_path / "student.onnx"
    proc = ppdistill("export", out / "student.zip", "--out", onnx_file, "--check", 64)
    assert "actions identical" in proc.stdout
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.shape for i in session.get_inputs()}
    assert list(inputs) == ["obs", "state_h", "state_c", "episode_start"]  # the policy group, and memory
    assert inputs["obs"][1:] == [3]
    proc = ppdistill(
        "evaluate", "--model", out / "student.zip", "--env", "ppdistill/CueMemory-v0", "--episodes", 2
    )
    assert "IQM" in proc.stdout
    # compare: the teacher timed on both groups, the student on its view of the environment
    proc = ppdistill("compare", cue_teacher, out / "student.zip", "--env", "ppdistill/CueMemory-v0",
                     "--episodes", 2, "--json", tmp_path / "compare.json")  # fmt: skip
    rows = json.loads((tmp_path / "compare.json").read_text())
    assert "student/teacher" in proc.stdout and [r["role"] for r in rows["agents"]] == ["teacher", "student"]


def test_groups_that_overlap_the_wrong_way_exit_2_naming_the_group(tmp_path, cue_teacher, capsys):
    out = tmp_path / "run"
    # one case through the console script's process; the rest in-process (same main())
    proc = ppdistill(*cue_distill(cue_teacher, out, "--student-obs", "camera"), check=False)
    assert_clean_error(proc, "no observation group 'camera' (it has policy, privileged)")
    assert not out.exists()
    refused = {
        ("--student-obs", "policy,privileged"): "observation group 'privileged', which is privileged",
        (
            "--student-obs",
            "policy",
            "--teacher-obs",
            "policy",
        ): "reads observation group 'privileged', which it is not given",
        ("--teacher-obs", "policy,privileged"): "give the student's with --student-obs KEYS",
    }
    for options, fragment in refused.items():
        assert_clean_error(run_main(capsys, *cue_distill(cue_teacher, out, *options)), fragment)
        assert not out.exists(), options
    proc = run_main(capsys, *distill_args(tmp_path, **{"--student-obs": "policy", "--timesteps": 1024}))
    assert_clean_error(proc, "names observation groups, but CartPole-v1's observation is Box")
    assert not (tmp_path / "out").exists()  # distill_args' --out
