"""sMLPNet (Sparse MLP, arXiv 2109.05422) in PyTorch, computing what the official SPACH model computes.

Each block: ``x + drop_path(token_mix(x))`` then ``x + drop_path(mlp(norm(x)))`` over channels.
The token mix is a depthwise 3x3 conv followed by the sparse MLP: identity, a mix along W and a mix along H
(each an N x N matrix shared over channels and the other axis), fused by a 1x1 conv.
Unlike the original, H and W may differ (``img_size=(H, W)``), and the blocks keep their activations
channels-last, (B, H, W, C), for speed: the norms and convs see them as NCHW views with channels-last strides
(no copies), the channel MLP and the fuse run as plain matrix products, and each axial mix is a batched one.
The parameters are the original ones, same names and shapes.

The paper's ablations are build options (``mlp_zoo.model_specs.smlp.SMLPOptions``: the fusion, the identity
branch, serial axial mixing, no depthwise part, no global mixing in some stages, a dense token MLP); a model built
with any keeps them in its state dict under ``options``, so that a checkpoint rebuilds it.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from mlp_zoo.model_specs import variant
from mlp_zoo.model_specs.drop_path import linear_drop_path_rates
from mlp_zoo.model_specs.features import Indices, take_indices
from mlp_zoo.model_specs.smlp import DENSE_HIDDEN_RATIO, OPTIONS_KEY, SMLPOptions
from .layers import DropPath, LayerNorm, Mlp, concat_linear, gelu_layer, residual_branch, weighted_sum
from .registry import register_model


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class ChannelsLastBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d on channels-last (B, H, W, C) input (seen as an NCHW view with channels-last strides)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class ChannelsLastConv2d(nn.Conv2d):
    """Conv2d on channels-last (B, H, W, C) input and output (NCHW views with channels-last strides: oneDNN
    runs the conv in that layout, and neither permute copies)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class AxialMix(nn.Module):
    """Mixes tokens along one spatial axis of channels-last (B, H, W, C) input with an (N, N) matrix plus bias."""

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
        b, h, w, c = x.shape
        # H: one (N, N) @ (N, W*C) product per image; W: one (N, N) @ (N, C) product per image row.
        # baddbmm on the expanded weight, as torch.matmul would copy both operands of a 2D @ 3D product
        rows = x.reshape(b, h, w * c) if self.axis == "h" else x.reshape(b * h, w, c)
        n = self.weight.shape[0]
        mixed = torch.baddbmm(self.bias.view(1, n, 1), self.weight.expand(rows.shape[0], n, n), rows)
        return mixed.view(b, h, w, c)

    def extra_repr(self) -> str:
        return f"axis={self.axis}, size={self.weight.shape[0]}"


class WeightedSum(nn.Module):
    """The ``weighted`` fusion: the branches summed with one learned scalar each (ones at init: their plain sum)."""

    def __init__(self, branches: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(branches))

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        return weighted_sum(parts, self.weight)


class DenseTokenMix(nn.Module):
    """MLP-Mixer's token MLP over a stage's N = H*W tokens, shared over channels, on channels-last input: the
    token mixing of the paper's multi-stage baseline; hidden width ``DENSE_HIDDEN_RATIO * N``."""

    def __init__(self, grid: tuple[int, int], gelu: str = "exact") -> None:
        super().__init__()
        tokens = grid[0] * grid[1]
        self.mlp = Mlp(tokens, max(1, int(tokens * DENSE_HIDDEN_RATIO)), gelu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        return self.mlp(x.reshape(b, h * w, c).transpose(1, 2)).transpose(1, 2).reshape(b, h, w, c)


class SparseTokenMix(nn.Module):
    """Depthwise 3x3 conv, then the sparse MLP ([identity, W-mix, H-mix] fused by a 1x1 conv), channels-last;
    ``options`` ablate its parts, ``sparse=False`` drops the global mixing (the depthwise part alone)."""

    def __init__(self, dim: int, grid: tuple[int, int], gelu: str = "exact", options: SMLPOptions = SMLPOptions(),
                 sparse: bool = True) -> None:
        super().__init__()
        self.fusion, self.identity, self.serial = options.fusion, options.identity, options.axial == "serial"
        if options.local:
            self.dw_norm = ChannelsLastBatchNorm(dim)
            self.dw_act = gelu_layer(gelu)
            self.dw_conv = ChannelsLastConv2d(dim, dim, 3, padding=1, groups=dim, bias=False)
        if not sparse:
            return
        self.mix_norm = ChannelsLastBatchNorm(dim)
        if options.token_mixing == "dense":  # Mixer's token MLP: a norm, then the MLP (its own GELU inside)
            self.token_mlp = DenseTokenMix(grid, gelu)
            return
        self.mix_act = gelu_layer(gelu)
        self.mix_w = AxialMix(grid[1], "w")
        self.mix_h = AxialMix(grid[0], "h")
        branches = 3 if options.identity else 2
        if options.fusion == "concat":
            self.fuse = nn.Conv2d(branches * dim, dim, 1, bias=False)
        elif options.fusion == "weighted":
            self.fuse = WeightedSum(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "dw_conv"):
            x = self.dw_conv(self.dw_act(self.dw_norm(x)))
        if hasattr(self, "token_mlp"):
            return self.token_mlp(self.mix_norm(x))
        if not hasattr(self, "mix_w"):
            return x
        x = self.mix_act(self.mix_norm(x))
        w = self.mix_w(x)
        parts = ([x] if self.identity else []) + [w, self.mix_h(w if self.serial else x)]
        if self.fusion == "concat":
            # the 1x1 fuse conv over the concat [x, W-mix, H-mix], without the concat
            return concat_linear(parts, self.fuse.weight.flatten(1))
        return self.fuse(parts) if self.fusion == "weighted" else sum(parts[1:], parts[0])


class SMLPBlock(nn.Module):
    def __init__(self, dim: int, grid: tuple[int, int], mlp_ratio: float = 3.0, drop_path: float = 0.0,
                 gelu: str = "exact", options: SMLPOptions = SMLPOptions(), sparse: bool = True) -> None:
        super().__init__()
        self.token_mix = SparseTokenMix(dim, grid, gelu, options, sparse)
        self.norm = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), gelu)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.token_mix(x))
        return residual_branch(x, self.norm, self.mlp, self.drop_path)  # x + drop_path(mlp(norm(x)))


