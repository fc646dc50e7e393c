"""Layers shared by the Jittor models: stochastic depth, the GELU choice, LayerNorm, BatchNorm2d, ReLU, the MLP, and
the block helpers (a pre-norm residual branch, ViP's branch split and fusion, permutes) that run as CPU kernels.
The model files reach the kernels only through here; their PyTorch twins call helpers of the same names."""
from __future__ import annotations

import math

from mlp_zoo.jittor_support import cpu_kernels
from mlp_zoo.jittor_support.cpu_kernels import permute  # noqa: F401  (the models' permutes: Jittor's run on one thread)
from mlp_zoo.jittor_support.runtime import jt
from jittor import nn

GELU_KINDS = ("exact", "tanh")


class TanhGELU(nn.Module):
    """GELU's tanh approximation (Jittor's nn.GELU has no ``approximate`` argument)."""

    def execute(self, x: jt.Var) -> jt.Var:
        return 0.5 * x * (1.0 + jt.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


class ErfGELU(nn.Module):
    """Exact (erf) GELU. Jittor's nn.GELU calls the scalar libm erf in a single-threaded CPU loop; this rational
    erf is plain arithmetic: a multithreaded kernel on the CPU, fused Jittor ops on CUDA."""

    def execute(self, x: jt.Var) -> jt.Var:
        if cpu_kernels.enabled(x):
            return cpu_kernels.GELU()(x)
        t = jt.clamp(x * (1.0 / math.sqrt(2.0)), -4.0, 4.0)
        t2 = t * t
        return 0.5 * x * (1.0 + t * _polynomial(t2, cpu_kernels.ERF_P) / _polynomial(t2, cpu_kernels.ERF_Q))


def _polynomial(x: jt.Var, coefficients: tuple[float, ...]) -> jt.Var:
    out = x * coefficients[-1] + coefficients[-2]
    for c in coefficients[-3::-1]:
        out = out * x + c
    return out


def linear_act(fc: nn.Linear, act: nn.Module, x: jt.Var) -> jt.Var:
    """``act(fc(x))``; on the CPU, exact GELU takes the linear's bias add into its kernel."""
    if isinstance(act, ErfGELU) and fc.bias is not None and cpu_kernels.enabled(x, fc.weight, fc.bias):
        return cpu_kernels.BiasGELU()(cpu_kernels.matmul_transpose(x, fc.weight), fc.bias)
    return act(fc(x))


def gelu_layer(kind: str = "exact") -> nn.Module:
    """GELU as the official code computes it: exact (erf), or the tanh approximation of JAX."""
    if kind not in GELU_KINDS:
        raise ValueError(f"gelu must be one of {GELU_KINDS}, got {kind!r}")
    return ErfGELU() if kind == "exact" else TanhGELU()


def _sum64(x: jt.Var, dims: list[int]) -> jt.Var:
    """Sum in float64: Jittor adds float32 one after another, which loses digits over a batch's many rows."""
    return x.float64().sum(dims)


class _LayerNormFn(jt.Function):
    """LayerNorm over the last axis with PyTorch's backward formula (2.5x as fast as the backward Jittor's
    autograd builds from the forward), the weight and bias gradients summed over the rows in float64."""

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def execute(self, x: jt.Var, weight: jt.Var, bias: jt.Var) -> jt.Var:
        # Jittor sums float32 naively: shifting by one sample first keeps the sums small on uncentred input
        shifted = x - x[..., :1]
        centred = shifted - shifted.mean(-1, keepdims=True)
        self.invstd = 1.0 / jt.sqrt((centred * centred).mean(-1, keepdims=True) + self.eps)
        self.normed, self.weight = centred * self.invstd, weight
        return self.normed * weight + bias

    def grad(self, g: jt.Var) -> tuple[jt.Var, jt.Var, jt.Var]:
        g_normed, rows = g * self.weight, list(range(g.ndim - 1))
        grad_x = self.invstd * (g_normed - g_normed.mean(-1, keepdims=True)
                                - self.normed * (g_normed * self.normed).mean(-1, keepdims=True))
        return grad_x, _sum64(g * self.normed, rows).float32(), _sum64(g, rows).float32()


class LayerNorm(nn.Module):
    """LayerNorm over the last axis, two-pass like PyTorch (Jittor's E[x^2] - E[x]^2 fails on uncentred
    features, which trained checkpoints have)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        self.dim = dim
        self.eps = eps
        self.weight = jt.ones(dim)
        self.bias = jt.zeros(dim)

    def execute(self, x: jt.Var) -> jt.Var:
        if cpu_kernels.enabled(x, self.weight, self.bias):
            return cpu_kernels.LayerNormFn(self.eps)(x, self.weight, self.bias)
        return _LayerNormFn(self.eps)(x, self.weight, self.bias)


class _BatchNormTrain(jt.Function):
    """Normalisation by the batch's statistics with PyTorch's backward formula: mean and variance in two
    passes and every sum over the batch (forward and backward) in float64."""

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def execute(self, x: jt.Var, weight: jt.Var, bias: jt.Var) -> jt.Var:
        self.dims, self.n = [0] + list(range(2, x.ndim)), x.numel() // x.shape[1]
        self.mean = (_sum64(x, self.dims) / self.n).float32()
        self.centred = x - self.mean.broadcast(x, self.dims)
        self.var = _sum64(self.centred * self.centred, self.dims) / self.n  # biased, float64
        self.invstd = (1.0 / jt.sqrt(self.var + self.eps)).float32()
        self.weight = weight
        return self.centred * (self.invstd * weight).broadcast(x, self.dims) + bias.broadcast(x, self.dims)

    def grad(self, g: jt.Var) -> tuple[jt.Var, jt.Var, jt.Var]:
        sum_g, sum_gc = _sum64(g, self.dims), _sum64(g * self.centred, self.dims)
        invstd64 = self.invstd.float64()
        mean_g = (sum_g / self.n).float32().broadcast(g, self.dims)
        slope = (sum_gc / self.n * invstd64 * invstd64).float32().broadcast(g, self.dims)
        grad_x = (self.invstd * self.weight).broadcast(g, self.dims) * (g - mean_g - self.centred * slope)
        return grad_x, (sum_gc * invstd64).float32(), sum_g.float32()


class BatchNorm2d(nn.Module):
    """BatchNorm over axis 1 with PyTorch's semantics (same state keys as Jittor's, no ``num_batches_tracked``):
    Jittor's computes the batch variance as E[x^2] - E[x]^2 with float32 sums, which is 10-60x less accurate,
    and updates ``running_var`` with the biased variance; here the running variance is unbiased, as in PyTorch.
    ``momentum=None`` averages all batches seen (counted by this object, not saved)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = jt.ones(num_features)
        self.bias = jt.zeros(num_features)
        self.running_mean = jt.zeros(num_features).stop_grad()
        self.running_var = jt.ones(num_features).stop_grad()
        self._batches = 0

    def execute(self, x: jt.Var) -> jt.Var:
        dims = [0] + list(range(2, x.ndim))
        if not self.is_training():
            scale = self.weight / jt.sqrt(self.running_var + self.eps)
            shift = self.bias - self.running_mean * scale
            if cpu_kernels.enabled(x, scale, shift):
                return cpu_kernels.ChannelAffine()(x, scale, shift)
            return x * scale.broadcast(x, dims) + shift.broadcast(x, dims)
        kernel = cpu_kernels.enabled(x, self.weight, self.bias)
        norm = cpu_kernels.BatchNormTrain(self.eps) if kernel else _BatchNormTrain(self.eps)
        out = norm(x, self.weight, self.bias)
        self._batches += 1
        m = 1.0 / self._batches if self.momentum is None else self.momentum
        unbiased = (norm.var * (norm.n / max(norm.n - 1, 1))).float32()
        self.running_mean.update((1 - m) * self.running_mean + m * norm.mean.stop_grad())
        self.running_var.update((1 - m) * self.running_var + m * unbiased.stop_grad())
        return out


