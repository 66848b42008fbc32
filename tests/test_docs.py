"""The documentation runs and is complete: API examples, every logged metric, every CLI option."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from ppdistill import PPD, StudentDistill, TeacherDistill
from ppdistill.cli.main import build_parser

from .conftest import REPO, zoo_dir, zoo_path
from .toy import ACTION_SPACES, SMALL, ToyEnv, recording_logger, toy_teacher

DOCS = REPO / "docs"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.slow
def test_api_examples_run(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime", reason="the export example needs the [onnx] extra")
    for needed in ("ppo/CartPole-v1_1", "dqn/CartPole-v1_1"):
        zoo_path(needed)  # skip (or fail under PPDISTILL_REQUIRE_ZOO) without the zoo
    monkeypatch.setenv("PPDISTILL_ZOO_DIR", str(zoo_dir().resolve()))
    monkeypatch.setenv("PPDISTILL_DOCS_STEPS", "512")
    monkeypatch.setenv("PPDISTILL_DOCS_EPISODES", "2")
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(DOCS / "api.md")
    assert len(blocks) == 7  # setup + compress, self-distill, grow, DQN -> PPO, rescue, export
    namespace: dict = {"__name__": "__docs__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/api.md, python block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    for expected in ("student [32, 16]", "self-distilled [64, 64]", "grown [128, 128]", "PPO student",
                     "corrupted teacher", "actions identical", "ONNX student, one episode"):  # fmt: skip
        assert expected in out, expected
    assert (tmp_path / "cartpole-small.onnx").is_file()


def logged_keys() -> set[str]:
    """Every key the three algorithms log on Discrete and Box toys, entropy bonus and value clip on."""
    keys: set[str] = set()
    for algo in (PPD, StudentDistill, TeacherDistill):
        for space in ("discrete", "box"):
            extra = {"clip_range_vf": 0.2} if algo is PPD else {}
            model = algo("MlpPolicy", ToyEnv(ACTION_SPACES[space]), teacher=toy_teacher(ACTION_SPACES[space]),
                         ent_coef=0.01, **extra, **SMALL)  # fmt: skip
            logger, rec = recording_logger()
            model.set_logger(logger)
            model.learn(128)
            keys |= {k for dump in rec.dumps for k in dump}
    return keys


def test_every_logged_metric_is_documented():
    metrics = (DOCS / "metrics.md").read_text()
    keys = logged_keys()
    assert {"distill/kl", "distill/weight_clipped_fraction", "rollout/teacher_ep_rew_mean"} <= keys
    # keys recorded anywhere in the package (callbacks included), found in the source
    source = "\n".join(p.read_text() for p in (REPO / "src" / "ppdistill").rglob("*.py"))
    keys |= set(re.findall(r"logger\.record\(\s*\"([a-z_]+/[a-z_]+)\"", source))
    missing = sorted(k for k in keys if f"`{k}`" not in metrics)
    assert not missing, f"undocumented metrics in docs/metrics.md: {missing}"
    # the README's short table agrees with the full page
    readme = (REPO / "README.md").read_text()
    assert "docs/metrics.md" in readme
    for key in re.findall(r"`((?:distill|rollout)/[a-z_]+)`", readme):
        assert f"`{key}`" in metrics, key


def _subcommands(parser: argparse.ArgumentParser, prefix: str = "ppdistill"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, f"{prefix} {name}")
            return
    yield prefix, parser


def test_every_cli_command_and_option_is_documented():
    doc = (DOCS / "cli.md").read_text()
    sections = re.split(r"^## ", doc, flags=re.M)
    commands = list(_subcommands(build_parser()))
    assert len(commands) == 10
    for name, parser in commands:
        section = next((s for s in sections if s.startswith(f"`{name}`")), None)
        assert section is not None, f"docs/cli.md has no section for {name}"
        for action in parser._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    assert f"`{option}" in section, f"{name} {option} is not documented"
    assert "## `python -m ppdistill.integrations.zoo train`" in doc
