"""The shared layers: Jittor's LayerNorm and GELU match PyTorch's where Jittor's own do not."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mlp_zoo.jittor_support.runtime import jt
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


def _batchnorms(x: np.ndarray, w: np.ndarray, b: np.ndarray, momentum: float | None):
    """Train-mode output, input/weight/bias gradients for the upstream gradient ``gy``, running statistics after
    two batches (``x`` and ``x`` shifted), then eval output: PyTorch in float32 and float64, and ours."""
    gy = np.random.RandomState(1).standard_normal(x.shape)
    results = []
    for dtype in (torch.float32, torch.float64):
        # (rows, C), as sMLPNet's channels-last BatchNorm passes it, is BatchNorm1d's input in PyTorch
        bn = (torch.nn.BatchNorm2d if x.ndim == 4 else torch.nn.BatchNorm1d)(x.shape[1], momentum=momentum).to(dtype)
        with torch.no_grad():
            bn.weight.copy_(torch.from_numpy(w))
            bn.bias.copy_(torch.from_numpy(b))
        xt = torch.from_numpy(x).to(dtype).requires_grad_()
        y = bn(xt)
        y.backward(torch.from_numpy(gy).to(dtype))
        bn(torch.from_numpy(x + 1).to(dtype))
        out = [y, xt.grad, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var,
               bn.eval()(torch.from_numpy(x).to(dtype))]
        results.append([v.detach().double().numpy() for v in out])
    bn = jl.BatchNorm2d(x.shape[1], momentum=momentum)
    bn.weight.assign(jt.array(w))
    bn.bias.assign(jt.array(b))
    xj = jt.array(x)
    y = bn(xj)
    grads = jt.grad((y * jt.array(gy.astype(np.float32))).sum(), [xj, bn.weight, bn.bias])
    out = [v.numpy() for v in (y, *grads)]
    bn(jt.array(x + 1)).sync()
    out += [bn.running_mean.numpy(), bn.running_var.numpy()]
    bn.eval()
    out.append(bn(xj).numpy())
    return results[0], results[1], [v.astype(np.float64) for v in out]


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("shape,mean", [((4, 32, 28, 28), 0.0), ((4, 32, 28, 28), 10.0), ((6272, 48), 3.0)])
def test_batchnorm_matches_pytorch(shape: tuple[int, ...], mean: float, momentum: float | None):
    """Output, gradients, running statistics (PyTorch's: unbiased variance, ``momentum=None`` averaging) and eval:
    no further from float64 than PyTorch (within 2e-6 of each quantity's max), on uncentred input too."""
    rng = np.random.RandomState(0)
    x = (mean + rng.standard_normal(shape)).astype(np.float32)
    w = (1 + 0.2 * rng.standard_normal(shape[1])).astype(np.float32)
    b = (0.2 * rng.standard_normal(shape[1])).astype(np.float32)
    torch32, exact, ours = _batchnorms(x, w, b, momentum)
    names = ["output", "grad x", "grad weight", "grad bias", "running_mean", "running_var", "eval output"]
    for name, t, e, j in zip(names, torch32, exact, ours):
        scale = np.abs(e).max()
        assert np.abs(j - e).max() <= max(np.abs(t - e).max(), 2e-6 * scale), name


def test_jittors_own_batchnorm_is_off():
    """The reason for our BatchNorm2d: Jittor's tracks the biased variance (and loses digits on uncentred
    input); if this starts failing, Jittor adopted PyTorch's semantics and ours may go."""
    x = (10.0 + np.random.RandomState(0).standard_normal((4, 8, 16, 16))).astype(np.float32)
    theirs = jt.nn.BatchNorm2d(8)
    theirs(jt.array(x)).sync()
    bn = torch.nn.BatchNorm2d(8)
    bn(torch.from_numpy(x))
    assert np.abs(theirs.running_var.numpy() - bn.running_var.numpy()).max() > 1e-4
