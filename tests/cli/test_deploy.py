"""``ppdistill export`` and ``ppdistill compare``; bad input exits 2 with one line.

One run of each command, and the error paths that depend on the interpreter (a missing
module), go through a subprocess; the other bad inputs call ``main()`` in-process, which is
what the console script runs, without paying for a fresh interpreter each time.
"""

from __future__ import annotations

import json

import pytest

from ..conftest import zoo_path
from ..helpers import assert_clean_error, ppdistill, run_main

CARTPOLE = "ppo/CartPole-v1_1"


def test_export_writes_a_checked_model_beside_the_student(saved_students, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="needs the [onnx] extra")
    student = tmp_path / "student.zip"
    student.write_bytes(saved_students("CartPole-v1").read_bytes())
    proc = ppdistill("export", student)
    assert (tmp_path / "student.onnx").is_file()
    assert "obs (batch, 4) float32 -> action (batch) int64, logits (batch, 2) float32" in proc.stdout
    assert "1000 observations" in proc.stdout and "actions identical" in proc.stdout

    out = tmp_path / "sub" / "hopper.onnx"
    proc = run_main(capsys, "export", saved_students("Hopper-v5"), "--out", out, "--check", 2000)
    assert proc.returncode == 0 and out.is_file()
    assert "inside the student's network" in proc.stdout and "2000 observations" in proc.stdout


def test_compare_prints_a_table_and_writes_json(saved_students, tmp_path):
    proc = ppdistill("compare", zoo_path(CARTPOLE), saved_students("CartPole-v1"), "--env", "CartPole-v1",
                     "--episodes", 2, "--json", tmp_path / "c.json")  # fmt: skip
    for word in ("teacher", "student", "student/teacher", "actor params", "µs/obs (batch 256)"):
        assert word in proc.stdout, word
    data = json.loads((tmp_path / "c.json").read_text())
    assert [a["role"] for a in data["agents"]] == ["teacher", "student"]
    assert data["agents"][0]["returns"]["n_episodes"] == 2


def test_compare_stochastic_plays_both_agents_with_sampled_actions(
    saved_students, tmp_path, capsys, monkeypatch
):
    from ppdistill.deploy import compare

    modes = []

    def spy(*args, **kwargs):
        modes.append(kwargs["deterministic"])
        return evaluate(*args, **kwargs)

    evaluate = compare.evaluate
    monkeypatch.setattr(compare, "evaluate", spy)
    student = saved_students("CartPole-v1")
    proc = run_main(capsys, "compare", zoo_path(CARTPOLE), student, "--env", "CartPole-v1",
                    "--episodes", 2, "--stochastic", "--json", tmp_path / "c.json")  # fmt: skip
    assert proc.returncode == 0 and "2 episodes with sampled actions" in proc.stdout
    assert modes == [False, False]  # teacher and student
    assert json.loads((tmp_path / "c.json").read_text())["deterministic"] is False


def test_export_bad_input(saved_students, tmp_path, capsys):
    assert_clean_error(ppdistill("export", tmp_path / "nope.zip", check=False), "does not exist")
    dqn = zoo_path("dqn/CartPole-v1_1") / "CartPole-v1.zip"
    proc = run_main(capsys, "export", dqn, "--out", tmp_path / "x.onnx")
    assert_clean_error(proc, "not an actor-critic student")
    (tmp_path / "folder").mkdir()
    proc = run_main(capsys, "export", saved_students("CartPole-v1"), "--out", tmp_path / "folder")
    assert_clean_error(proc, "is a folder")
    assert_clean_error(run_main(capsys, "export", saved_students("CartPole-v1"), "--check", 0), "positive")
    assert not (tmp_path / "x.onnx").exists()


def test_export_missing_extra_names_it(saved_students, tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "onnxscript.py").write_text("raise ImportError('onnxscript hidden for this test')\n")
    proc = ppdistill("export", saved_students("CartPole-v1"), "--out", tmp_path / "x.onnx",
                     env={"PYTHONPATH": str(shadow)}, check=False)  # fmt: skip
    assert_clean_error(proc, "[onnx]", "pip install")
    assert not (tmp_path / "x.onnx").exists()


def test_compare_bad_input(saved_students, tmp_path, capsys):
    proc = ppdistill(
        "compare", zoo_path(CARTPOLE), tmp_path / "nope.zip", "--env", "CartPole-v1", check=False
    )
    assert_clean_error(proc, "student file", "does not exist")
    proc = run_main(
        capsys, "compare", zoo_path(CARTPOLE), saved_students("Pendulum-v1"), "--env", "CartPole-v1"
    )
    assert_clean_error(proc, "spaces differ")
    proc = run_main(
        capsys, "compare", zoo_path(CARTPOLE), saved_students("CartPole-v1"), "--env", "CartPol-v1"
    )
    assert_clean_error(proc, "unknown environment")
