"""Shared by the tests: randomised weights, the tolerance, the devices to test on."""
from __future__ import annotations

import pytest
import torch

from tools.crosscheck import random_weights as random_state  # noqa: F401  (the tests' weights)

# eval-mode logits of the two frameworks agree within this fraction of the largest |logit|
REL_TOL = 1e-4


def cuda_available() -> bool:
    if not torch.cuda.is_available():
        return False
    from jittor_support.runtime import jt

    return bool(jt.has_cuda)


DEVICES = [pytest.param("cpu"),
           pytest.param("cuda", marks=pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU here"))]
