# Entry points: make demo | make test | make dev | make bench
# Needs only python3 (3.11) and make: uv is installed from PyPI into .tools/, and it installs the
# locked dependencies (uv.lock) into .venv/.
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
# make bench runs the backfill from a production install (no dev packages: pandera loads
# hypothesis on its first validation when it is installed, +12 MB in every validating process)
BENCH_VENV := .venv-bench
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export DAGSTER_HOME ?= $(CURDIR)/dagster_home

.PHONY: install demo test test-fast test-ui lint dev bench clean system-deps

install: $(VENV)/.installed node_modules/.installed

$(UV):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(TOOLS) uv==$(UV_VERSION)

$(VENV)/.installed: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	$(BIN)/python -m compileall -q payout_assets payout_standins bench
	touch $@

demo: install
	$(BIN)/python -m payout_standins demo

test: install system-deps
	$(BIN)/ruff check payout_assets payout_standins payout_assets_tests bench
	$(BIN)/ruff format --check payout_assets payout_standins payout_assets_tests bench
	$(BIN)/python -m pytest -n 2 --dist worksteal --durations=15

test-fast: install
	$(BIN)/python -m pytest -m "not integration and not e2e and not ui"

lint: install
	$(BIN)/ruff check --fix payout_assets payout_standins payout_assets_tests bench
	$(BIN)/ruff format payout_assets payout_standins payout_assets_tests bench

system-deps:
	bash scripts/install-system-deps.sh

test-ui: install system-deps
	$(BIN)/python -m pytest -m ui

dev: install
	$(BIN)/python -m payout_standins dev

# The Polygon stand-ins (payout_standins/polygon): anvil, a local EVM node, and solc-js, pinned by
# package-lock.json. anvil's binary ships in a per-platform optional package, so no install
# script needs to run.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	touch $@

$(BENCH_VENV)/.installed: $(UV) pyproject.toml uv.lock
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/$(BENCH_VENV) $(UV) sync --frozen --no-dev --compile-bytecode --python $(PYTHON)
	touch $@

bench: install $(BENCH_VENV)/.installed
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(TOOLS) node_modules .pytest_cache .ruff_cache