class SMLPStage(nn.Module):
    """A 2x2 stride-2 downsampling conv (none in the first stage) and the stage's blocks."""

    def __init__(self, in_dim: int, dim: int, grid: tuple[int, int], depth: int, mlp_ratio: float,
                 drop_paths: list[float], gelu: str, downsample: bool, options: SMLPOptions = SMLPOptions(),
                 sparse: bool = True) -> None:
        super().__init__()
        self.downsample = ChannelsLastConv2d(in_dim, dim, 2, stride=2, bias=False) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[SMLPBlock(dim, grid, mlp_ratio, drop_paths[i], gelu, options, sparse)
                                      for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class SMLPNet(nn.Module):
    def __init__(self, img_size: int | tuple[int, int] = 224, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim: int = 80, depths: tuple[int, ...] = (2, 8, 14, 2), mlp_ratio: float = 3.0,
                 drop_path_rate: float = 0.0, gelu: str = "exact", fusion: str = "concat", identity: bool = True,
                 axial: str = "parallel", local: bool = True,
                 sparse_stages: tuple[bool, ...] = (True, True, True, True), token_mixing: str = "sparse") -> None:
        """The published sMLPNet by default; ``fusion`` to ``token_mixing``: the paper's ablations (``SMLPOptions``)."""
        super().__init__()
        options = SMLPOptions(fusion, identity, axial, local, sparse_stages, token_mixing).for_depths(len(depths))
        self.build_options = options
        height, width = _pair(img_size)
        reduction = 4 * 2 ** (len(depths) - 1)
        if height % reduction or width % reduction:
            raise ValueError(f"img_size {(height, width)} must be divisible by {reduction}")
        self.img_size = (height, width)
        dims = [embed_dim * 2 ** i for i in range(len(depths))]
        self.num_features = dims[-1]
        rates = linear_drop_path_rates(drop_path_rate, sum(depths))
        self.stem = nn.Conv2d(in_chans, embed_dim, 4, stride=4, bias=False)
        stages, start = [], 0
        for i, depth in enumerate(depths):
            grid = (height // (4 * 2 ** i), width // (4 * 2 ** i))
            stages.append(SMLPStage(dims[max(i - 1, 0)], dims[i], grid, depth, mlp_ratio,
                                    rates[start:start + depth], gelu, i > 0, options, options.sparse_stages[i]))
            start += depth
        self.stages = nn.Sequential(*stages)
        self.norm = ChannelsLastBatchNorm(self.num_features)
        self.reset_classifier(num_classes)
        record = options.record()
        if record is not None:  # the ablations' record (the published model's keys stay the official ones)
            self.register_buffer(OPTIONS_KEY, torch.from_numpy(record))

    def reset_classifier(self, num_classes: int) -> None:
        """A new classifier for ``num_classes`` (0: none, features only), with the default Linear init."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """NCHW features (with channels-last strides)."""
        # a channels-last input makes the stem return channels-last memory: the permute below is then free
        x = self.stem(x.contiguous(memory_format=torch.channels_last)).permute(0, 2, 3, 1)
        return self.norm(self.stages(x)).permute(0, 3, 1, 2)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3))
        return x if pre_logits else self.head(x)

    def forward_intermediates(self, x: torch.Tensor, indices: Indices = None) -> list[torch.Tensor]:
        """The outputs of the stages in ``indices`` (None: all; n: the last n), NCHW (with channels-last strides),
        strides 4 to 32, before the final norm; the forward stops after the last one asked for."""
        take = take_indices(len(self.stages), indices)
        x = self.stem(x.contiguous(memory_format=torch.channels_last)).permute(0, 2, 3, 1)
        out = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in take:
                out.append(x.permute(0, 3, 1, 2))
            if i == max(take):
                break
        return out

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
