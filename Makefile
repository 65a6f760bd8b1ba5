# The documented entry points. `make run` and `make test` each set up what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Two installs, two stamps: `run` needs serving and training only, `test` adds the tool chain.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
export NO_MKDOCS_2_WARNING := 1

.PHONY: install run test tools lint typecheck unit docs docs-serve bench bench-smoke audit clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# setup.py and the C source: the installs recompile the scoring kernel when they change.
KERNEL_SRC := setup.py src/anomaly_api/detection/fast/_kernel.c

$(RUN_STAMP): pyproject.toml $(KERNEL_SRC) | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

# kserve's InferenceRESTClient (the OIP client tests): every kserve release requires
# pandas<3, so it is installed without its dependencies; pyproject's test extra pins the
# few that `import kserve` needs (docs/open-inference-protocol.md, "Clients").
KSERVE_CLIENT := kserve==0.21.0

$(DEV_STAMP): pyproject.toml $(KERNEL_SRC) | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,docs]'
	$(BIN)/pip install --quiet --no-deps $(KSERVE_CLIENT)
	touch $(DEV_STAMP) $(RUN_STAMP)

## Everything a developer needs (serving, training, tests, docs).
install: $(DEV_STAMP)

## Train the default model if none exists, then serve on port 8000.
run: $(RUN_STAMP)
	@echo "Admin routes (/admin/*) answer only loopback clients until an admin key is set:"
	@echo "  ANOMALY_ADMIN_API_KEYS=<key> make run   (or in .env; see docs/operations.md)"
	$(BIN)/anomaly-api serve --host 0.0.0.0 --port 8000

## The system tools the tests need: installed with apt-get when missing and root, else named.
tools:
	bash scripts/ensure_tools.sh

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

unit: $(DEV_STAMP) tools
	$(BIN)/pytest

## Build the documentation site into site/; any warning (a broken link or anchor) fails it.
docs: $(DEV_STAMP)
	$(BIN)/mkdocs build --strict

## Preview the documentation site at http://127.0.0.1:8001 while editing.
docs-serve: $(DEV_STAMP)
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

## Lint, type-check, build the docs and run the whole test suite.
test: tools lint typecheck docs unit

## Audit the installed pinned dependencies (pip-audit; needs the vulnerability database online).
audit: $(DEV_STAMP)
	$(BIN)/python scripts/audit_deps.py

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache

## Benchmark (~10-15 min on a quiet 2-core machine, loopback only): every open performance
## target side by side in one run (sections predict, streams, bulk, drift; see
## docs/performance.md; other sections: python -m bench kernel cost quality). Writes
## bench/results/latest.json and latest.md (the docs include it).
bench: $(DEV_STAMP)
	$(BIN)/python -m bench

## Every section and part of the benchmark with tiny sizes (numbers meaningless; a few
## minutes); CI runs it via tests/bench.
bench-smoke: $(DEV_STAMP)
	$(BIN)/python -m bench --smoke
