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
	scripts/ensure-services
	$(BIN)/pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

check: lint test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
