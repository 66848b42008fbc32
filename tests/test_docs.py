"""The documentation runs and is complete: the README's and the API page's examples, every
logged metric, every CLI command and option, the site's nav and API reference (mkdocs.yml)."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from pathlib import Path

import pytest

from ppdistill import PPD, StudentDistill, TeacherDistill
from ppdistill.cli.main import build_parser

from .conftest import REPO, zoo_dir, zoo_path
from .toy import ACTION_SPACES, SMALL, ToyEnv, recording_logger, toy_teacher

DOCS = REPO / "docs"
README = REPO / "README.md"

# The uses that docs/api.md shows, each in a section of its own with a runnable example.
API_EXAMPLES = (
    "Compress",
    "Self-distill",
    "Grow",
    "DQN → PPO",
    "Rescue an imperfect teacher",
    "Export and deploy",
)


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def sections(text: str, level: str = "## ") -> dict[str, str]:
    """Markdown sections by heading (the text before the first heading under "")."""
    parts = re.split(rf"^{level}", text, flags=re.M)
    return {"": parts[0], **{part.split("\n", 1)[0].strip(): part for part in parts[1:]}}


def doc_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def test_api_page_has_an_example_per_use():
    by_heading = sections((DOCS / "api.md").read_text())
    setup = re.findall(r"```python\n(.*?)```", by_heading[""], flags=re.S)
    assert len(setup) == 1 and "ZOO = " in setup[0], "docs/api.md starts with one setup block"
    for use in API_EXAMPLES:  # each use has its section ("Grow: a larger student"), with its example
        heading = next((h for h in by_heading if h == use or h.startswith(f"{use}:")), None)
        assert heading is not None, f"docs/api.md has no section for {use!r}"
        assert "```python\n" in by_heading[heading], f"docs/api.md: section {heading!r} has no example"


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
    namespace: dict = {"__name__": "__docs__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/api.md, python block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    for expected in ("student [32, 16]", "self-distilled [64, 64]", "grown [128, 128]", "PPO student",
                     "corrupted teacher", "actions identical", "ONNX student, one episode"):  # fmt: skip
        assert expected in out, expected
    assert (tmp_path / "cartpole-small.onnx").is_file()


@pytest.mark.slow
def test_privileged_example_runs(tmp_path, monkeypatch, capsys):
    """docs/privileged.md's worked example, with 512 steps: a Dict environment's policy group for
    the student, an ONNX file whose observation input is that group alone."""
    pytest.importorskip("onnxruntime", reason="the export example needs the [onnx] extra")
    zoo_path("ppo/CartPole-v1_1")
    monkeypatch.setenv("PPDISTILL_ZOO_DIR", str(zoo_dir().resolve()))
    monkeypatch.setenv("PPDISTILL_DOCS_STEPS", "512")
    monkeypatch.setenv("PPDISTILL_DOCS_EPISODES", "2")
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(DOCS / "privileged.md")
    assert len(blocks) == 4
    namespace: dict = {"__name__": "__docs__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/privileged.md, python block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    for expected in ("LSTM student on the policy group", "state_h (1, batch, 32) float32",
                     "ONNX LSTM student, one episode", "LSTM student on positions",
                     "with the memory's prediction"):  # fmt: skip
        assert expected in out, expected
    assert namespace["student"].observation_space.shape == (3,)  # the policy group, not privileged
    assert namespace["report"].input.startswith("obs (batch, 3) float32, state_h")
    assert (tmp_path / "cue-student.onnx").is_file()
    assert namespace["predicting"].privileged_head is not None


def readme_example() -> str:
    (block,) = re.findall(r"```python\n(.*?)```", sections(README.read_text())["In Python"], flags=re.S)
    return block


def test_readme_example_is_the_home_pages():
    assert readme_example() in python_blocks(DOCS / "index.md"), (
        "README's example differs from docs/index.md's"
    )


@pytest.mark.slow
def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    """The README's ten-line example, as written, with fewer steps and episodes."""
    block = readme_example()
    assert len(block.splitlines()) <= 12, "the README's example is meant to fit in about ten lines"
    short, n = re.subn(r"\.learn\([0-9_]+", ".learn(512", block)
    assert n == 1, "the README's example calls learn(N) once"
    short, n = re.subn(r"n_episodes=\d+", "n_episodes=2", short)
    assert n == 1, "the README's example evaluates once"
    monkeypatch.chdir(tmp_path)
    exec(compile(short, "README.md, python block", "exec"), {"__name__": "__readme__"})
    float(capsys.readouterr().out.strip().splitlines()[-1])  # it prints the mean return
    assert (tmp_path / "student.zip").is_file()


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
    # the README points to the page, and every key another page names is on it
    assert "docs/metrics.md" in README.read_text()
    named = {
        (page.name, key)
        for page in [README, *doc_pages()]
        for key in re.findall(r"`((?:distill|rollout|train|eval|time)/[a-z_]+)`", page.read_text())
    }
    assert named, "no metric key found in the docs: the scan is broken"
    unknown = sorted((page, key) for page, key in named if f"`{key}`" not in metrics)
    assert not unknown, f"metrics named in the docs but missing from docs/metrics.md: {unknown}"


