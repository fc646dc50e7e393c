"""Both frameworks build every variant with the official parameter count and identical keys and shapes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import models_jittor
import models_pytorch
from model_specs import variant
from weights_convert.checks import OPTIONAL_SUFFIXES


@pytest.mark.parametrize("name", models_pytorch.list_models())
def test_parameter_count_is_official(name: str):
    with torch.device("meta"):
        model = models_pytorch.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == variant(name).params


@pytest.mark.parametrize("name", models_pytorch.list_models())
def test_jittor_state_mirrors_pytorch(name: str):
    with torch.device("meta"):
        torch_shapes = models_pytorch.state_shapes(models_pytorch.create_model(name))
    jittor_shapes = models_jittor.state_shapes(models_jittor.create_model(name))
    # BatchNorm's step counter exists in PyTorch only
    expected = {k: s for k, s in torch_shapes.items() if not k.endswith(OPTIONAL_SUFFIXES)}
    assert jittor_shapes == expected
    jittor_params = sum(int(np.prod(s)) for k, s in jittor_shapes.items() if "running_" not in k)
    assert jittor_params == variant(name).params
