# The two commands of the README: `make run` and `make test`. Both (re)build .venv when it is missing or stale.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
export PORT

.PHONY: run test lint format system-deps clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

system-deps:
	@bash scripts/ensure-system-deps.sh

run: $(STAMP)
	@bash scripts/run-dev.sh

test: system-deps $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) instance test-artifacts .pytest_cache .ruff_cache

# `make bench`: the benchmarks in bench/ (figures are ratios to /healthz measured in the same run).
# HTTP_BENCH_ARGS goes to bench/http_bench.py, e.g. `make bench HTTP_BENCH_ARGS=--strict`.
.PHONY: bench
bench: system-deps $(STAMP)
	@bash bench/ensure-wrk.sh
	$(BIN)/python -m bench.slots_bench
	$(BIN)/python -m bench.http_bench $(HTTP_BENCH_ARGS)
	$(BIN)/python -m bench.webhook_bench
	$(BIN)/python -m bench.careers_bench
	$(BIN)/python -m bench.reminders_bench
