"""The multithreaded CPU kernels (``jittor_support.cpu_kernels``) behind Jittor's GELU, LayerNorm, BatchNorm and
ReLU: forward and backward against float64 PyTorch, at least as accurate as float32 PyTorch, and equal to the
Jittor-op forms that CUDA runs."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import torch

from mlp_zoo.jittor_support import cpu_kernels
from mlp_zoo.jittor_support.runtime import jt
from models_jittor import layers as jl


def _torch_reference(fn: Callable[..., torch.Tensor], inputs: list[np.ndarray], grad: np.ndarray,
                     dtype: torch.dtype) -> tuple[np.ndarray, list[np.ndarray]]:
    """(output, gradient of every input) of ``fn`` in PyTorch at ``dtype``, for output gradient ``grad``."""
    ts = [torch.tensor(a, dtype=dtype, requires_grad=True) for a in inputs]
    out = fn(*ts)
    out.backward(torch.tensor(grad, dtype=dtype))
    return out.detach().double().numpy(), [t.grad.double().numpy() for t in ts]


def _jittor_run(module: jt.Module, x: np.ndarray, grad: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    xj = jt.array(x)
    params = [p for p in module.parameters() if not p.is_stop_grad()]
    out = module(xj)
    grads = jt.grad((out * jt.array(grad)).sum(), [xj] + params)
    return out.numpy().astype(np.float64), [g.numpy().astype(np.float64) for g in grads]


def _assert_as_accurate(jittor: np.ndarray, torch32: np.ndarray, exact: np.ndarray, floor: float) -> None:
    """Jittor is at most 2x as far from the float64 result as float32 PyTorch, or within ``floor`` of the
    result's scale."""
    scale = np.abs(exact).max()
    torch_err, jittor_err = np.abs(torch32 - exact).max(), np.abs(jittor - exact).max()
    assert jittor_err <= max(2 * torch_err, floor * scale), (jittor_err, torch_err, scale)


