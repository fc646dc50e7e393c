#!/usr/bin/env bash
# `make test-cuda`: every CUDA check on a machine with an NVIDIA GPU and NO internet, in one table.
# Needs there: python3 with a CUDA build of torch, a CUDA toolkit (nvcc; or the nvidia-cuda-* wheels in
# wheels/gpu), and wheels/gpu/ made by `make gpu-wheels` on a machine with internet (carry it along).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-wheels/gpu}
VENV=${GPU_VENV:-.venv-gpu}
PYTHON=${PYTHON:-python3}

[ -d "$WHEELS" ] || { echo "gpu_check: no $WHEELS/ here: run 'make gpu-wheels' where there is internet" >&2; exit 2; }
"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
  || { echo "gpu_check: $PYTHON has no CUDA build of torch, or sees no GPU" >&2; exit 2; }
# the machine's torch stays; Jittor 1.3.11 needs numpy<2, which shadows the machine's numpy in this venv only
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv --system-site-packages "$VENV"
"$VENV/bin/python" -m pip install --quiet --no-index --find-links "$WHEELS" -r tools/gpu_requirements.txt \
  jittor==1.3.11.0
if ls "$WHEELS"/nvidia_cuda_nvcc-*.whl >/dev/null 2>&1; then  # a toolkit brought as wheels
  "$VENV/bin/python" -m pip install --quiet --no-index --find-links "$WHEELS" nvidia-cuda-nvcc nvidia-cuda-crt \
    nvidia-nvvm nvidia-cuda-runtime nvidia-cuda-cccl
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# the CUDA checks don't use Jittor's CPU kernels, so oneDNN (30 MB of wheels) stays behind: say so, don't hide it
export MLPZOO_ALLOW_SLOW_JITTOR=1
echo "gpu_check: preparing Jittor for CUDA (the first time compiles its core, a few minutes) ..." >&2
"$VENV/bin/python" -m mlp_zoo.jittor_support.prepare
"$VENV/bin/python" -m mlp_zoo.tools.gpu_check "$@"
