"""Damaged, foreign and hostile teacher files: always one line of our error type, never anything else.

Only regular files are read: a device, FIFO or socket given as a model, or found where a
run folder names its ``vecnormalize.pkl`` or ``args.yml``, is refused without being read.

The property-based tests feed random bytes, truncations and byte edits of a real zoo model
(also edits inside its entries, with valid checksums, so they reach the JSON, pickle and
torch readers) to ``load_teacher``.
"""

from __future__ import annotations

import os
import pickle
import resource
import shutil
import socket
import subprocess
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppdistill import load_teacher
from ppdistill.core.errors import PPDistillError, TeacherLoadError
from ppdistill.teachers.base import Teacher

from ..conftest import zoo_path
from ..helpers import MakesDir, assert_clean_error, edit_data, edit_weights, entries, rezip

FUZZ = settings(
    max_examples=60,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def zoo_zip() -> bytes:
    return (zoo_path("ppo/CartPole-v1_1") / "CartPole-v1.zip").read_bytes()


def refused(path, **kwargs) -> str:
    """load_teacher raises our error with a one-line message; return it."""
    with pytest.raises(TeacherLoadError) as exc_info:
        load_teacher(path, **kwargs)
    message = str(exc_info.value)
    assert message and "\n" not in message, message
    return message


def loads_or_refuses(path, **kwargs) -> None:
    """The property: a Teacher, or one line of a PPDistillError; nothing else escapes."""
    try:
        teacher = load_teacher(path, **kwargs)
    except PPDistillError as exc:
        assert str(exc) and "\n" not in str(exc), str(exc)
    else:
        assert isinstance(teacher, Teacher)


# ---- damaged files --------------------------------------------------------------------


@pytest.mark.parametrize(
    "keep", [0, 10, 0.5, -22, -1], ids=["empty", "header", "half", "no-end-record", "last-byte"]
)
def test_truncated_zip(tmp_path, keep):
    data = zoo_zip()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    (tmp_path / "m.zip").write_bytes(data[:cut])
    assert "zip" in refused(tmp_path / "m.zip", env_id="CartPole-v1")


def test_corrupt_policy_weights(tmp_path):
    (tmp_path / "m.zip").write_bytes(rezip(zoo_zip(), policy_pth=np.random.default_rng(0).bytes(4000)))
    assert "policy.pth cannot be read" in refused(tmp_path / "m.zip", env_id="CartPole-v1")


def test_weights_of_another_network(tmp_path):
    acrobot = entries((zoo_path("ppo/Acrobot-v1_1") / "Acrobot-v1.zip").read_bytes())["policy.pth"]
    (tmp_path / "m.zip").write_bytes(rezip(zoo_zip(), policy_pth=acrobot))
    assert "do not fit the policy" in refused(tmp_path / "m.zip", env_id="CartPole-v1")


def test_nan_weights(tmp_path):
    def poison(state):
        state["action_net.weight"][0, 0] = float("nan")

    (tmp_path / "m.zip").write_bytes(edit_weights(zoo_zip(), poison))
    assert "action_net.weight holds NaN" in refused(tmp_path / "m.zip", env_id="CartPole-v1")


def test_unsupported_algorithm(tmp_path):
    # a policy class that no teacher kind claims (SB3's and sb3-contrib's algorithms each have one)
    from stable_baselines3.common.policies import BasePolicy

    (tmp_path / "m.zip").write_bytes(edit_data(zoo_zip(), "policy_class", pickle.dumps(BasePolicy)))
    message = refused(tmp_path / "m.zip", env_id="CartPole-v1")
    assert "BasePolicy teachers are not supported" in message and "ARS" in message, message


def test_vecnormalize_damaged_foreign_or_for_another_shape(tmp_path):
    folder = zoo_path("ppo/Acrobot-v1_1")
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"\x80\x04not a pickle at all")
    assert "not a readable VecNormalize pickle" in refused(folder, vecnormalize=garbage)

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    foreign = tmp_path / "foreign.pkl"
    foreign.write_bytes(pickle.dumps(Evil()))
    assert "refusing to unpickle builtins.print" in refused(folder, vecnormalize=foreign)
    other = zoo_path("ppo/Hopper-v3_1") / "Hopper-v3" / "vecnormalize.pkl"
    assert "normalizes observations of shape (11,)" in refused(folder, vecnormalize=other)


# ---- hostile files ----------------------------------------------------------------------


def test_zip_bomb_is_not_inflated(tmp_path):
    # 64 MiB of zeros deflate to ~64 KiB: declared sizes are checked before anything is read
    (tmp_path / "m.zip").write_bytes(rezip(zoo_zip(), policy_pth=bytes(64 << 20)))
    assert "refusing to inflate" in refused(tmp_path / "m.zip", env_id="CartPole-v1")


