# One entry point. `make demo` and `make test` create the virtual environment themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint check chaos bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: $(BIN)/.installed  ## the offline demo: emulator + scripted agent, the whole lifecycle
	$(BIN)/aw demo

test: $(BIN)/.installed  ## the whole suite (needs PostgreSQL and Redis; starts them if it can)
	scripts/ensure-system-packages
	scripts/ensure-services
	$(BIN)/pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench chaos
	$(BIN)/ruff format --check src tests bench chaos
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test

chaos: $(BIN)/.installed  ## a seeded chaos run (real processes, kills, faults, review/check rounds); checks G1-G5, R1-R3
	$(BIN)/python -m chaos --issues 8 --workers 2 --seed 1

bench: $(BIN)/.installed  ## the benchmarks print figures (BENCHMARKS.md); none is a test
	PYTHONPATH=. $(BIN)/python bench/dup_storm.py --jobs 3000 --concurrency 4 --repeat 2
	PYTHONPATH=. $(BIN)/python bench/lifecycle.py --issues 100 --mode inprocess

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
