"""The shared layers: Jittor's LayerNorm and GELU match PyTorch's where Jittor's own do not."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from jittor_support.runtime import jt
from models_jittor import layers as jl
from models_pytorch import layers as tl


@pytest.mark.parametrize("mean,std", [(0.0, 1.0), (10.0, 1.0), (100.0, 1.0), (100.0, 0.01), (1000.0, 0.1)])
def test_layernorm_matches_pytorch_on_uncentred_features(mean: float, std: float):
    """As close to the exact (float64) result as PyTorch's own, so the two agree within PyTorch's error."""
    rng = np.random.RandomState(0)
    x = (mean + std * rng.standard_normal((4, 49, 384))).astype(np.float32)
    w, b = rng.standard_normal(384).astype(np.float32), rng.standard_normal(384).astype(np.float32)
    x64 = x.astype(np.float64)
    exact = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-6) * w + b
    tln, jln = tl.LayerNorm(384, eps=1e-6), jl.LayerNorm(384, eps=1e-6)
    with torch.no_grad():
        tln.weight.copy_(torch.from_numpy(w))
        tln.bias.copy_(torch.from_numpy(b))
        torch_out = tln(torch.from_numpy(x)).numpy()
    jln.weight.assign(jt.array(w))
    jln.bias.assign(jt.array(b))
    jittor_out = jln(jt.array(x)).numpy()
    torch_err = np.abs(torch_out - exact).max()
    assert np.abs(jittor_out - exact).max() <= max(torch_err, 2e-5)
    assert np.abs(jittor_out - torch_out).max() <= 2 * max(torch_err, 2e-5)


def test_jittors_own_layernorm_fails_there():
    """The reason for our LayerNorm: if this starts passing, Jittor fixed it and ours can go."""
    x = (100.0 + 0.01 * np.random.RandomState(0).standard_normal((4, 384))).astype(np.float32)
    expected = torch.nn.functional.layer_norm(torch.from_numpy(x), (384,)).numpy()
    assert np.abs(jt.nn.LayerNorm(384)(jt.array(x)).numpy() - expected).max() > 0.1


@pytest.mark.parametrize("kind", ["exact", "tanh"])
def test_gelu_kinds_match(kind: str):
    x = np.linspace(-6, 6, 1001, dtype=np.float32)
    expected = tl.gelu_layer(kind)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(jl.gelu_layer(kind)(jt.array(x)).numpy(), expected, atol=2e-6)


def test_gelu_kinds_differ_and_unknown_is_refused():
    x = torch.linspace(-3, 3, 101)
    assert (tl.gelu_layer("exact")(x) - tl.gelu_layer("tanh")(x)).abs().max() > 1e-4
    with pytest.raises(ValueError):
        tl.gelu_layer("fast")
    with pytest.raises(ValueError):
        jl.gelu_layer("fast")


def test_drop_path_only_in_training():
    x = np.ones((64, 3, 2, 2), np.float32)
    t = tl.DropPath(0.5)
    j = jl.DropPath(0.5)
    assert np.array_equal(t.eval()(torch.from_numpy(x)).numpy(), x)
    j.eval()
    assert np.array_equal(j(jt.array(x)).numpy(), x)
    t.train()
    j.train()
    for out in (t(torch.from_numpy(x)).numpy(), j(jt.array(x)).numpy()):
        per_sample = out.reshape(64, -1)[:, 0]
        assert set(np.unique(per_sample)) <= {0.0, 2.0} and 10 < (per_sample == 0).sum() < 54
