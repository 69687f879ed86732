# neuro-hw: `make demo` and `make test` are the only set-up a user needs.
# Both create .venv (Python 3.10, required by lava-nc 0.10.0) on first use.
VENV := .venv
PY := $(VENV)/bin/python
# Find a Python 3.10 interpreter: PYTHON310 if given, python3.10 on PATH, or a pyenv install.
PYTHON310 ?= $(shell for c in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do \
	if command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; assert sys.version_info[:2]==(3,10)' >/dev/null 2>&1; then command -v $$c; break; fi; done)

.PHONY: setup demo test test-slow lint bench clean

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON310)" || { echo "error: Python 3.10 not found (lava-nc 0.10.0 needs >=3.10,<3.11); set PYTHON310=/path/to/python3.10" >&2; exit 1; }
	$(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m neuro_hw.cli demo

test: setup
	$(PY) -m pytest -n 2 -q

test-slow: setup
	$(PY) -m pytest -n 2 -q -m slow

lint: setup
	$(PY) -m ruff check neuro_hw emulator targets tests benchmarks

bench: setup
	$(PY) benchmarks/emulator_vs_lava.py

clean:
	rm -rf $(VENV) out