def _subcommands(parser: argparse.ArgumentParser, prefix: str = "ppdistill"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, f"{prefix} {name}")
            return
    yield prefix, parser


def test_every_cli_command_and_option_is_documented():
    doc = (DOCS / "cli.md").read_text()
    by_heading = sections(doc)
    commands = dict(_subcommands(build_parser()))
    documented = {h.strip("`") for h in by_heading if re.fullmatch(r"`ppdistill [^`]+`", h)}
    # one section per command of the parser, and none for a command it does not have
    assert documented == set(commands), (
        f"docs/cli.md sections {sorted(documented)} != parser {sorted(commands)}"
    )
    for name, parser in commands.items():
        section = by_heading[f"`{name}`"]
        for action in parser._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    assert f"`{option}" in section, f"{name} {option} is not documented"
    assert "## `python -m ppdistill.integrations.zoo train`" in doc


def command_lines(text: str) -> list[str]:
    """Every `ppdistill ...` command in the text's bash and text code blocks, continuations joined."""
    found = []
    for block in re.findall(r"```(?:bash|text)\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for command in line.split("&&"):
                command = command.split("#", 1)[0].strip()
                if command.startswith("ppdistill "):
                    found.append(command)
    return found


def test_command_examples_use_real_commands_and_options():
    """The README's five lines, the synopsis and every example in the docs name real options."""
    commands = dict(_subcommands(build_parser()))
    readme = command_lines(sections(README.read_text())["Command line"])
    assert 3 <= len(readme) <= 6, "the README shows the command line in about five lines"
    lines = readme + [line for page in doc_pages() for line in command_lines(page.read_text())]
    assert any(line.startswith("ppdistill bench report") for line in lines)
    for line in lines:
        words = shlex.split(line.replace("|", " "))
        name = max((c for c in commands if words[: len(c.split())] == c.split()), key=len, default=None)
        assert name is not None, f"not a ppdistill command: {line}"
        known = {o for action in commands[name]._actions for o in action.option_strings}
        unknown = [w for w in re.findall(r"(?<![\w-])--?[a-z][a-z-]*", line) if w not in known]
        assert not unknown, f"{line}: {name} has no option {unknown}"


def test_readme_setup_is_the_two_make_commands():
    block = re.search(r"```bash\n(.*?)```", sections(README.read_text())["Set up"], flags=re.S)
    assert block is not None
    commands = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    assert commands == ["make quickstart", "make test"]
    makefile = (REPO / "Makefile").read_text()
    for target in ("quickstart", "test", "docs"):
        assert re.search(rf"^{target}:", makefile, flags=re.M), f"the Makefile has no {target} target"


def test_readme_links_resolve():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if "://" not in link]
    assert "docs/metrics.md" in local and "benchmarks/results/cpu/report.md" in local
    missing = [link for link in local if not (REPO / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_site_nav_lists_every_page():
    """mkdocs.yml's nav names every page under docs/ once, and only pages that exist."""
    config = (REPO / "mkdocs.yml").read_text()
    nav = re.search(r"^nav:\n((?:[ ]+.*\n)+)", config, flags=re.M)
    assert nav is not None, "mkdocs.yml has no nav"
    listed = re.findall(r"([\w./-]+\.md)\s*$", nav.group(1), flags=re.M)
    pages = [str(page.relative_to(DOCS)) for page in doc_pages()]
    assert sorted(listed) == sorted(pages)
    assert "docstring_style: sphinx" in config and "--strict" in (REPO / "Makefile").read_text()


REFERENCED = (
    "ppdistill.PPD",
    "ppdistill.StudentDistill",
    "ppdistill.TeacherDistill",
    "ppdistill.load_teacher",
    "ppdistill.evaluate",
    "ppdistill.Teacher",
    "ppdistill.recommended",
    "ppdistill.teachers",
    "ppdistill.core.losses",
    "ppdistill.core.schedules",
    "ppdistill.core.distributions",
    "ppdistill.evaluation",
    "ppdistill.experiment.runner",
    "ppdistill.deploy.export",
    "ppdistill.algorithms.recurrent",
    "ppdistill.envs.views",
    "ppdistill.envs.masked",
    "ppdistill.envs.memory",
)


def test_api_reference_covers_the_public_api():
    """Every `::: name` of the reference pages exists, and the public API is among them."""
    targets = [t for page in sorted((DOCS / "reference").glob("*.md"))
               for t in re.findall(r"^::: ([\w.]+)\s*$", page.read_text(), flags=re.M)]  # fmt: skip
    missing = sorted(set(REFERENCED) - set(targets))
    assert not missing, f"docs/reference/ does not document {missing}"
    for target in targets:
        module, _, attr = target.rpartition(".")
        try:
            importlib.import_module(target)
        except ModuleNotFoundError:
            assert hasattr(importlib.import_module(module), attr), f"docs/reference/: {target} does not exist"
