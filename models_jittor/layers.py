"""Layers shared by the Jittor models: stochastic depth, the GELU choice, LayerNorm, the MLP."""
from __future__ import annotations

import math

from jittor_support.runtime import jt
from jittor import nn

GELU_KINDS = ("exact", "tanh")


class TanhGELU(nn.Module):
    """GELU's tanh approximation (Jittor's nn.GELU has no ``approximate`` argument)."""

    def execute(self, x: jt.Var) -> jt.Var:
        return 0.5 * x * (1.0 + jt.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


# erf(x) ~ x * P(x^2) / Q(x^2) on [-4, 4] (beyond, erf is +-1 in float32): the rational form vectorised erf
# kernels use (Eigen's coefficients); max error 4e-7, about Jittor's own erf (2e-7)
_ERF_P = (-1.60960333262415e-02, -2.95459980854025e-03, -7.34990630326855e-04, -5.69250639462346e-05,
          -2.10102402082508e-06, 2.77068142495902e-08, -2.72614225801306e-10)
_ERF_Q = (-1.42647390514189e-02, -7.37332916720468e-03, -1.68282697438203e-03, -2.13374055278905e-04,
          -1.45660718464996e-05)


def _polynomial(x: jt.Var, coefficients: tuple[float, ...]) -> jt.Var:
    out = x * coefficients[-1] + coefficients[-2]
    for c in coefficients[-3::-1]:
        out = out * x + c
    return out


class ErfGELU(nn.Module):
    """Exact (erf) GELU. Jittor's nn.GELU calls the scalar libm erf in a single-threaded CPU loop; this rational
    erf is plain arithmetic, which Jittor fuses and the compiler vectorises: half the time, same accuracy."""

    def execute(self, x: jt.Var) -> jt.Var:
        t = jt.clamp(x * (1.0 / math.sqrt(2.0)), -4.0, 4.0)
        t2 = t * t
        return 0.5 * x * (1.0 + t * _polynomial(t2, _ERF_P) / _polynomial(t2, _ERF_Q))


def gelu_layer(kind: str = "exact") -> nn.Module:
    """GELU as the official code computes it: exact (erf), or the tanh approximation of JAX."""
    if kind not in GELU_KINDS:
        raise ValueError(f"gelu must be one of {GELU_KINDS}, got {kind!r}")
    return ErfGELU() if kind == "exact" else TanhGELU()


class LayerNorm(nn.Module):
    """LayerNorm over the last axis, two-pass like PyTorch (Jittor's E[x^2] - E[x]^2 fails on uncentred
    features, which trained checkpoints have)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        self.dim = dim
        self.eps = eps
        self.weight = jt.ones(dim)
        self.bias = jt.zeros(dim)

    def execute(self, x: jt.Var) -> jt.Var:
        # Jittor sums float32 naively: shifting by one sample first keeps the sums small on uncentred input
        shifted = x - x[..., :1]
        centred = shifted - shifted.mean(-1, keepdims=True)
        var = (centred * centred).mean(-1, keepdims=True)
        return centred / jt.sqrt(var + self.eps) * self.weight + self.bias


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample while training."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        self.drop_prob = drop_prob

    def execute(self, x: jt.Var) -> jt.Var:
        if self.drop_prob == 0.0 or not self.is_training():
            return x
        keep = 1.0 - self.drop_prob
        mask = (jt.rand((x.shape[0],) + (1,) * (x.ndim - 1)) < keep).float32()
        return x * mask / keep


class Mlp(nn.Module):
    """Linear -> GELU -> Linear over the last axis, back to ``dim`` unless ``out_dim`` is given."""

    def __init__(self, dim: int, hidden: int, gelu: str = "exact", out_dim: int | None = None) -> None:
        self.fc1 = nn.Linear(dim, hidden)
        self.act = gelu_layer(gelu)
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def execute(self, x: jt.Var) -> jt.Var:
        return self.fc2(self.act(self.fc1(x)))

