"""Shared by the tests: randomised weights, the tolerance, the devices to test on, the own-tree guard."""
from __future__ import annotations

import faulthandler
import os
import signal
import sys

import pytest
import torch

import own_tree
from mlp_zoo.tools.pairs import random_weights as random_state  # noqa: F401  (the tests' weights)

# eval-mode logits of the two frameworks agree within this fraction of the largest |logit|
REL_TOL = 1e-4

own_tree.install()


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """A crash in native code (a kernel, oneDNN, Jittor) prints the Python stack of every thread, the test among
    them, on the terminal, and the process ends by that signal. Jittor's own handler, installed at its import,
    would write its report into pytest's capture, which the crash loses, then exit 1 with nothing said."""
    from mlp_zoo.jittor_support.runtime import jt  # noqa: F401  (Jittor installs its handlers at import)

    faulthandler.disable()  # enable() on an enabled handler keeps the handlers it had
    for sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT):
        signal.signal(sig, signal.SIG_DFL)
    faulthandler.enable(file=os.dup(sys.stderr.fileno()), all_threads=True)


@pytest.fixture(autouse=True)
def reads_only_its_own_tree():
    """Fails a test that read anything beside the repository: a user's clone has nothing there."""
    before = len(own_tree.reads_outside)
    yield
    read = own_tree.reads_outside[before:]
    if read:
        pytest.fail(f"read outside the repository, which a user's clone does not have: {sorted(set(read))[:5]}")


def cuda_available() -> bool:
    if not torch.cuda.is_available():
        return False
    from mlp_zoo.jittor_support.runtime import jt

    return bool(jt.has_cuda)


DEVICES = [pytest.param("cpu"),
           pytest.param("cuda", marks=pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU here"))]
