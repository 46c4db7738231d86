# Developer entry points for glamm.
#
#   make demo       run the demo (python -m glamm.demo)
#   make test       run the test suite without slow tests
#   make test-all   run the whole test suite, slow tests included
#   make bench      run the LMM benchmark battery
#   make lint       run ruff and mypy (installs the lint extras into .venv)
#
# Variables (override on the command line, e.g. `make test PYTEST_ARGS="-x -k lmer"`):
#   PYTHON       interpreter used to create the virtualenv (default python3)
#   VENV         virtualenv directory (default .venv)
#   MARKERS      pytest marker expression for `make test` (default "not slow";
#                empty means no marker selection)
#   PYTEST_ARGS  extra arguments passed to pytest

PYTHON ?= python3
VENV ?= .venv
MARKERS ?= not slow
PYTEST_ARGS ?=

VENV_PY := $(VENV)/bin/python
MARKER_OPT = $(if $(strip $(MARKERS)),-m "$(MARKERS)")

.PHONY: demo test test-all bench lint

# Created once; later runs reuse it.
$(VENV_PY):
	$(PYTHON) -m venv $(VENV)

demo: $(VENV_PY)
	$(VENV_PY) -m pip install -q -e .
	$(VENV_PY) -m glamm.demo

test: $(VENV_PY)
	$(VENV_PY) -m pip install -q -e '.[test]'
	$(VENV_PY) -m pytest -q $(MARKER_OPT) $(PYTEST_ARGS)

test-all:
	$(MAKE) test MARKERS=

lint: $(VENV_PY)
	$(VENV_PY) -m pip install -q -e '.[lint]'
	$(VENV_PY) -m ruff check src tests benchmarks
	$(VENV_PY) -m mypy

bench: $(VENV_PY)
	$(VENV_PY) -m pip install -q -e .
	$(VENV_PY) benchmarks/run_lmm.py
