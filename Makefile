# Two commands do all the set-up: `make demo` (the main job) and `make test`. Both are safe to rerun.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mlpzoo-installed

.PHONY: setup demo test clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m jittor_support.prepare
	touch $(STAMP)

demo: setup
	$(PY) tools/demo.py

test: setup
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) demo_out .pytest_cache
