"""The einops adapter on Jittor computes what einops computes on torch, for the patterns the models use."""
from __future__ import annotations

import einops
import numpy as np
import pytest
import torch
from einops.layers.torch import Rearrange as TorchRearrange
from einops.layers.torch import Reduce as TorchReduce

from mlp_zoo.jittor_support.einops_jittor import Rearrange, Reduce, rearrange, reduce, repeat
from mlp_zoo.jittor_support.runtime import jt

X = np.random.RandomState(0).standard_normal((2, 6, 4, 8)).astype(np.float32)

REARRANGE = ["b c h w -> b h w c", "b h w c -> b c h w", "b c h w -> b (h w) c", "b c (h p) w -> b h (p c) w",
             "b c h w -> (b h) w c", "b (g s) h w -> b g s h w"]
REDUCE = [("b c h w -> b c", "mean"), ("b c h w -> b h w", "max"), ("b c h w -> b c h", "sum"),
          ("b (c two) h w -> b c h w", "min")]


@pytest.mark.parametrize("pattern", REARRANGE)
def test_rearrange_matches_torch(pattern: str):
    lengths = {"p": 2} if "p" in pattern else {"g": 3} if "g" in pattern else {}
    expected = einops.rearrange(torch.from_numpy(X), pattern, **lengths).numpy()
    assert np.array_equal(rearrange(jt.array(X), pattern, **lengths).numpy(), expected)
    layer = Rearrange(pattern, **lengths)
    assert np.array_equal(layer(jt.array(X)).numpy(), TorchRearrange(pattern, **lengths)(torch.from_numpy(X)).numpy())


@pytest.mark.parametrize("pattern,op", REDUCE)
def test_reduce_matches_torch(pattern: str, op: str):
    lengths = {"two": 2} if "two" in pattern else {}
    expected = TorchReduce(pattern, op, **lengths)(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(Reduce(pattern, op, **lengths)(jt.array(X)).numpy(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(reduce(jt.array(X), pattern, op, **lengths).numpy(), expected, rtol=1e-6, atol=1e-6)


def test_repeat_matches_torch():
    expected = einops.repeat(torch.from_numpy(X), "b c h w -> b c h w r", r=3).numpy()
    assert np.array_equal(repeat(jt.array(X), "b c h w -> b c h w r", r=3).numpy(), expected)


def test_layers_are_jittor_modules_without_parameters():
    layer = Rearrange("b c h w -> b h w c")
    assert isinstance(layer, jt.Module) and layer.state_dict() == {}
    with pytest.raises(einops.EinopsError):
        Rearrange("b c h w -> b h w")(jt.array(X))