class ReLU(nn.ReLU):
    """Jittor's ReLU, as a multithreaded kernel on the CPU (Jittor's own runs on one thread)."""

    def execute(self, x: jt.Var) -> jt.Var:
        return cpu_kernels.ReLU()(x) if cpu_kernels.enabled(x) else super().execute(x)


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample while training."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        self.drop_prob = drop_prob

    def execute(self, x: jt.Var) -> jt.Var:
        mask = self.mask(x)
        if mask is None:
            return x
        return x * mask.reshape((x.shape[0],) + (1,) * (x.ndim - 1)) / (1.0 - self.drop_prob)

    def mask(self, x: jt.Var) -> jt.Var | None:
        """1 (keep) or 0 (drop) per sample of ``x``; None where nothing is dropped (eval, or rate 0)."""
        if self.drop_prob == 0.0 or not self.is_training():
            return None
        return (jt.rand((x.shape[0],)) < 1.0 - self.drop_prob).float32()


def residual_branch(x: jt.Var, norm: nn.Module, branch: nn.Module, drop_path: DropPath) -> jt.Var:
    """``x + drop_path(branch(norm(x)))``, a pre-norm residual block. On the CPU, where Jittor would add x's two
    gradients, the last bias, the drop path and the residual each in a single-threaded op, a LayerNorm's backward
    kernel adds x's gradients and ``branch.residual`` ends in one ``BiasResidual`` kernel."""
    if not (isinstance(norm, LayerNorm) and cpu_kernels.enabled(x, norm.weight, norm.bias)):
        return x + drop_path(branch(norm(x)))
    transpose = getattr(branch, "TRANSPOSED_INPUT", False)  # the branch takes norm(x) with its last two axes swapped
    y, x = cpu_kernels.LayerNormFn(norm.eps, keep_input=True, transpose=transpose)(x, norm.weight, norm.bias)
    return branch.residual(y, x, drop_path)


