# Thin wrapper: every install step lives here so a fresh clone needs only Python 3.11.
PYTHON ?= python3
VENV   ?= .venv
# The suite waits on servers more than it computes: a few workers per core (files stay whole
# on one worker, so module-scoped servers start once).
TEST_WORKERS ?= 4
BIN    := $(VENV)/bin
# `make run` needs only the package; `make test` also the test tools (ruff, mypy, ...).
STAMP      := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: run test unit bench lint fmt migrate install install-test clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP) $(TEST_STAMP)

install: $(STAMP)

install-test: $(TEST_STAMP)

run: $(STAMP)
	$(BIN)/waymark serve --host 127.0.0.1 --port 8000

# The web console's browser tests drive Debian's Chromium: installed here when root (as in
# CI, where a failed install fails the run); as another user the tests skip and say how.
chromium:
	command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		(apt-get update && apt-get install -y --no-install-recommends chromium)

test: $(TEST_STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

unit: $(TEST_STAMP)
	$(BIN)/pytest -q tests/unit

$(BENCH_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $(STAMP) $(BENCH_STAMP)

# BENCH_ARGS=--quick for the under-a-minute run.
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

fmt: $(TEST_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(STAMP)
	$(BIN)/waymark migrate

clean:
	rm -rf $(VENV) .waymark
