"""ConvMLP (arXiv 2109.04454) in PyTorch, computing what the official SHI-Labs model computes.

A convolutional tokenizer (stride 4) and a stage of ResNet-style bottlenecks (NCHW, then a stride-2 conv),
followed by channels-last MLP stages whose blocks are: channel MLP (residual), a depthwise 3x3 conv
(no residual), channel MLP (residual). Every downsampling is a stride-2 3x3 conv, so any input size works.
The module names are the official ones, so the official checkpoints load without renaming.
"""
from __future__ import annotations

import torch
from einops.layers.torch import Rearrange
from torch import nn

from mlp_zoo.model_specs import variant
from mlp_zoo.model_specs.drop_path import linear_drop_path_rates
from mlp_zoo.model_specs.features import Indices, take_indices
from .layers import DropPath, LayerNorm, Mlp, residual_branch
from .registry import register_model


def conv_bn_relu(in_dim: int, out_dim: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_dim, out_dim, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_dim), nn.ReLU()]


class ConvTokenizer(nn.Module):
    """Three 3x3 conv-BN-ReLU (the first with stride 2) and a stride-2 max pool: stride 4 in all."""

    def __init__(self, in_chans: int, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(*conv_bn_relu(in_chans, dim // 2, 3, stride=2),
                                   *conv_bn_relu(dim // 2, dim // 2, 3),
                                   *conv_bn_relu(dim // 2, dim, 3),
                                   nn.MaxPool2d(3, stride=2, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class ConvBottleneck(nn.Sequential):
    """``x + relu(bn(conv1x1(relu(bn(conv3x3(relu(bn(conv1x1(x)))))))))``: the branch ends in a ReLU.
    A Sequential, so that its layers keep the official keys ``conv_blocks.{i}.{0..8}``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(*conv_bn_relu(dim, hidden, 1), *conv_bn_relu(hidden, hidden, 3),
                         *conv_bn_relu(hidden, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + super().forward(x)


class ConvStage(nn.Module):
    """Bottlenecks at the tokenizer's width, then a stride-2 3x3 conv to the first MLP stage's width."""

    def __init__(self, n_blocks: int, dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.conv_blocks = nn.ModuleList([ConvBottleneck(dim, hidden) for _ in range(n_blocks)])
        self.downsample = nn.Conv2d(dim, out_dim, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.conv_blocks:
            x = block(x)
        return self.downsample(x)


class ConvMLPBlock(nn.Module):
    """On channels-last input: ``x + mlp1(norm1(x))``; ``connect(connect_norm(x))`` (a depthwise 3x3 conv
    with no residual around it); ``x + mlp2(norm2(x))``."""

    def __init__(self, dim: int, hidden: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.channel_mlp1 = Mlp(dim, hidden)
        self.norm2 = LayerNorm(dim)
        self.to_channels_first = Rearrange("b h w c -> b c h w")
        self.connect = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False)
        self.to_channels_last = Rearrange("b c h w -> b h w c")
        self.connect_norm = LayerNorm(dim)
        self.channel_mlp2 = Mlp(dim, hidden)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = residual_branch(x, self.norm1, self.channel_mlp1, self.drop_path)  # x + drop_path(mlp(norm(x)))
        x = self.to_channels_last(self.connect(self.to_channels_first(self.connect_norm(x))))
        return residual_branch(x, self.norm2, self.channel_mlp2, self.drop_path)


class ConvDownsample(nn.Module):
    """A stride-2 3x3 conv with bias on channels-last input."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.to_channels_first = Rearrange("b h w c -> b c h w")
        self.downsample = nn.Conv2d(in_dim, out_dim, 3, stride=2, padding=1)
        self.to_channels_last = Rearrange("b c h w -> b h w c")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_channels_last(self.downsample(self.to_channels_first(x)))


class MLPStage(nn.Module):
    """The stage's blocks, then (except in the last stage) a downsampling conv to the next width."""

    def __init__(self, dim: int, out_dim: int | None, depth: int, mlp_ratio: float,
                 drop_paths: list[float]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[ConvMLPBlock(dim, int(dim * mlp_ratio), drop_paths[i])
                                      for i in range(depth)])
        self.downsample_mlp = ConvDownsample(dim, out_dim) if out_dim else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample_mlp(self.blocks(x))


def init_weights(module: nn.Module) -> None:
    """The official init: Linear trunc_normal(std .02) with zero bias, Conv2d weights kaiming_normal(fan_out,
    relu) (conv biases keep the default); norms start at weight 1, bias 0 as built."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


class ConvMLP(nn.Module):
    def __init__(self, in_chans: int = 3, num_classes: int = 1000, depths: tuple[int, ...] = (2, 4, 2),
                 dims: tuple[int, ...] = (128, 256, 512), mlp_ratios: tuple[float, ...] = (2, 2, 2),
                 tokenizer_dim: int = 64, n_conv_blocks: int = 2, drop_path_rate: float = 0.1) -> None:
        super().__init__()
        if not len(depths) == len(dims) == len(mlp_ratios):
            raise ValueError(f"depths, dims and mlp_ratios differ in length: {depths}, {dims}, {mlp_ratios}")
        self.num_features = dims[-1]
        self.tokenizer = ConvTokenizer(in_chans, tokenizer_dim)
        self.conv_stages = ConvStage(n_conv_blocks, tokenizer_dim, dims[0], dims[0])
        self.to_channels_last = Rearrange("b c h w -> b h w c")
        # the stochastic depth schedule restarts in every stage
        self.stages = nn.Sequential(*[
            MLPStage(dims[i], dims[i + 1] if i + 1 < len(dims) else None, depths[i], mlp_ratios[i],
                     linear_drop_path_rates(drop_path_rate, depths[i])) for i in range(len(depths))])
        self.norm = LayerNorm(self.num_features)
        self.apply(init_weights)
        self.reset_classifier(num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        """A new classifier for ``num_classes`` (0: none, features only), initialised as built."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.head.apply(init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised channels-last features (B, H / 32, W / 32, C)."""
        x = self.to_channels_last(self.conv_stages(self.tokenizer(x)))
        return self.norm(self.stages(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((1, 2))
        return x if pre_logits else self.head(x)

    def forward_intermediates(self, x: torch.Tensor, indices: Indices = None) -> list[torch.Tensor]:
        """NCHW features of the stages in ``indices`` (None: all; n: the last n): 0 is the convolutional stage
        (stride 4, before its downsampling conv), 1.. the MLP stages' blocks (strides 8, 16, 32, before their
        downsampling and the final norm); the forward stops after the last one asked for."""
        take = take_indices(1 + len(self.stages), indices)
        x = self.tokenizer(x)
        for block in self.conv_stages.conv_blocks:
            x = block(x)
        out = [x] if 0 in take else []
        x = self.to_channels_last(self.conv_stages.downsample(x))
        for i, stage in enumerate(self.stages, 1):
            if i > max(take):
                break
            x = stage.blocks(x)
            if i in take:
                out.append(x.permute(0, 3, 1, 2))
            x = stage.downsample_mlp(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _convmlp(name: str, **kwargs) -> ConvMLP:
    return ConvMLP(**{**variant(name).config, **kwargs})


@register_model
def convmlp_s(**kwargs) -> ConvMLP:
    return _convmlp("convmlp_s", **kwargs)


@register_model
def convmlp_m(**kwargs) -> ConvMLP:
    return _convmlp("convmlp_m", **kwargs)


@register_model
def convmlp_l(**kwargs) -> ConvMLP:
    return _convmlp("convmlp_l", **kwargs)
