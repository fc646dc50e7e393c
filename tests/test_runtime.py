"""The Jittor runtime: oneDNN is in use, and the slow path is never taken silently."""
from __future__ import annotations

import os
import subprocess
import sys

from jittor_support.runtime import jittor_home


def test_onednn_is_active():
    from jittor import compile_extern

    assert compile_extern.mkl_ops is not None
    lib = jittor_home() / ".cache" / "jittor" / "mkl" / "dnnl_lnx_2.2.0_cpu_gomp" / "lib" / "libmkldnn.so"
    assert lib.exists()


def _import_with(env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_overrides}
    return subprocess.run([sys.executable, "-c", "import models_jittor"], capture_output=True, text=True, env=env)


def test_disabling_onednn_fails_loudly_without_opt_out():
    r = _import_with({"use_mkl": "0"})
    assert r.returncode != 0 and "MLPZOO_ALLOW_SLOW_JITTOR=1" in r.stderr


def test_import_is_quiet():
    r = _import_with({})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and "[i " not in r.stderr
