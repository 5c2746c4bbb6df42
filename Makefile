# One set of tasks for people and CI. `make demo` and `make test` are the README's two commands.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
UV := uv
PY_PATHS := src tests $(wildcard benchmarks)

.PHONY: setup demo test check lint typecheck unit integration e2e bench postgres clean

setup:            ## install uv if missing, then the locked dependencies into .venv
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
	$(UV) sync --frozen

demo: setup       ## generate and load the demo brand, then serve the API on http://127.0.0.1:8000
	$(UV) run memberops demo $(ARGS)

test: setup postgres check   ## everything CI runs: lint, types, and the whole test suite on SQLite and PostgreSQL
	$(UV) run pytest -p no:cacheprovider $(ARGS)

check: lint typecheck

lint:
	$(UV) run ruff check $(PY_PATHS)
	$(UV) run ruff format --check $(PY_PATHS)

typecheck:
	$(UV) run mypy

unit: setup
	$(UV) run pytest tests/unit

integration: setup postgres
	$(UV) run pytest tests/integration

e2e: setup postgres
	$(UV) run pytest tests/e2e

bench: setup postgres  ## measure, and write the figures to docs/benchmarks.md (installs wrk if it can)
	@command -v wrk >/dev/null 2>&1 || (apt-get install -y -qq wrk >/dev/null 2>&1 || true)
	$(UV) run python -m benchmarks.run $(ARGS)

postgres:         ## make sure the PostgreSQL the tests use is up
	@bash scripts/ensure-postgres.sh

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache memberops.db* demo-data