@pytest.fixture(params=["kernels", "jittor-ops"])
def kernel_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each layer test runs on the CPU kernels and on the Jittor-op forms that CUDA runs."""
    if request.param == "jittor-ops":
        monkeypatch.setattr(cpu_kernels, "enabled", lambda *tensors: False)
    return request.param


def _set(module: jt.Module, **values: np.ndarray) -> None:
    for k, v in values.items():
        getattr(module, k).assign(jt.array(v))


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_gelu_with_and_without_bias(kernel_path: str, scale: float):
    rng = np.random.RandomState(0)
    x = (scale * rng.standard_normal((4, 37, 96))).astype(np.float32)  # past the erf clamp at 4 * sqrt(2)
    g = rng.standard_normal(x.shape).astype(np.float32)
    exact, exact_grads = _torch_reference(torch.nn.functional.gelu, [x], g, torch.float64)
    t32, t32_grads = _torch_reference(torch.nn.functional.gelu, [x], g, torch.float32)
    out, grads = _jittor_run(jl.ErfGELU(), x, g)
    _assert_as_accurate(out, t32, exact, 1e-6)
    _assert_as_accurate(grads[0], t32_grads[0], exact_grads[0], 1e-5)

    fc, bias = jt.nn.Linear(96, 96), rng.standard_normal(96).astype(np.float32)
    _set(fc, weight=np.eye(96, dtype=np.float32), bias=bias)

    class LinearGELU(jt.Module):
        def __init__(self) -> None:
            self.fc, self.act = fc, jl.ErfGELU()

        def execute(self, v: jt.Var) -> jt.Var:
            return jl.linear_act(self.fc, self.act, v)

    fn = lambda v, b: torch.nn.functional.gelu(v + b)  # noqa: E731
    exact, exact_grads = _torch_reference(fn, [x, bias], g, torch.float64)
    t32, t32_grads = _torch_reference(fn, [x, bias], g, torch.float32)
    out, grads = _jittor_run(LinearGELU(), x, g)
    _assert_as_accurate(out, t32, exact, 1e-6)
    _assert_as_accurate(grads[0], t32_grads[0], exact_grads[0], 1e-5)  # through the identity weight
    _assert_as_accurate(grads[2], t32_grads[1], exact_grads[1], 1e-6)  # the bias: a sum over 148 rows


@pytest.mark.parametrize("mean,std", [(0.0, 1.0), (100.0, 0.01)])
def test_layernorm_forward_and_backward(kernel_path: str, mean: float, std: float):
    rng = np.random.RandomState(1)
    x = (mean + std * rng.standard_normal((8, 49, 192))).astype(np.float32)
    w, b = (1 + 0.1 * rng.standard_normal((2, 192))).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    fn = lambda v, wt, bs: torch.nn.functional.layer_norm(v, (192,), wt, bs, eps=1e-6)  # noqa: E731
    exact, exact_grads = _torch_reference(fn, [x, w, b], g, torch.float64)
    t32, t32_grads = _torch_reference(fn, [x, w, b], g, torch.float32)
    ln = jl.LayerNorm(192, eps=1e-6)
    _set(ln, weight=w, bias=b)
    out, grads = _jittor_run(ln, x, g)
    _assert_as_accurate(out, t32, exact, 2e-6)
    for got, t, e in zip(grads, t32_grads, exact_grads):  # x, weight, bias
        _assert_as_accurate(got, t, e, 2e-6)


@pytest.mark.parametrize("layout", ["nchw", "rows"])
def test_batchnorm_training_forward_backward_and_statistics(kernel_path: str, layout: str):
    rng = np.random.RandomState(2)
    shape = (6, 24, 9, 11) if layout == "nchw" else (6 * 9 * 11, 24)  # rows: sMLPNet's channels-last BN
    x = (5 + 0.5 * rng.standard_normal(shape)).astype(np.float32)
    w, b = (1 + 0.1 * rng.standard_normal((2, 24))).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    fn = lambda v, wt, bs: torch.nn.functional.batch_norm(v, None, None, wt, bs, training=True)  # noqa: E731
    exact, exact_grads = _torch_reference(fn, [x, w, b], g, torch.float64)
    t32, t32_grads = _torch_reference(fn, [x, w, b], g, torch.float32)
    bn = jl.BatchNorm2d(24)
    _set(bn, weight=w, bias=b)
    bn.train()
    out, grads = _jittor_run(bn, x, g)
    _assert_as_accurate(out, t32, exact, 1e-6)
    for got, t, e in zip(grads, t32_grads, exact_grads):  # x, weight, bias
        _assert_as_accurate(got, t, e, 1e-6)
    axes = (0, 2, 3) if layout == "nchw" else (0,)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * x64.mean(axes), rtol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * x64.var(axes, ddof=1), rtol=1e-6)


@pytest.mark.parametrize("layout", ["nchw", "rows"])
def test_batchnorm_eval_forward_and_backward(kernel_path: str, layout: str):
    """BatchNorm in eval (the running statistics' affine map, a kernel on the CPU) against PyTorch's, the gradients
    of x, weight and bias included."""
    rng = np.random.RandomState(3)
    shape = (4, 24, 7, 5) if layout == "nchw" else (4 * 7 * 5, 24)
    x = rng.standard_normal(shape).astype(np.float32)
    w, b, mean = rng.standard_normal((3, 24)).astype(np.float32)
    var = (0.5 + rng.random_sample(24)).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    fn = lambda v, wt, bs: torch.nn.functional.batch_norm(v, torch.from_numpy(mean).to(v.dtype),  # noqa: E731
                                                          torch.from_numpy(var).to(v.dtype), wt, bs, training=False)
    exact, exact_grads = _torch_reference(fn, [x, w, b], g, torch.float64)
    t32, t32_grads = _torch_reference(fn, [x, w, b], g, torch.float32)
    bn = jl.BatchNorm2d(24)
    _set(bn, weight=w, bias=b, running_mean=mean, running_var=var)
    bn.eval()
    out, grads = _jittor_run(bn, x, g)
    _assert_as_accurate(out, t32, exact, 1e-6)
    for got, t, e in zip(grads, t32_grads, exact_grads):
        _assert_as_accurate(got, t, e, 1e-6)


def test_concat_linear_forward_and_backward(kernel_path: str):
    """``concat(parts) @ weight.T`` without the concat (sMLPNet's fuse; one kernel of oneDNN sgemms on the CPU):
    output and the gradients of the weight and of every part, against PyTorch on the concatenated input."""
    rng = np.random.RandomState(4)
    parts = [rng.standard_normal((2, 6, 5, 16)).astype(np.float32) for _ in range(3)]
    w = (rng.standard_normal((24, 48)) / 7).astype(np.float32)
    g = rng.standard_normal((2, 6, 5, 24)).astype(np.float32)
    fn = lambda wt, *ps: torch.cat(ps, -1) @ wt.T  # noqa: E731
    exact, exact_grads = _torch_reference(fn, [w, *parts], g, torch.float64)
    t32, t32_grads = _torch_reference(fn, [w, *parts], g, torch.float32)
    wj, pj = jt.array(w), [jt.array(p) for p in parts]
    out = jl.concat_linear(pj, wj)
    grads = jt.grad((out * jt.array(g)).sum(), [wj, *pj])
    _assert_as_accurate(out.numpy(), t32, exact, 1e-6)
    assert len(grads) == 4
    for got, t, e in zip(grads, t32_grads, exact_grads):
        _assert_as_accurate(got.numpy(), t, e, 1e-6)
    if kernel_path == "kernels":  # the kernel reads the blocks by pointer: a weight of the wrong width is refused
        with pytest.raises(ValueError, match="concat_linear"):
            jl.concat_linear(pj, jt.array(w[:, :40]))


def test_relu_passes_the_gradient_where_the_output_is_positive(kernel_path: str):
    x = np.array([[-2.0, -0.0, 0.0, 1e-30, 3.0]], dtype=np.float32)
    g = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]], dtype=np.float32)
    out, (grad,) = _jittor_run(jl.ReLU(), x, g)
    t_out, (t_grad,) = _torch_reference(torch.relu, [x], g, torch.float32)
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_array_equal(grad, t_grad)  # zero at 0, as PyTorch's threshold_backward


def test_kernels_are_deterministic():
    """Per-thread float64 partial sums added in thread order: the same input gives the same bits."""
    rng = np.random.RandomState(3)
    x = rng.standard_normal((64, 50, 96)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    ln = jl.LayerNorm(96)
    runs = [_jittor_run(ln, x, g)[1] for _ in range(2)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def _module_both_paths(make: Callable[[], jt.Module], x: np.ndarray,
                       monkeypatch: pytest.MonkeyPatch) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Output and gradients (input, then parameters) of the same module on the CPU kernels and on Jittor ops."""
    rng = np.random.RandomState(4)
    module = make()
    for p in module.parameters():  # biases included, so that every bias path is exercised
        p.assign(jt.array(rng.standard_normal(p.shape).astype(np.float32) * 0.2))
    g = None
    runs = []
    for enabled in (True, False):
        monkeypatch.setattr(cpu_kernels, "enabled", lambda *tensors: enabled)
        out = module(jt.array(x))
        g = rng.standard_normal(out.shape).astype(np.float32) if g is None else g
        jt.set_global_seed(7)  # the same drop-path masks on both paths
        out, grads = _jittor_run(module, x, g)
        runs.append([out] + grads)
    return runs[0], runs[1]


@pytest.mark.parametrize("family", ["smlp_axial_h", "smlp_axial_w", "mixer_tokens", "vip_permute"])
def test_permuting_modules_equal_their_jittor_op_forms(family: str, monkeypatch: pytest.MonkeyPatch):
    """sMLPNet's axial mixing, Mixer's token MLP and ViP's permute MLP take the permute and branch-fusion kernels
    on the CPU; CUDA runs their Jittor-op forms: the two give the same outputs and gradients."""
    from models_jittor import mixer, smlp, vip

    makers = {"smlp_axial_h": (lambda: smlp.AxialMix(7, "h"), (2, 7, 5, 16)),
              "smlp_axial_w": (lambda: smlp.AxialMix(5, "w"), (2, 7, 5, 16)),
              "mixer_tokens": (lambda: mixer.TokenMlp(35, 24), (2, 35, 16)),
              "vip_permute": (lambda: vip.WeightedPermuteMlp(32, 8), (2, 8, 8, 32))}
    make, shape = makers[family]
    x = np.random.RandomState(5).standard_normal(shape).astype(np.float32)
    kernels, ops = _module_both_paths(make, x, monkeypatch)
    assert len(kernels) == len(ops) >= 2
    for a, b in zip(kernels, ops):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


@pytest.mark.parametrize("drop_path", [0.0, 0.5])
@pytest.mark.parametrize("family", ["mixer", "vip", "convmlp", "smlpnet"])
def test_residual_blocks_equal_their_jittor_op_forms(family: str, drop_path: float,
                                                     monkeypatch: pytest.MonkeyPatch):
    """On the CPU a block's ``x + drop_path(branch(norm(x)))`` runs as ``layers.residual_branch``: x's two
    gradients added in the LayerNorm's backward, the last bias, drop path and residual in one kernel (ViP: its
    branch split and pool pass their inputs through). Same outputs and gradients as the Jittor-op form, in
    training, with the same drop-path masks."""
    from models_jittor import convmlp, mixer, smlp, vip

    makers = {"mixer": (lambda: mixer.MixerBlock(16, 35, 24, 40, drop_path), (4, 35, 16)),
              "vip": (lambda: vip.PermutatorBlock(32, 8, 3.0, drop_path), (4, 8, 8, 32)),
              "convmlp": (lambda: convmlp.ConvMLPBlock(16, 48, drop_path), (4, 6, 6, 16)),
              "smlpnet": (lambda: smlp.SMLPBlock(16, (6, 6), 3.0, drop_path), (4, 6, 6, 16))}
    make, shape = makers[family]
    x = np.random.RandomState(8).standard_normal(shape).astype(np.float32)
    kernels, ops = _module_both_paths(lambda: make().train(), x, monkeypatch)
    assert len(kernels) == len(ops) >= 8
    for a, b in zip(kernels, ops):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())
    if drop_path:  # seed 7 drops some samples' branches and keeps others'
        monkeypatch.setattr(cpu_kernels, "enabled", lambda *tensors: True)
        jt.set_global_seed(7)
        mask = make().train().drop_path.mask(jt.array(x)).numpy()
        assert 0 < mask.sum() < len(mask), mask


@pytest.mark.parametrize("transpose,masked", [(False, False), (False, True), (True, False), (True, True)])
def test_bias_residual_forward_and_backward(transpose: bool, masked: bool):
    """``residual + drop_path(m + bias)`` in one kernel: a linear's output, or (Mixer's token MLP) one whose last
    two axes are swapped after the bias (49 x 96: partial 32x32 tiles), with or without a drop-path mask,
    against float64 PyTorch."""
    rng = np.random.RandomState(9)
    m = rng.standard_normal((4, 49, 96)).astype(np.float32)
    r, g = (rng.standard_normal((4, 96, 49) if transpose else m.shape).astype(np.float32) for _ in range(2))
    bias = rng.standard_normal(96).astype(np.float32)
    mask, keep = np.array([1, 0, 1, 1], np.float32), 0.75

    def fn(mt: torch.Tensor, bt: torch.Tensor, rt: torch.Tensor) -> torch.Tensor:
        out = mt + bt
        out = out.transpose(1, 2) if transpose else out
        return rt + (out * torch.from_numpy(mask).to(out.dtype).reshape(-1, 1, 1) / keep if masked else out)

    exact, exact_grads = _torch_reference(fn, [m, bias, r], g, torch.float64)
    t32, t32_grads = _torch_reference(fn, [m, bias, r], g, torch.float32)
    inputs = [jt.array(m), jt.array(bias), jt.array(r)]
    fuse = cpu_kernels.BiasResidual(keep if masked else 1.0, transpose)
    out = fuse(*inputs, jt.array(mask)) if masked else fuse(*inputs)
    grads = jt.grad((out * jt.array(g)).sum(), inputs)
    _assert_as_accurate(out.numpy(), t32, exact, 2e-7)
    for got, t, e in zip(grads, t32_grads, exact_grads):  # m, bias, residual
        _assert_as_accurate(got.numpy(), t, e, 2e-7)


@pytest.mark.parametrize("transpose", [False, True])
def test_layernorm_passing_its_input_through_adds_both_gradients(transpose: bool):
    """``LayerNormFn(keep_input=True)`` returns (norm(x), x): x's gradient is the LayerNorm's plus the one through
    the passed-through x, added in the backward kernel; with only one of them used, that one. With ``transpose``
    norm(x) comes as (B, C, N) (33 tokens: a partial tile of 32)."""
    rng = np.random.RandomState(10)
    x, g_x = (rng.standard_normal((6, 33, 64)).astype(np.float32) for _ in range(2))
    g_norm = rng.standard_normal((6, 64, 33) if transpose else x.shape).astype(np.float32)
    w, b = (1 + 0.1 * rng.standard_normal((2, 64))).astype(np.float32)

    def fn(xt: torch.Tensor, wt: torch.Tensor, bt: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.layer_norm(xt, (64,), wt, bt)
        return torch.cat([(y.transpose(1, 2) if transpose else y).reshape(-1), xt.reshape(-1)])

    both = np.concatenate([g_norm.reshape(-1), g_x.reshape(-1)])
    exact, exact_grads = _torch_reference(fn, [x, w, b], both, torch.float64)
    t32, t32_grads = _torch_reference(fn, [x, w, b], both, torch.float32)
    inputs = [jt.array(x), jt.array(w), jt.array(b)]
    y, passed = cpu_kernels.LayerNormFn(1e-5, keep_input=True, transpose=transpose)(*inputs)
    assert y.shape == list(g_norm.shape)
    grads = jt.grad((y * jt.array(g_norm)).sum() + (passed * jt.array(g_x)).sum(), inputs)
    _assert_as_accurate(np.concatenate([y.numpy().reshape(-1), passed.numpy().reshape(-1)]), t32, exact, 2e-6)
    for got, t, e in zip(grads, t32_grads, exact_grads):  # x, weight, bias
        _assert_as_accurate(got.numpy(), t, e, 2e-6)
    _, only_passed = cpu_kernels.LayerNormFn(1e-5, keep_input=True, transpose=transpose)(*inputs)
    np.testing.assert_array_equal(jt.grad((only_passed * jt.array(g_x)).sum(), inputs[0]).numpy(), g_x)


def test_float64_takes_jittor_ops():
    """The kernels read and write float32: a float64 model (e.g. to check against float64 PyTorch) takes
    Jittor's ops and computes in float64."""
    rng = np.random.RandomState(6)
    x = rng.standard_normal((4, 6, 6, 32))
    ln, bn = jl.LayerNorm(32), jl.BatchNorm2d(6)
    for module in (ln, bn):
        for p in module.parameters():
            p.assign(p.float64())
    bn.train()
    xj = jt.array(x).float64()  # jt.array makes float32 of float64 arrays
    outputs = {"gelu": jl.ErfGELU()(xj), "relu": jl.ReLU()(xj), "layernorm": ln(xj), "batchnorm": bn(xj),
               "permute": cpu_kernels.permute(xj, (0, 2, 1, 3))}
    xt = torch.from_numpy(x)
    expected = {"gelu": torch.nn.functional.gelu(xt), "relu": torch.relu(xt),
                "layernorm": torch.nn.functional.layer_norm(xt, (32,)),
                "batchnorm": torch.nn.functional.batch_norm(xt, None, None, training=True),
                "permute": xt.permute(0, 2, 1, 3)}
    for name, out in outputs.items():
        assert out.dtype == "float64", name
        np.testing.assert_allclose(out.numpy(), expected[name].numpy(), rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("shape,order,bias_axis", [
    ((2, 7, 5, 16), (1, 0, 2, 3), 0), ((2, 7, 5, 16), (1, 2, 0, 3), 1),  # last axis stays, with sMLPNet's bias
    ((2, 3, 4, 5, 6), (0, 2, 3, 1, 4), None),  # ViP's branch input
    ((2, 35, 70), (0, 2, 1), None), ((65, 70), (1, 0), None),  # tiled transposes, partial tiles
    ((3, 40, 70), (2, 0, 1), None), ((2, 5, 33, 37), (3, 1, 2, 0), None)])
def test_permute_forward_and_backward(shape: tuple, order: tuple, bias_axis: int | None):
    rng = np.random.RandomState(7)
    x = rng.standard_normal(shape).astype(np.float32)
    out_shape = [shape[i] for i in order]
    g = rng.standard_normal(out_shape).astype(np.float32)
    inputs = [x] if bias_axis is None else [x, rng.standard_normal(out_shape[bias_axis]).astype(np.float32)]

    def fn(v: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        y = v.permute(order)
        return y if b is None else y + b.reshape((-1,) + (1,) * (len(shape) - 1 - bias_axis))

    exact, exact_grads = _torch_reference(fn, inputs, g, torch.float64)
    vars_ = [jt.array(a) for a in inputs]
    out = (cpu_kernels.permute(vars_[0], order) if bias_axis is None
           else cpu_kernels.permute(vars_[0], order, vars_[1], bias_axis))
    grads = jt.grad((out * jt.array(g)).sum(), vars_)
    np.testing.assert_allclose(out.numpy(), exact, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(grads[0].numpy(), g.transpose(np.argsort(order)))
    if bias_axis is not None:
        np.testing.assert_allclose(grads[1].numpy(), exact_grads[1], rtol=1e-6, atol=1e-5)


def test_wide_linear_gradients():
    """An MLP's first linear (more outputs than inputs) takes its weight gradient as (x.T @ g).T on the CPU: the
    same gradients as float64 PyTorch and as Jittor's own matmul."""
    rng = np.random.RandomState(8)
    x = rng.standard_normal((3, 50, 48)).astype(np.float32)
    w = (rng.standard_normal((cpu_kernels.WIDE_ROWS, 48)) / 7).astype(np.float32)
    g = rng.standard_normal((3, 50, cpu_kernels.WIDE_ROWS)).astype(np.float32)
    fn = lambda v, wt: v @ wt.T  # noqa: E731
    exact, exact_grads = _torch_reference(fn, [x, w], g, torch.float64)
    t32, t32_grads = _torch_reference(fn, [x, w], g, torch.float32)
    runs = []
    for matmul in (cpu_kernels.matmul_transpose, jt.nn.matmul_transpose):
        xj, wj = jt.array(x), jt.array(w)
        out = matmul(xj, wj)
        runs.append([out.numpy()] + [v.numpy() for v in jt.grad((out * jt.array(g)).sum(), [xj, wj])])
    _assert_as_accurate(runs[0][0], t32, exact, 1e-6)
    for got, t, e in zip(runs[0][1:], t32_grads, exact_grads):
        _assert_as_accurate(got, t, e, 1e-6)
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


def test_kernel_files_compile_on_their_own_listed_and_shipped():
    """Every kernel is a C++ file a compiler accepts on its own (warnings as errors), listed in the kernels'
    README and in the package data, so an installed (non-editable) package carries it."""
    import subprocess
    import tomllib

    from jittor import compiler

    files = sorted(cpu_kernels.KERNELS.glob("*.h"))
    assert {f.name for f in files} >= {"common.h", "gelu.h", "layer_norm.h", "permute.h", "bias_residual.h"}
    readme = (cpu_kernels.KERNELS / "README.md").read_text()
    root = cpu_kernels.KERNELS.parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {p for package, globs in data.items() for g in globs for p in root.joinpath(*package.split(".")).glob(g)}
    for f in files:
        assert f"`{f.name}`" in readme, f.name
        assert f in shipped, f.name
        done = subprocess.run([compiler.cc_path, "-std=c++14", "-fopenmp", "-Wall", "-Werror", "-fsyntax-only",
                               "-x", "c++", str(f)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert cpu_kernels.KERNELS / "README.md" in shipped


def test_kernel_texts_do_not_depend_on_shapes(monkeypatch: pytest.MonkeyPatch):
    """Jittor compiles a kernel once per distinct text (header and glue): the glue reads the shapes at run time,
    so a Mixer block at two sizes, training with drop path, compiles the same texts, which a new process finds
    in the cache again."""
    from models_jittor import mixer

    texts: list[set[tuple[str, str]]] = []
    original = jt.code

    def spy(*args, **kwargs):
        texts[-1].add((kwargs["cpu_header"], kwargs["cpu_src"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(jt, "code", spy)
    for tokens, dim in [(35, 16), (12, 24)]:
        texts.append(set())
        block = mixer.MixerBlock(dim, tokens, 24, 40, 0.5).train()
        x = jt.array(np.random.RandomState(0).standard_normal((4, tokens, dim)).astype(np.float32))
        jt.sync(jt.grad(block(x).sum(), [x] + block.parameters()))
    assert len(texts[0]) >= 6 and texts[0] == texts[1]
