# neuro-hw: `make demo` and `make test` are the only set-up a user needs.
# Both create .venv (Python 3.10, required by lava-nc 0.10.0) on first use, with everything installed:
# neuro-hw, its Lava extra and the dev tools.  `make test-core` checks the core without Lava in .venv-core
# (any Python >= 3.10, newest numpy), where the Lava tests skip with their reason.
VENV := .venv
PY := $(VENV)/bin/python
# Find a Python 3.10 interpreter: PYTHON310 if given, python3.10 on PATH, or a pyenv install.
PYTHON310 ?= $(shell for c in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do \
	if command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; assert sys.version_info[:2]==(3,10)' >/dev/null 2>&1; then command -v $$c; break; fi; done)

CORE_VENV := .venv-core
CORE_PYTHON ?= python3

.PHONY: setup demo test test-slow test-core lint bench clean

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON310)" || { echo "error: Python 3.10 not found (lava-nc 0.10.0 needs >=3.10,<3.11); set PYTHON310=/path/to/python3.10" >&2; exit 1; }
	$(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,lava]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m neuro_hw.cli demo

test: setup
	$(PY) -m pytest -n 2 -q --target=reference --target=emulator

$(CORE_VENV)/.installed: pyproject.toml
	$(CORE_PYTHON) -m venv $(CORE_VENV)
	$(CORE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CORE_VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $@

test-core: $(CORE_VENV)/.installed
	$(CORE_VENV)/bin/python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("lava") is not None)'
	$(CORE_VENV)/bin/python -m pytest -n 2 -q -rs --target=reference --target=emulator

test-slow: setup
	$(PY) -m pytest -n 2 -q -m slow

lint: setup
	$(PY) -m ruff check neuro_hw emulator targets tests benchmarks

bench: setup
	$(PY) benchmarks/emulator_vs_lava.py

clean:
	rm -rf $(VENV) $(CORE_VENV) out
