# Two commands for a new user:   make demo    and    make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The machine image ships a CPU build of torch here; elsewhere torch==2.13.0 comes from PyPI.
FIND_LINKS := $(shell test -d /opt/wheels && echo --find-links /opt/wheels)
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export PYTHONUNBUFFERED := 1

.PHONY: install demo test test-fast lint bench ui services clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(BIN)/uv pip install --python $(BIN)/python $(FIND_LINKS) --compile-bytecode -e '.[test]'
	touch $@

install: $(BIN)/.installed

## Build the demo sources, run the whole graph on them, print where the outputs are.
demo: install
	$(BIN)/medtrinity demo

## Install, lint, run the fast tier, start the services the slow tests need (PostgreSQL, Chromium; as root), run the rest.
test: install lint test-fast
	bash scripts/services.sh
	$(BIN)/python -m pytest -m slow

## The fast tier: every test not marked slow (under a minute on 2 cores).
test-fast: install
	$(BIN)/python -m pytest -m "not slow"

## The linter configuration in pyproject.toml ([tool.ruff]).
lint: install
	$(BIN)/ruff check .

## Ratio benchmarks (quick mode), written to benchmarks/RESULTS.md.
bench: install
	$(BIN)/python -m benchmarks --quick

## The Dagster UI on http://127.0.0.1:3000 over the demo configuration.
ui: install
	$(BIN)/medtrinity ui

clean:
	rm -rf data/out data/demo .dagster_home
