# sage-lsp: `make chat` sets everything up and starts the REPL; `make test` runs every test tier.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: chat install dev test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

## chat: make the virtual environment, install sage-lsp and start `sage chat` (mock backend)
chat: install
	$(BIN)/sage chat

## lint: ruff and mypy --strict
lint: dev
	$(BIN)/ruff check sage_lsp tests bench
	$(BIN)/ruff format --check sage_lsp tests bench
	$(BIN)/mypy sage_lsp

## test: lint, then every test tier (what CI runs)
test: lint
	$(BIN)/pytest

## test-fast: the quick tier only (under a minute)
test-fast: dev
	$(BIN)/pytest -m "not slow"

## bench: run the benchmarks, write bench/results/*.json and docs/benchmarks.md
bench: dev
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