def linear_residual(fc: nn.Linear, x: jt.Var, residual: jt.Var, drop_path: DropPath, transpose: bool = False
                    ) -> jt.Var:
    """``residual + drop_path(fc(x))``, with ``transpose`` fc(x)'s last two axes swapped first, on the CPU kernels
    (``residual_branch``): the bias add, drop path and residual in one ``BiasResidual`` kernel, which also reads the
    product transposed."""
    mask, fuse = drop_path.mask(x), cpu_kernels.BiasResidual(1.0 - drop_path.drop_prob, transpose)
    m = cpu_kernels.matmul_transpose(x, fc.weight)
    return fuse(m, fc.bias, residual) if mask is None else fuse(m, fc.bias, residual, mask)


def concat_linear(parts: list[jt.Var], weight: jt.Var) -> jt.Var:
    """``jt.concat(parts, -1) @ weight.T`` (a 1x1 conv over a channel concat) without the concat: each part times its
    block of the weight's columns, the products summed. On the CPU one kernel reads the blocks in place and
    accumulates the products in oneDNN's sgemm (Jittor would copy the blocks and add on one thread)."""
    if cpu_kernels.enabled(weight, *parts):
        return cpu_kernels.ConcatLinear()(weight, *parts)
    blocks = weight.split(parts[0].shape[-1], dim=1)
    return sum(nn.matmul_transpose(part, block) for part, block in zip(parts, blocks))


class _WeightedSumFn(jt.Function):
    """``sum(part_i * weight[i])``, each scalar's gradient summed over the whole tensor in float64 (Jittor's float32
    sum drifts over so many terms)."""

    def execute(self, weight: jt.Var, *parts: jt.Var) -> jt.Var:
        self.weight, self.parts = weight, parts
        out = parts[0] * weight[0]
        for i, part in enumerate(parts[1:], 1):
            out = out + part * weight[i]
        return out

    def grad(self, g: jt.Var) -> tuple[jt.Var, ...]:
        dims = list(range(g.ndim))
        dweight = jt.concat([_sum64(g * p, dims).reshape(1) for p in self.parts]).float32()
        return (dweight, *(g * self.weight[i] for i in range(len(self.parts))))


def weighted_sum(parts: list[jt.Var], weight: jt.Var) -> jt.Var:
    """``sum(part_i * weight[i])`` over same-shaped parts, one learned scalar each."""
    return _WeightedSumFn()(weight, *parts)


def permutator_split(seg: jt.Var) -> tuple[jt.Var, jt.Var, jt.Var]:
    """ViP: (B, H, W, G, S) segments to ``(seg, the H branch's input (B, W, G, H, S), the W branch's
    (B, H, G, W, S))``. On the CPU one kernel writes both and passes seg through, so that its three gradients are
    added in that kernel's backward."""
    if cpu_kernels.enabled(seg):
        return cpu_kernels.PermutatorSplit()(seg)
    return seg, seg.permute(0, 2, 3, 1, 4), seg.permute(0, 1, 3, 2, 4)


def permutator_mix(c: jt.Var, h: jt.Var, w: jt.Var, reweight: nn.Module) -> jt.Var:
    """ViP's branch fusion on (B, H, W, G, S) positions, h as (B, W, G, H, S) and w as (B, H, G, W, S) (their
    mixing products' layouts): ``c * a[..., 2] + h * a[..., 0] + w * a[..., 1]``, ``a`` the softmax over 3 of
    ``reweight`` of the three branches' sum averaged over H and W. On the CPU the pool and the fusion are two
    kernels reading h and w in place (Jittor runs transposes and elementwise work on one thread)."""
    B, H, W, G, S = c.shape
    if cpu_kernels.enabled(c, h, w):
        a, c, h, w = cpu_kernels.PermutatorPool()(c, h, w)
        a = nn.softmax(reweight(a).reshape(B, G * S, 3), dim=-1)
        return cpu_kernels.PermutatorMix()(c, h, w, a)
    h, w = h.permute(0, 3, 1, 2, 4), w.permute(0, 1, 3, 2, 4)
    a = (c + h + w).mean((1, 2)).reshape(B, G * S)
    a = nn.softmax(reweight(a).reshape(B, G * S, 3), dim=-1).reshape(B, 1, 1, G, S, 3)
    return c * a[..., 2] + h * a[..., 0] + w * a[..., 1]  # Jittor fuses these lazily (PyTorch: in place)


class Mlp(nn.Module):
    """Linear -> GELU -> Linear over the last axis, back to ``dim`` unless ``out_dim`` is given."""

    def __init__(self, dim: int, hidden: int, gelu: str = "exact", out_dim: int | None = None) -> None:
        self.fc1 = nn.Linear(dim, hidden)
        self.act = gelu_layer(gelu)
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def execute(self, x: jt.Var) -> jt.Var:
        return self.fc2(linear_act(self.fc1, self.act, x))

    def residual(self, x: jt.Var, residual: jt.Var, drop_path: DropPath) -> jt.Var:
        """``residual + drop_path(self(x))`` (``residual_branch``)."""
        return linear_residual(self.fc2, linear_act(self.fc1, self.act, x), residual, drop_path)

