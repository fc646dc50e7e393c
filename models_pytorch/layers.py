"""Layers shared by the PyTorch models: stochastic depth, the GELU choice, LayerNorm, the MLP."""
from __future__ import annotations

import torch
from torch import nn

GELU_KINDS = ("exact", "tanh")


def gelu_layer(kind: str = "exact") -> nn.Module:
    """GELU as the official code computes it: exact (erf), or the tanh approximation of JAX."""
    if kind not in GELU_KINDS:
        raise ValueError(f"gelu must be one of {GELU_KINDS}, got {kind!r}")
    return nn.GELU(approximate="none" if kind == "exact" else "tanh")


LayerNorm = nn.LayerNorm


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample while training."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class Mlp(nn.Module):
    """Linear -> GELU -> Linear over the last axis, back to ``dim`` unless ``out_dim`` is given."""

    def __init__(self, dim: int, hidden: int, gelu: str = "exact", out_dim: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = gelu_layer(gelu)
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))

