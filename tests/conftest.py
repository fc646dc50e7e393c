"""Shared fixtures: models with randomised weights and BatchNorm statistics, devices to test on."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import models_pytorch
from model_specs import variant

# eval-mode logits of the two frameworks agree within this fraction of the largest |logit|
REL_TOL = 1e-4


def cuda_available() -> bool:
    if not torch.cuda.is_available():
        return False
    from jittor_support.runtime import jt

    return bool(jt.has_cuda)


DEVICES = [pytest.param("cpu"),
           pytest.param("cuda", marks=pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU here"))]


def random_state(name: str, seed: int = 0, **kwargs) -> dict[str, np.ndarray]:
    """The PyTorch model's state: default init, with every vector (biases, norm affine parameters, BatchNorm
    statistics) randomised so that loading each of them is tested; as numpy."""
    torch.manual_seed(seed)
    model = models_pytorch.create_model(name, **kwargs)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if key.endswith("running_mean"):
                value.normal_(0.0, 0.5, generator=g)
            elif key.endswith("running_var"):
                value.uniform_(0.5, 2.0, generator=g)
            elif key.endswith("num_batches_tracked"):
                value.fill_(int(torch.randint(1, 10_000, (), generator=g)))
            elif value.ndim == 1:
                value.add_(torch.randn(value.shape, generator=g) * 0.1)
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def batch_for(name: str) -> int:
    """Smaller batches for the large variants keep the suite inside CI's time on 2 cores."""
    return 1 if variant(name).params > 50_000_000 else 2
