# The two commands of the README: `make run` and `make test`. Both (re)build .venv from the lock file when it
# is missing or older than the lock or pyproject.toml. `make lock` re-resolves the lock files after a change of
# the dependencies in pyproject.toml.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
# The locks are resolved for the machines that run the project: CPython 3.11 on x86-64 Linux (glibc).
UV_COMPILE := $(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-unknown-linux-gnu --custom-compile-command "make lock"
PORT ?= 8000
export PORT

.PHONY: run test lint typecheck format lock system-deps clean prod-sim chaos

# Every dependency comes from the dev lock, pinned and hash-checked; the project itself adds none. `pip check`
# fails when pyproject.toml names a dependency the lock lacks (run `make lock`).
$(STAMP): $(DEV_LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	@touch $(STAMP)

# The dev lock holds runtime and dev dependencies; the runtime lock (for deployments) is resolved within it,
# so both pin the same versions. Pins already in the lock are kept; `make lock LOCK_ARGS=--upgrade` moves every
# dependency to its newest release within the bounds (`LOCK_ARGS="--upgrade-package NAME"` one of them).
lock: $(STAMP)
	$(UV_COMPILE) --extra dev $(LOCK_ARGS) -o $(DEV_LOCK)
	$(UV_COMPILE) --constraint $(DEV_LOCK) -o $(LOCK)

system-deps:
	@bash scripts/ensure-system-deps.sh

run: $(STAMP)
	@bash scripts/run-dev.sh

# `make prod-sim`: the production shape on loopback (nginx, two web instances, workers, two beats, PostgreSQL,
# Redis, Stripe stand-in, SMTP sink; chaos/prodsim.py), with a few mentors and learners; Ctrl-C stops it all.
prod-sim: system-deps $(STAMP)
	$(BIN)/python -m chaos.prodsim --seed

# `make chaos`: load through nginx while faults are injected one after another, then the invariants' table;
# fails when one broke. CHAOS_ARGS go to `python -m chaos`, e.g. `make chaos CHAOS_ARGS="--duration 600"`.
chaos: system-deps $(STAMP)
	$(BIN)/python -m chaos $(CHAOS_ARGS)

# The suite runs in TEST_WORKERS processes (pytest-xdist), a test file at a time each, so a file's module
# fixtures are built once; each process starts its own servers. Files go out in the suite's order, the
# longest first (tests/conftest.py), not xdist's (most tests first). A narrowed run (PYTEST_ARGS) reports
# coverage without holding it to the floor.
TEST_WORKERS ?= 2
test: system-deps $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --cov=marketplace \
		$(if $(PYTEST_ARGS),--cov-fail-under=0) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) instance test-artifacts .pytest_cache .ruff_cache .mypy_cache .coverage

# `make bench`: the benchmarks in bench/ (figures are ratios to /healthz measured in the same run).
# HTTP_BENCH_ARGS goes to bench/http_bench.py, e.g. `make bench HTTP_BENCH_ARGS=--strict`.
.PHONY: bench
bench: system-deps $(STAMP)
	@bash bench/ensure-wrk.sh
	$(BIN)/python -m bench.slots_bench
	$(BIN)/python -m bench.http_bench $(HTTP_BENCH_ARGS)
	$(BIN)/python -m bench.webhook_bench
	$(BIN)/python -m bench.booking_bench
	$(BIN)/python -m bench.careers_bench
	$(BIN)/python -m bench.mentor_page_bench
	$(BIN)/python -m bench.reminders_bench
	$(BIN)/python -m bench.embedded_broker_bench
	$(BIN)/python -m bench.confirmation_latency_bench
