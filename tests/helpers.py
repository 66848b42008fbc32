"""Helpers shared by several test modules: the CLI in a subprocess, interrupted runs, weights, zip edits."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import torch as th

from .conftest import zoo_path

CARTPOLE = "ppo/CartPole-v1_1"


FAST = ["--no-progress", "--hp", "n_envs=2", "--eval-episodes", "2", "--final-episodes", "3"]


def ppdistill(*args, env=None, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "ppdistill.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def run_main(capsys, *args):
    """``ppdistill ARGS`` in this process, as a finished-process record: what the console script
    runs, without paying a fresh interpreter's start-up (about 5 s) for each error path."""
    from types import SimpleNamespace

    from ppdistill.cli.main import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=captured.out, stderr=captured.err)


def assert_clean_error(proc, *fragments):
    """Exit 2, one line on stderr naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("ppdistill"), lines[0]
    for f in fragments:
        assert f.lower() in lines[0].lower(), (f, lines[0])


def distill_args(tmp_path, **changes):
    args = {
        "--teacher": zoo_path(CARTPOLE),
        "--env": "CartPole-v1",
        "--timesteps": 256,
        "--out": tmp_path / "out",
    }
    args.update(changes)
    flat = ["distill", "--no-progress"]
    for k, v in args.items():
        flat += [k, v]
    return flat


class Interrupt(Exception):
    """Stands for a crash in the middle of training."""


def interrupt_after(n_updates: int, only: type | None = None):
    """An ``on_model`` hook that makes training fail at the start of update ``n_updates + 1``
    (only for models of type ``only`` when given: a pipeline builds two)."""

    def hook(model):
        if only is not None and type(model) is not only:
            return
        train, calls = model.train, [0]

        def failing_train():
            calls[0] += 1
            if calls[0] > n_updates:
                raise Interrupt
            train()

        model.train = failing_train

    return hook


def weights(path, *names):
    """The saved tensors of ``names`` (default: the policy's and the optimizer's)."""
    with zipfile.ZipFile(path) as archive:
        return {
            name: th.load(io.BytesIO(archive.read(name)), weights_only=True)
            for name in names or ("policy.pth", "policy.optimizer.pth")
        }


def assert_same_tensors(a, b, rtol: float = 0.0) -> None:
    """Nested dicts, lists and tensors equal; with ``rtol`` > 0, each floating tensor within
    ``rtol`` of its twin's largest entry instead of bit for bit.

    ``rtol`` is for files made on another machine: BLAS picks its kernels by the CPU, so the
    same run may agree there only to the last bits. Bit-for-bit resuming is proved on one
    machine by ``test_checkpoints``.
    """
    if isinstance(a, th.Tensor):
        assert isinstance(b, th.Tensor) and a.shape == b.shape and a.dtype == b.dtype
        if not rtol or not a.is_floating_point() or not b.numel():
            assert th.equal(a, b)
            return
        scale, worst = float(b.abs().max()), float((a - b).abs().max())
        assert worst <= rtol * max(scale, 1e-8), f"differs by {worst:.3g} at scale {scale:.3g}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same_tensors(a[k], b[k], rtol)
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_tensors(x, y, rtol)
    else:
        assert a == b


def entries(archive: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        return {name: z.read(name) for name in z.namelist()}


def rezip(archive: bytes, **replace: bytes) -> bytes:
    """The same model with some entries replaced (fresh, valid checksums)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries(archive).items():
            z.writestr(name, replace.get(name.replace(".", "_"), data))
    return out.getvalue()


def edit_weights(archive: bytes, edit) -> bytes:
    """The same model with ``edit(state_dict)`` applied to its policy weights."""
    state = th.load(io.BytesIO(entries(archive)["policy.pth"]), weights_only=True)
    edit(state)
    buffer = io.BytesIO()
    th.save(state, buffer)
    return rezip(archive, policy_pth=buffer.getvalue())


def edit_data(archive: bytes, key: str, value: bytes) -> bytes:
    """The same model with its ``data`` entry ``key`` replaced by the pickle ``value``."""
    data = json.loads(entries(archive)["data"])
    data[key] = {":serialized:": base64.b64encode(value).decode()}
    return rezip(archive, data=json.dumps(data).encode())


def _called_when_unpickled(arg):
    raise AssertionError("pickle_calling() names another function in its place")


class CallWhenUnpickled:
    """Stands, inside an object given to :func:`pickle_calling`, for a call made when it is unpickled."""

    def __init__(self, arg):
        self.arg = arg

    def __reduce__(self):
        return (_called_when_unpickled, (self.arg,))


def pickle_calling(obj, module: str, name: str) -> bytes:
    """``obj`` pickled, with each :class:`CallWhenUnpickled` (``arg``) in it a call of
    ``module.name(arg)`` when unpickled; ``name`` may be dotted (``os.mkdir``), as protocol 4
    allows: ``pickle_calling(x, "gymnasium", "os.mkdir")`` runs ``gymnasium.os.mkdir``.

    Protocol 3's opcodes (no frames) under a protocol-4 header, so that the function's name
    can be swapped in place.
    """
    blob = pickle.dumps(obj, protocol=3)
    ref = f"c{_called_when_unpickled.__module__}\n{_called_when_unpickled.__qualname__}\n".encode()
    assert blob.startswith(b"\x80\x03") and ref in blob
    return b"\x80\x04" + blob[2:].replace(ref, f"c{module}\n{name}\n".encode())


class MakesDir:
    """A pickle payload: unpickling it creates the folder ``path`` (proof that it ran)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def save_student_of_view(recipe, path, env=None):
    """An untrained PPO student saved as a ppdistill run saves a student of a view: with its
    recorded ``env_recipe`` (built on ``recipe.make`` unless ``env`` is given). Returns it."""
    from stable_baselines3 import PPO

    env = env if env is not None else recipe.make(n_envs=1, seed=0)
    student = PPO("MlpPolicy", env, n_steps=32, batch_size=32, seed=0)
    student.env_recipe = recipe.as_dict()
    student.save(path)
    env.close()
    return student


def benchmark_script(name: str) -> ModuleType:
    """A script of ``benchmarks/`` (not a package) imported as a module, for its tests.

    :param name: the script's file name without ``.py``
    """
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # a dataclass in it looks its module up there
    spec.loader.exec_module(module)
    return module
