"""sMLPNet (Sparse MLP, arXiv 2109.05422) in PyTorch, computing what the official SPACH model computes.

Layout NCHW. Each block: ``x + drop_path(token_mix(x))`` then ``x + drop_path(mlp(norm(x)))`` over channels.
The token mix is a depthwise 3x3 conv followed by the sparse MLP: identity, a mix along W and a mix along H
(each an N x N matrix shared over channels and the other axis), fused by a 1x1 conv.
Unlike the original, H and W may differ (``img_size=(H, W)``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops.layers.torch import Rearrange
from torch import nn

from model_specs import variant
from model_specs.drop_path import linear_drop_path_rates
from .layers import DropPath, LayerNorm, Mlp, gelu_layer
from .registry import register_model


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class AxialMix(nn.Module):
    """Mixes tokens along one spatial axis of NCHW input with an (N, N) matrix plus bias."""

    def __init__(self, size: int, axis: str) -> None:
        super().__init__()
        if axis not in ("h", "w"):
            raise ValueError(f"axis must be 'h' or 'w', got {axis!r}")
        self.axis = axis
        self.weight = nn.Parameter(torch.empty(size, size))
        self.bias = nn.Parameter(torch.empty(size))
        # the official 1x1 Conv2d(N, N) init: kaiming_uniform(a=sqrt(5)), bias U(+-1/sqrt(N))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.uniform_(self.bias, -1 / math.sqrt(size), 1 / math.sqrt(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.axis == "w":
            return F.linear(x, self.weight, self.bias)
        return torch.matmul(self.weight, x) + self.bias[:, None]

    def extra_repr(self) -> str:
        return f"axis={self.axis}, size={self.weight.shape[0]}"


class SparseTokenMix(nn.Module):
    """Depthwise 3x3 conv, then the sparse MLP ([identity, W-mix, H-mix] fused by a 1x1 conv)."""

    def __init__(self, dim: int, grid: tuple[int, int], gelu: str = "exact") -> None:
        super().__init__()
        self.dw_norm = nn.BatchNorm2d(dim)
        self.dw_act = gelu_layer(gelu)
        self.dw_conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False)
        self.mix_norm = nn.BatchNorm2d(dim)
        self.mix_act = gelu_layer(gelu)
        self.mix_w = AxialMix(grid[1], "w")
        self.mix_h = AxialMix(grid[0], "h")
        self.fuse = nn.Conv2d(3 * dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw_conv(self.dw_act(self.dw_norm(x)))
        x = self.mix_act(self.mix_norm(x))
        return self.fuse(torch.cat([x, self.mix_w(x), self.mix_h(x)], dim=1))


class SMLPBlock(nn.Module):
    def __init__(self, dim: int, grid: tuple[int, int], mlp_ratio: float = 3.0,
                 drop_path: float = 0.0, gelu: str = "exact") -> None:
        super().__init__()
        self.token_mix = SparseTokenMix(dim, grid, gelu)
        self.to_channels_last = Rearrange("b c h w -> b h w c")
        self.norm = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), gelu)
        self.to_channels_first = Rearrange("b h w c -> b c h w")
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.token_mix(x))
        y = self.mlp(self.norm(self.to_channels_last(x)))
        return x + self.drop_path(self.to_channels_first(y))


class SMLPStage(nn.Module):
    """A 2x2 stride-2 downsampling conv (none in the first stage) and the stage's blocks."""

    def __init__(self, in_dim: int, dim: int, grid: tuple[int, int], depth: int, mlp_ratio: float,
                 drop_paths: list[float], gelu: str, downsample: bool) -> None:
        super().__init__()
        self.downsample = nn.Conv2d(in_dim, dim, 2, stride=2, bias=False) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[SMLPBlock(dim, grid, mlp_ratio, drop_paths[i], gelu)
                                      for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class SMLPNet(nn.Module):
    def __init__(self, img_size: int | tuple[int, int] = 224, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim: int = 80, depths: tuple[int, ...] = (2, 8, 14, 2), mlp_ratio: float = 3.0,
                 drop_path_rate: float = 0.0, gelu: str = "exact") -> None:
        super().__init__()
        height, width = _pair(img_size)
        reduction = 4 * 2 ** (len(depths) - 1)
        if height % reduction or width % reduction:
            raise ValueError(f"img_size {(height, width)} must be divisible by {reduction}")
        self.img_size = (height, width)
        self.num_classes = num_classes
        dims = [embed_dim * 2 ** i for i in range(len(depths))]
        self.num_features = dims[-1]
        rates = linear_drop_path_rates(drop_path_rate, sum(depths))
        self.stem = nn.Conv2d(in_chans, embed_dim, 4, stride=4, bias=False)
        stages, start = [], 0
        for i, depth in enumerate(depths):
            grid = (height // (4 * 2 ** i), width // (4 * 2 ** i))
            stages.append(SMLPStage(dims[max(i - 1, 0)], dims[i], grid, depth, mlp_ratio,
                                    rates[start:start + depth], gelu, downsample=i > 0))
            start += depth
        self.stages = nn.Sequential(*stages)
        self.norm = nn.BatchNorm2d(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _smlpnet(name: str, **kwargs) -> SMLPNet:
    return SMLPNet(**{**variant(name).config, **kwargs})


@register_model
def smlpnet_t(**kwargs) -> SMLPNet:
    return _smlpnet("smlpnet_t", **kwargs)


@register_model
def smlpnet_s(**kwargs) -> SMLPNet:
    return _smlpnet("smlpnet_s", **kwargs)


@register_model
def smlpnet_b(**kwargs) -> SMLPNet:
    return _smlpnet("smlpnet_b", **kwargs)