def test_network_larger_than_its_weights_is_refused_before_allocation(tmp_path):
    kwargs = {"net_arch": [60_000, 60_000]}  # 3.6e9 weights, 14 GB, in a file that ships 10k
    (tmp_path / "m.zip").write_bytes(edit_data(zoo_zip(), "policy_kwargs", pickle.dumps(kwargs)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    message = refused(tmp_path / "m.zip", env_id="CartPole-v1")
    assert "weights but it ships" in message and "damaged" in message
    assert time.perf_counter() - t0 < 30
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 512 * 1024  # KiB: under 512 MiB


def test_pickle_cannot_call_allowed_classes(tmp_path):
    from stable_baselines3.common.logger import HumanOutputFormat

    target = tmp_path / "written-by-the-pickle.txt"

    class OpensAFile:
        def __reduce__(self):
            return (HumanOutputFormat, (str(target),))

    payload = pickle.dumps({"net_arch": [64, 64], "log": OpensAFile()})
    (tmp_path / "m.zip").write_bytes(edit_data(zoo_zip(), "policy_kwargs", payload))
    assert "refusing to call stable_baselines3.common.logger.HumanOutputFormat" in refused(
        tmp_path / "m.zip", env_id="CartPole-v1"
    )
    assert not target.exists()


def test_zoo_args_yml_never_runs_code(tmp_path):
    run = tmp_path / "run"
    (run / "CartPole-v1").mkdir(parents=True)
    (run / "CartPole-v1.zip").write_bytes(zoo_zip())
    marker = tmp_path / "ran"
    (run / "CartPole-v1" / "args.yml").write_text(f'!!python/object/apply:os.system ["touch {marker}"]\n')
    teacher = load_teacher(run, env_id="CartPole-v1")
    assert isinstance(teacher, Teacher) and not marker.exists()


# ---- files that are not regular files ----------------------------------------------------


def zoo_copy(tmp_path, relative="ppo/CartPole-v1_1"):
    """A copy of a zoo run folder, to put odd files in."""
    return Path(shutil.copytree(zoo_path(relative), tmp_path / "run"))


def fifo(path):
    os.mkfifo(path)
    return path


def limited_python(*args: str) -> subprocess.CompletedProcess:
    """``python *args`` in a child with 4 GiB of address space: code that reads ``/dev/zero``
    without end fails there with MemoryError, instead of taking the machine's memory."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "socket", "fifo-in-folder", "folder-named-zip"])
def test_a_model_that_is_not_a_regular_file_is_refused_unread(tmp_path, kind):
    path = tmp_path / "m.zip"
    if kind == "fifo":
        fifo(path)  # opening it blocks until someone writes
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
    elif kind == "fifo-in-folder":  # a run folder whose model zip is a FIFO
        (tmp_path / "run").mkdir()
        fifo(tmp_path / "run" / "model.zip")
        path = tmp_path / "run"
    else:
        (tmp_path / "run" / "model.zip").mkdir(parents=True)
        path = tmp_path / "run"
    message = refused(path, env_id="CartPole-v1")
    assert "not a regular file" in message, message


@pytest.mark.timeout(150)
def test_a_device_is_refused_unread_as_model_or_vecnormalize(tmp_path):
    report = tmp_path / "r.json"
    proc = limited_python("-m", "ppdistill.cli", "evaluate", "--model", "/dev/zero", "--env", "CartPole-v1",
                          "--json", str(report))  # fmt: skip
    assert_clean_error(proc, "/dev/zero is a device, not a regular file")
    assert not report.exists()
    code = (
        "from ppdistill import load_teacher\n"
        "from ppdistill.core.errors import TeacherLoadError\n"
        "try:\n"
        f"    load_teacher({str(zoo_path('ppo/Acrobot-v1_1'))!r}, vecnormalize='/dev/zero')\n"
        "except TeacherLoadError as exc:\n"
        "    print(exc)\n"
    )
    proc = limited_python("-c", code)
    assert proc.returncode == 0 and "/dev/zero is a device, not a regular file" in proc.stdout, proc


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "name", ["CartPole-v1/vecnormalize.pkl", "CartPole-v1.vecnormalize.pkl", "CartPole-v1/args.yml"]
)
def test_a_run_folder_file_that_is_not_a_regular_file_is_refused_not_skipped(tmp_path, name):
    run = zoo_copy(tmp_path)
    (run / name).unlink(missing_ok=True)
    fifo(run / name)
    message = refused(run, env_id="CartPole-v1")
    assert name.split("/")[-1] in message and "FIFO" in message, message


def test_an_args_yml_too_large_to_be_one_is_refused_unread(tmp_path):
    run = zoo_copy(tmp_path)
    with (run / "CartPole-v1" / "args.yml").open("r+b") as f:
        f.truncate(64 << 20)  # sparse: nothing to write, 64 MiB to read
    message = refused(run)
    assert "args.yml holds 67108864 bytes" in message, message


@pytest.mark.timeout(60)
def test_cli_refuses_a_fifo_teacher_in_one_line_and_writes_nothing(tmp_path, capsys):
    from ppdistill.cli.main import main

    teacher = fifo(tmp_path / "teacher.zip")
    out = tmp_path / "out"
    code = main(["distill", "--teacher", str(teacher), "--env", "CartPole-v1", "--timesteps", "64",
                 "--no-progress", "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "FIFO" in err[0] and "not a regular file" in err[0], err
    assert not out.exists()


# ---- messages name what exists where the user is -----------------------------------------


def test_refused_pickle_names_the_python_only_setting_as_such(tmp_path, capsys):
    from ppdistill.cli.main import main

    marker = tmp_path / "ran"
    (tmp_path / "m.zip").write_bytes(edit_data(zoo_zip(), "policy_class", pickle.dumps(MakesDir(marker))))
    code = main(["evaluate", "--model", str(tmp_path / "m.zip"), "--env", "CartPole-v1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "refusing to unpickle posix.mkdir" in err[0] and "pass trust_pickle" not in err[0], err[0]
    assert "command line never unpickles" in err[0] and "Python API" in err[0], err[0]
    assert not marker.exists()


def test_unreadable_spaces_name_the_env_option(tmp_path):
    archive = edit_data(zoo_zip(), "observation_space", b"not a pickle")
    (tmp_path / "m.zip").write_bytes(edit_data(archive, "action_space", b"not a pickle"))
    message = refused(tmp_path / "m.zip")
    assert "--env ID" in message and "pass env_id" not in message, message


def test_a_raw_pickle_as_weights_is_refused_without_warnings(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "m.zip").write_bytes(rezip(zoo_zip(), policy_pth=pickle.dumps(MakesDir(marker))))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert "policy.pth cannot be read" in refused(tmp_path / "m.zip", env_id="CartPole-v1")
    assert not caught, [str(w.message) for w in caught]  # each would print before the error line
    assert not marker.exists()


# ---- properties -------------------------------------------------------------------------


@pytest.mark.timeout(300)
@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes(tmp_path, data):
    (tmp_path / "m.zip").write_bytes(data)
    refused(tmp_path / "m.zip", env_id="CartPole-v1")


@pytest.mark.timeout(300)
@FUZZ
@given(cut=st.integers(min_value=0, max_value=10**6))
def test_truncations(tmp_path, cut):
    data = zoo_zip()
    (tmp_path / "m.zip").write_bytes(data[: cut % len(data)])
    refused(tmp_path / "m.zip", env_id="CartPole-v1")


def _apply(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        out[position % len(out)] = value
    return bytes(out)


EDITS = st.lists(
    st.tuples(st.integers(min_value=0, max_value=10**6), st.integers(0, 255)), min_size=1, max_size=8
)


@pytest.mark.timeout(300)
@FUZZ
@given(edits=EDITS)
def test_byte_edits_of_the_archive(tmp_path, edits):
    (tmp_path / "m.zip").write_bytes(_apply(zoo_zip(), edits))
    loads_or_refuses(tmp_path / "m.zip", env_id="CartPole-v1")


@pytest.mark.timeout(300)
@FUZZ
@given(entry=st.sampled_from(["data", "policy_pth"]), edits=EDITS)
def test_byte_edits_inside_entries(tmp_path, entry, edits):
    original = entries(zoo_zip())[entry.replace("_", ".")]
    (tmp_path / "m.zip").write_bytes(rezip(zoo_zip(), **{entry: _apply(original, edits)}))
    loads_or_refuses(tmp_path / "m.zip", env_id="CartPole-v1")


@pytest.mark.timeout(300)
@FUZZ
@given(data=st.one_of(st.binary(max_size=2048), st.integers(0, 10**6)))
def test_vecnormalize_bytes_and_truncations(tmp_path, data):
    real = (zoo_path("ppo/Acrobot-v1_1") / "Acrobot-v1" / "vecnormalize.pkl").read_bytes()
    (tmp_path / "v.pkl").write_bytes(data if isinstance(data, bytes) else real[: data % len(real)])
    loads_or_refuses(zoo_path("ppo/Acrobot-v1_1"), vecnormalize=tmp_path / "v.pkl")
