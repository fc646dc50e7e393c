"""The Jittor runtime: oneDNN is in use, and the slow path is never taken silently."""
from __future__ import annotations

import os
import subprocess
import sys

from mlp_zoo.jittor_support.runtime import jittor_home


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


CHILD_KILLED = """
import subprocess, sys, time
import models_jittor
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
time.sleep(0.2)
child.kill()
print("child", child.wait())
time.sleep(0.2)  # Jittor's own SIGCHLD handler would have ended this process with exit 1 by now
print("alive")
"""


def test_a_child_killed_by_a_signal_does_not_end_the_process():
    """Jittor's SIGCHLD handler quick-exits the whole process when any child ends by a signal (under pytest, with
    its message captured and lost); the runtime restores the default, so that this process goes on."""
    r = subprocess.run([sys.executable, "-c", CHILD_KILLED], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["child", "-9", "alive"]
