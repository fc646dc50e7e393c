"""``python -m mlp_zoo.jittor_support.cuda_build_check``: build Jittor's CUDA code with the CUDA toolkit from PyPI, no GPU.

Jittor compiles its CUDA core at import whenever ``nvcc_path`` names an nvcc and ``<nvcc>/../lib64/libcudart.so``
loads; both come from the ``nvidia-cuda-*`` wheels (``pip install -e '.[cuda]'``). This assembles the toolkit
folder (cuda_toolkit) and, with ``nvcc_path`` set to its wrapper and a Jittor cache of its own:
1. imports Jittor in a fresh process, which builds and links the CUDA core exactly as on a GPU machine; without a
   GPU driver Jittor then stops at its first CUDA call (``cudaErrorInsufficientDriver``), after the build;
2. compiles, with Jittor's CUDA flags, a file holding what Jittor's CUB ops include (CUB, Thrust, libcu++), which
   CUDA 13 refuses below C++17. (Jittor builds those ops after its core has started, which needs a driver.)
``--raw`` uses the toolkit as Jittor would find it, without the wrapper and the header shim, to show what fails.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlp_zoo.jittor_support.cuda_toolkit import (CudaToolkitError, assemble, default_target, find_nvcc, jittor_cuda_includes,
                                         link_libraries)
from mlp_zoo.jittor_support.paths import jittor_home

_IMPORT = "from mlp_zoo.jittor_support.runtime import jt; print('jittor', jt.__version__, 'has_cuda', jt.has_cuda)"
# what Jittor's CUB ops (extern/cuda/cub/ops) include, and one kernel using them
_CUB_PROBE = """#include <cub/device/device_segmented_radix_sort.cuh>
#include <cub/device/device_reduce.cuh>
#include <cub/device/device_scan.cuh>
#include <thrust/device_ptr.h>
#include <thrust/sort.h>
#include "helper_cuda.h"
void probe(float* keys, int* values, int n, cudaStream_t s) {
  thrust::sort_by_key(thrust::cuda::par.on(s), thrust::device_ptr<float>(keys),
                      thrust::device_ptr<float>(keys + n), thrust::device_ptr<int>(values));
}
"""
# the flags Jittor 1.3.11 gives nvcc (compiler.py: convert_nvcc_flags), less the paths of its own cache
_JITTOR_NVCC_FLAGS = ["-std=c++14", "-Xcompiler", "-fPIC", "-O2", "-x", "cu", "--cudart=shared", "--use_fast_math",
                      "-w", "-DHAS_CUDA", "-DIS_CUDA"]


def raw_toolkit(target: Path, real_nvcc: Path) -> Path:
    """The wheel's toolkit behind the symlinks Jittor needs (lib64/libcudart.so), with nothing of ours in it."""
    top = real_nvcc.parent.parent
    lib64 = target / "lib64"
    lib64.mkdir(parents=True, exist_ok=True)
    for name in ("bin", "include", "nvvm"):
        if not (target / name).exists() and (top / name).exists():
            (target / name).symlink_to(top / name)
    link_libraries(top, lib64)
    return target / "bin" / "nvcc"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mlp_zoo.jittor_support.cuda_build_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raw", action="store_true", help="without our nvcc wrapper and header shim")
    args = p.parse_args(argv)
    try:
        real = find_nvcc()
        base = default_target()
        nvcc = raw_toolkit(base.with_name(base.name + "_raw"), real) if args.raw else assemble(base)
    except CudaToolkitError as e:
        print(f"cuda build check: {e}", file=sys.stderr)
        return 2
    version = subprocess.run([str(real), "--version"], capture_output=True, text=True).stdout.strip().splitlines()
    print(f"nvcc: {real} ({version[-1] if version else '?'}); Jittor builds with {nvcc}", flush=True)
    cache = "cuda_build_check_raw" if args.raw else "cuda_build_check"
    env = {**os.environ, "nvcc_path": str(nvcc), "cache_name": cache, "MLPZOO_JITTOR_VERBOSE": "1"}
    start = time.time()
    r = subprocess.run([sys.executable, "-c", _IMPORT], env=env, capture_output=True, text=True)
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", r.stdout + r.stderr)
    built = list((jittor_home() / ".cache" / "jittor").glob(f"**/{cache}/cu*/jittor_core*.so"))
    no_driver = "cudaErrorInsufficientDriver" in text or "no CUDA-capable device" in text
    core_ok = bool(built) and (r.returncode == 0 or no_driver)
    when = "" if not built or built[0].stat().st_mtime >= start else ", built by an earlier run"
    print(f"1. CUDA core: {'BUILT' if core_ok else 'FAILED'} in {time.time() - start:.0f} s "
          f"({built[0].name if built else 'no library'}{when}; exit {r.returncode}"
          f"{', then no GPU driver, as expected here' if core_ok and no_driver else ''})")
    _print_errors(text)
    probe_ok = _compile_cub_probe(nvcc)
    return 0 if core_ok and probe_ok else 1


def _print_errors(text: str) -> None:
    for line in sorted({line.strip() for line in text.splitlines() if re.search(r"\berror\b", line)})[:12]:
        print(f"   {line[:240]}")


def _compile_cub_probe(nvcc: Path) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "cub_probe.cu"
        src.write_text(_CUB_PROBE)
        jittor = jittor_cuda_includes().parents[2]  # helper_cuda.h includes Jittor's own headers
        includes = [f"-I{nvcc.parent.parent / 'include'}", f"-I{jittor_cuda_includes()}", f"-I{jittor / 'src'}",
                    f"-I{jittor / 'extern'}"]
        cmd = [str(nvcc), str(src), "-c", "-o", str(Path(tmp) / "cub_probe.o"), *_JITTOR_NVCC_FLAGS, *includes]
        r = subprocess.run(cmd, capture_output=True, text=True)
    print(f"2. CUB/Thrust with Jittor's nvcc flags: {'BUILT' if r.returncode == 0 else 'FAILED'}")
    _print_errors(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", r.stdout + r.stderr))
    return r.returncode == 0


if __name__ == "__main__":
    sys.exit(main())
