"""Layers shared by the PyTorch models: stochastic depth, the GELU choice, LayerNorm, the MLP, and the block
helpers (a pre-norm residual branch, ViP's branch split and fusion) that the Jittor twin runs as CPU kernels: here
they are the plain computation, under the same names, so that the two trees' model files read alike."""
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


def linear_act(fc: nn.Linear, act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``act(fc(x))``."""
    return act(fc(x))


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


def residual_branch(x: torch.Tensor, norm: nn.Module, branch: nn.Module, drop_path: DropPath) -> torch.Tensor:
    """``x + drop_path(branch(norm(x)))``, a pre-norm residual block, as ``branch.residual(norm(x), x, drop_path)``
    with norm(x)'s last two axes swapped (a view) for a branch whose ``TRANSPOSED_INPUT`` says it takes them so."""
    y = norm(x)
    return branch.residual(y.transpose(-2, -1) if getattr(branch, "TRANSPOSED_INPUT", False) else y, x, drop_path)


def linear_residual(fc: nn.Linear, x: torch.Tensor, residual: torch.Tensor, drop_path: DropPath) -> torch.Tensor:
    """``residual + drop_path(fc(x))``."""
    return residual + drop_path(fc(x))


def concat_linear(parts: list[torch.Tensor], weight: torch.Tensor) -> torch.Tensor:
    """``torch.cat(parts, -1) @ weight.T`` (a 1x1 conv over a channel concat) without the concat: each part times its
    block of the weight's columns, the products accumulated in place."""
    blocks = weight.split(parts[0].shape[-1], dim=1)
    out = nn.functional.linear(parts[0], blocks[0])
    rows = out.view(-1, out.shape[-1])
    for part, block in zip(parts[1:], blocks[1:]):
        rows.addmm_(part.reshape(rows.shape[0], -1), block.t())
    return out


def weighted_sum(parts: list[torch.Tensor], weight: torch.Tensor) -> torch.Tensor:
    """``sum(part_i * weight[i])`` over same-shaped parts, one learned scalar each."""
    out = parts[0] * weight[0]
    for i, part in enumerate(parts[1:], 1):
        out = out + part * weight[i]
    return out


def permutator_split(seg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ViP: (B, H, W, G, S) segments to ``(seg, the H branch's input (B, W, G, H, S), the W branch's
    (B, H, G, W, S))``, the two as permuted views."""
    return seg, seg.permute(0, 2, 3, 1, 4), seg.permute(0, 1, 3, 2, 4)


def permutator_mix(c: torch.Tensor, h: torch.Tensor, w: torch.Tensor, reweight: nn.Module) -> torch.Tensor:
    """ViP's branch fusion on (B, H, W, G, S) positions, h as (B, W, G, H, S) and w as (B, H, G, W, S) (their
    mixing products' layouts): ``c * a[..., 2] + h * a[..., 0] + w * a[..., 1]``, ``a`` the softmax over 3 of
    ``reweight`` of the three branches' sum averaged over H and W."""
    B, H, W, G, S = c.shape
    h, w = h.permute(0, 3, 1, 2, 4), w.permute(0, 1, 3, 2, 4)  # views
    a = (c + h).add_(w).mean((1, 2)).view(B, G * S)
    a = reweight(a).view(B, G * S, 3).softmax(-1).view(B, 1, 1, G, S, 3)
    # accumulated in place into c's contiguous layout: no temporaries, and a view of the result needs no copy
    return (c * a[..., 2]).addcmul_(h, a[..., 0]).addcmul_(w, a[..., 1])


class Mlp(nn.Module):
    """Linear -> GELU -> Linear over the last axis, back to ``dim`` unless ``out_dim`` is given."""

    def __init__(self, dim: int, hidden: int, gelu: str = "exact", out_dim: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = gelu_layer(gelu)
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(linear_act(self.fc1, self.act, x))

    def residual(self, x: torch.Tensor, residual: torch.Tensor, drop_path: DropPath) -> torch.Tensor:
        """``residual + drop_path(self(x))`` (``residual_branch``)."""
        return linear_residual(self.fc2, linear_act(self.fc1, self.act, x), residual, drop_path)

