# The two commands of the README's quick start: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= config.example.yaml

.PHONY: run test lint typecheck unit bench bench-harvest clean container-test

$(BIN)/prepaid: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.dev: $(BIN)/prepaid
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

# Sync the example CSV exports into the example ledger, then show what is left.
run: $(BIN)/prepaid
	$(BIN)/prepaid --config $(CONFIG) sync; test $$? -le 3
	$(BIN)/prepaid --config $(CONFIG) balance

lint: $(VENV)/.dev
	$(BIN)/ruff check sync connectors tests bench
	$(BIN)/ruff format --check sync connectors tests bench

typecheck: $(VENV)/.dev
	$(BIN)/mypy sync connectors

unit: $(VENV)/.dev
	$(BIN)/pytest -n 2 -q

test: lint typecheck unit

bench: $(BIN)/prepaid
	$(BIN)/python bench/csv_sync.py

# 20,000 and 200,000 entries from the fake Harvest API (tests/fakes) through `prepaid sync`,
# against a bare download of the same pages.
bench-harvest: $(BIN)/prepaid
	$(BIN)/python bench/harvest_sync.py

# Build the image in a private Docker engine and prove it (needs root; see the script's header).
container-test:
	bash .ci/container-smoke.sh

clean:
	rm -rf $(VENV) prepaid.db prepaid.db-* outbox .mypy_cache .pytest_cache .ruff_cache
