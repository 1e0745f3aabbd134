# The README's two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test unit e2e reliability clean

$(BIN)/timerd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

## install into .venv and run the daemon on its defaults (127.0.0.1:8000)
run: $(BIN)/timerd
	$(BIN)/timerd serve

## install what the tests need, then lint, type-check and run every test
test: $(BIN)/timerd
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	sh tests/browser/ensure_chromium.sh
	sh tests/pg/ensure_postgres.sh
	$(BIN)/pytest

unit: $(BIN)/timerd
	sh tests/pg/ensure_postgres.sh
	$(BIN)/pytest -m 'not e2e'

e2e: $(BIN)/timerd
	sh tests/browser/ensure_chromium.sh
	$(BIN)/pytest -m e2e

## the reliability campaigns in their long form (minutes); figures go to RELIABILITY.md
reliability: $(BIN)/timerd
	TIMERD_CAMPAIGN=long $(BIN)/pytest tests/reliability -s -p no:randomly -o addopts="" --timeout 1800 \
		| tee reliability-long.log | grep -E '^campaign:|passed|failed'

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
