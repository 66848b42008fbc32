"""Issue 14's checklist of careless and hostile command lines, one case per row.

Every case must end with exit status 2 and one line on stderr, no traceback, and nothing
written or changed: not in the test's folder, not in the zoo teacher's folder. Behaviours that
are not refusals are tested where they live: the normalized score and the ratio (item 5,
tests/experiment/test_run_outputs.py), evaluation of VecNormalize-trained models (item 6,
tests/test_evaluation.py), --force replacing a run (item 1, test_run_outputs.py), SIGTERM
(item 12, tests/cli/test_resume.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ppdistill.cli.main import main
from ppdistill.core.files import FolderLock

from ..conftest import zoo_dir, zoo_path
from ..helpers import CARTPOLE, edit_data

UNWRITABLE = "/sys/ppdistill-test"  # not writable, even for root
RUN = ["--no-progress", "--n-envs", "1", "--eval-episodes", "1", "--final-episodes", "1"]


def distill(tmp: Path, *extra: str, out: str | Path | None = None) -> list[str]:
    teacher = str(zoo_path(CARTPOLE))
    target = str(out if out is not None else tmp / "out")
    env = ["--env", "CartPole-v1", "--timesteps", "512"]
    return ["distill", "--teacher", teacher, *env, *RUN, "--out", target, *extra]


def finished_run(tmp: Path) -> list[str]:
    out = tmp / "out"
    out.mkdir()
    (out / "results.json").write_text('{"score": 500}')
    (out / "student.zip").write_bytes(b"the 500-return student")
    return distill(tmp, "--method", "ppo")


def copied_teacher(tmp: Path) -> Path:
    teacher = tmp / "CartPole-v1_1"
    shutil.copytree(zoo_path(CARTPOLE), teacher)
    return teacher


def inside_teacher_folder(tmp: Path) -> list[str]:
    teacher = copied_teacher(tmp)
    args = distill(tmp, out=teacher / "CartPole-v1")
    args[args.index("--teacher") + 1] = str(teacher)
    return args


def bad_config(text: str) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        (tmp / "c.yml").write_text(text)
        return distill(tmp, "--config", str(tmp / "c.yml"))

    return make


def config_folder(tmp: Path) -> list[str]:
    (tmp / "configs").mkdir()
    return distill(tmp, "--config", str(tmp / "configs"))


def dangling_out(tmp: Path) -> list[str]:
    (tmp / "out").symlink_to(tmp / "gone")
    return distill(tmp)


class MakesFile:
    """A pickle payload: creates a file when unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (shutil.copy, (__file__, self.path))


def hostile_corrupt(tmp: Path) -> list[str]:
    zoo = (zoo_path(CARTPOLE) / "CartPole-v1.zip").read_bytes()
    (tmp / "EVIL.zip").write_bytes(edit_data(zoo, "policy_class", pickle.dumps(MakesFile(tmp / "ran"))))
    return ["teacher", "corrupt", str(tmp / "EVIL.zip"), str(tmp / "out.zip")]


CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    # 1. results lost or corrupted
    "1 finished run in --out": (finished_run, "holds a finished run"),
    # 2. --out inside the teacher's zoo folder
    "2 --out in the teacher's folder": (inside_teacher_folder, "inside the teacher's folder"),
    # 3. unwritable places, found before the work
    "3 distill --out unwritable": (lambda t: distill(t, out=f"{UNWRITABLE}/run"), "cannot write"),
    "3 teacher train --out unwritable": (
        lambda t: ["teacher", "train", "--env", "CartPole-v1", "--out", f"{UNWRITABLE}/t.zip"],
        "cannot write",
    ),
    "3 evaluate --json unwritable": (
        lambda t: [
            "evaluate",
            "--model",
            str(zoo_path(CARTPOLE)),
            "--env",
            "CartPole-v1",
            "--json",
            f"{UNWRITABLE}/e.json",
        ],
        "cannot write",
    ),
    "3 evaluate --json a folder": (
        lambda t: ["evaluate", "--model", str(zoo_path(CARTPOLE)), "--env", "CartPole-v1", "--json", str(t)],
        "is a folder",
    ),
    "3 compare --json unwritable": (
        lambda t: [
            "compare",
            str(zoo_path(CARTPOLE)),
            str(zoo_path(CARTPOLE)),
            "--env",
            "CartPole-v1",
            "--json",
            f"{UNWRITABLE}/c.json",
        ],
        "cannot write",
    ),
    "3 export --out unwritable": (
        lambda t: ["export", str(zoo_path(CARTPOLE) / "CartPole-v1.zip"), "--out", f"{UNWRITABLE}/s.onnx"],
        "cannot write",
    ),
    "3 quickstart --out unwritable": (lambda t: ["quickstart", "--out", f"{UNWRITABLE}/q"], "cannot write"),
    "3 --tensorboard unwritable": (lambda t: distill(t, "--tensorboard", f"{UNWRITABLE}/tb"), "cannot write"),
    # 4. wrong numbers, silently
    "4 distill_lambda=nan": (lambda t: distill(t, "--hp", "distill_lambda=nan"), "distill_lambda"),
    # 7. a rollout larger than the budget
    "7 --n-envs 5000 for 1000 steps": (
        lambda t: distill(t, "--timesteps", "1000", "--n-envs", "5000"),
        "exceeds --timesteps",
    ),
    # 8. values that crashed (some after the first checkpoint)
    "8 learning_rate=abc": (lambda t: distill(t, "--hp", "learning_rate=abc"), "learning_rate"),
    "8 n_steps=-1": (lambda t: distill(t, "--hp", "n_steps=-1"), "n_steps"),
    "8 n_steps=0": (lambda t: distill(t, "--hp", "n_steps=0"), "n_steps"),
    "8 batch_size=0": (lambda t: distill(t, "--hp", "batch_size=0"), "batch_size"),
    "8 batch_size=1.5": (lambda t: distill(t, "--hp", "batch_size=1.5"), "batch_size"),
    "8 n_epochs=0": (lambda t: distill(t, "--hp", "n_epochs=0"), "n_epochs"),
    "8 clip_range=abc": (lambda t: distill(t, "--hp", "clip_range=abc"), "clip_range"),
    "8 distill_lambda=-1": (lambda t: distill(t, "--hp", "distill_lambda=-1"), "distill_lambda"),
    "8 kl_direction=x": (lambda t: distill(t, "--hp", "kl_direction=x"), "kl_direction"),
    "8 policy_kwargs=abc": (lambda t: distill(t, "--hp", "policy_kwargs=abc"), "policy_kwargs"),
    "8 activation_fn as a dotted name": (
        lambda t: distill(t, "--hp", "policy_kwargs={activation_fn: torch.nn.ReLU}"),
        "activation_fn",
    ),
    "8 --config with learning_rate: abc": (
        bad_config("default:\n  ppd:\n    learning_rate: abc\n"),
        "learning_rate",
    ),
    "8 --config with a zoo-style dict(...)": (
        bad_config('default:\n  ppd:\n    policy_kwargs: "dict(net_arch=[8])"\n'),
        "policy_kwargs",
    ),
    # 9. impossible places and sizes
    "9 --out a dangling link": (dangling_out, "which does not exist"),
    "9 n_steps=100000000": (lambda t: distill(t, "--hp", "n_steps=100000000"), "n_steps"),
    "9 --student 100000,100000": (lambda t: distill(t, "--student", "100000,100000"), "parameters"),
    # 11. a hostile teacher through teacher corrupt
    "11 teacher corrupt EVIL.zip": (hostile_corrupt, "refusing to unpickle"),
    # 12. messages that name what exists
    "12 --finetune-hp gamma=abc": (
        lambda t: distill(
            t, "--method", "student-distill", "--then-finetune", "512", "--finetune-hp", "gamma=abc"
        ),
        "--finetune-hp gamma",
    ),
    "12 --config a folder": (config_folder, "is a directory"),
}


def tree(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` (links too) with a digest of its contents."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            out[rel] = f"-> {os.readlink(path)}"
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def zoo_before() -> dict[str, str]:
    return tree(zoo_dir() / "ppo" / "CartPole-v1_1")


def assert_refused(code: int, err: str, fragment: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("ppdistill"), lines[0]
    assert fragment.lower() in lines[0].lower(), (fragment, lines[0])


@pytest.mark.parametrize("case", list(CASES))
def test_refused_in_one_line_with_nothing_written(case, tmp_path, capsys, zoo_before):
    make, fragment = CASES[case]
    args = make(tmp_path)
    before = tree(tmp_path)
    code = main(args)
    assert_refused(code, capsys.readouterr().err, fragment)
    assert tree(tmp_path) == before, "something was written or changed"
    assert tree(zoo_dir() / "ppo" / "CartPole-v1_1") == zoo_before, "the teacher's folder changed"


def test_1_a_second_run_into_a_folder_in_use_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    with FolderLock(out):
        before = tree(out)
        code = main(distill(tmp_path))
        assert tree(out) == before
    assert_refused(code, capsys.readouterr().err, "in use by another run")


@contextlib.contextmanager
def fifo(path: Path) -> Iterator[Path]:
    os.mkfifo(path)
    try:
        yield path
    finally:
        path.unlink()


def limited(args: list[str]) -> subprocess.CompletedProcess[str]:
    """The CLI in a child with 4 GiB of address space and a minute: a regression reads /dev/zero
    until the limit, or hangs on a FIFO until the timeout, instead of taking the machine."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "ppdistill.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, preexec_fn=cap, env=env)


@pytest.mark.parametrize("kind", ["/dev/zero", "a FIFO"])
def test_10_a_teacher_that_is_not_a_regular_file_is_refused_unread(tmp_path, kind):
    with contextlib.ExitStack() as stack:
        teacher = "/dev/zero" if kind == "/dev/zero" else str(stack.enter_context(fifo(tmp_path / "t.zip")))
        args = distill(tmp_path)
        args[args.index("--teacher") + 1] = teacher
        proc = limited(args)
    assert_refused(proc.returncode, proc.stderr, "not a regular file")
    assert not (tmp_path / "out").exists()
