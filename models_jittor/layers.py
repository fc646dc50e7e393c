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


def gelu_layer(kind: str = "exact") -> nn.Module:
    """GELU as the official code computes it: exact (erf), or the tanh approximation of JAX."""
    if kind not in GELU_KINDS:
        raise ValueError(f"gelu must be one of {GELU_KINDS}, got {kind!r}")
    return nn.GELU() if kind == "exact" else TanhGELU()


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

