# Everyone runs the project the same way: `make quickstart`, `make test`, `make lint`, `make type`.
# Every install goes through constraints.txt, which pins the CPU build of torch.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --constraint constraints.txt

.PHONY: install install-test quickstart test test-fast lint type docs bench-overhead clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e ".[mujoco]"
	touch $@

$(VENV)/.installed-test: $(VENV)/procgen/.installed
	$(PIP) -e ".[mujoco,procgen,test,docs]"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

## Procgen (see src/ppdistill/envs/procgen.py for why it lives in a folder of its own).
install-procgen: $(VENV)/procgen/.installed

$(VENV)/procgen/.installed: $(VENV)/.installed
	$(PIP) -e ".[procgen]"
	$(BIN)/python -m pip install --quiet --no-deps --target $(VENV)/procgen \
		procgen2==0.10.7 gym3==0.3.3 gym==0.26.2 gym-notices==0.1.0
	touch $@

## The main job: distill the bundled teacher with PPD, student-distill and teacher-distill.
## (--force: running it again replaces the demo's own earlier results in runs/quickstart)
quickstart: install
	$(BIN)/ppdistill quickstart --out runs/quickstart --force

## The whole test suite, learning tests included (under 15 minutes on 2 cores), one worker per
## core up to 4 (each test keeps one torch thread: tests/conftest.py).
test: install-test
	$(BIN)/python -m pytest -n auto --maxprocesses 4

## Without the learning tests.
test-fast: install-test
	$(BIN)/python -m pytest -m "not slow"

## ruff, and the layers contract in pyproject.toml (docs/architecture.md)
lint: install-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

type: install-test
	$(BIN)/mypy

## The documentation site (mkdocs.yml), into site/: a broken link or anchor fails it.
docs: install-test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench-overhead: install
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
