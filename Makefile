# The README's two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# One stamp per install, so `make run` then `make test` (or the reverse) installs what is missing:
# running needs timerd's own dependencies only; the tests add the `test` extra (linters, pytest).
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test unit e2e reliability clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

## install timerd into .venv and run the daemon on its defaults (127.0.0.1:8000)
run: $(RUN_STAMP)
	@echo "the CLI is $(BIN)/timerd (or run: . $(BIN)/activate); e.g. $(BIN)/timerd list"
	$(BIN)/timerd serve

## install what the tests need, then lint, type-check and run every test
test: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	sh tests/browser/ensure_chromium.sh
	sh tests/pg/ensure_postgres.sh
	$(BIN)/pytest

unit: $(TEST_STAMP)
	sh tests/pg/ensure_postgres.sh
	$(BIN)/pytest -m 'not e2e'

e2e: $(TEST_STAMP)
	sh tests/browser/ensure_chromium.sh
	$(BIN)/pytest -m e2e

## the reliability campaigns in their long form (minutes); figures go to RELIABILITY.md
reliability: $(TEST_STAMP)
	TIMERD_CAMPAIGN=long $(BIN)/pytest tests/reliability -s -p no:randomly -o addopts="" --timeout 1800 \
		| tee reliability-long.log | grep -E '^campaign:|passed|failed'

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
