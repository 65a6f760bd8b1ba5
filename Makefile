# The documented entry points. `make run` and `make test` each set up what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck unit bench bench-smoke audit clean

# setup.py and the C source: `make install` recompiles the scoring kernel when they change.
$(STAMP): pyproject.toml setup.py src/anomaly_api/detection/fast/_kernel.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Train the default model if none exists, then serve on port 8000.
run: $(STAMP)
	$(BIN)/anomaly-api serve --host 0.0.0.0 --port 8000

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

## Lint, type-check and run the whole test suite.
test: lint typecheck unit

## Audit the installed pinned dependencies (pip-audit; needs the vulnerability database online).
audit: $(STAMP)
	$(BIN)/python scripts/audit_deps.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

## Benchmark (~5 min, loopback only): /predict vs a bare endpoint and plain scikit-learn,
## batches, cache, model scoring, RSS, start time. Writes bench/results/latest.json.
bench: $(STAMP)
	$(BIN)/python -m bench

## The benchmark's quick pass (numbers meaningless); CI runs it via tests/bench.
bench-smoke: $(STAMP)
	$(BIN)/python -m bench --smoke
