"""Vision Permutator (ViP, arXiv 2106.12368) in PyTorch, computing what the official model computes.

Layout channels-last (B, H, W, C) after the patch embedding. Each block:
``x + drop_path(permute_mlp(norm1(x)))`` then ``x + drop_path(mlp(norm2(x)))``. Stages are separated by a
2x2 stride-2 conv. The token grid must equal each stage's ``segment_dim`` (224 input for the variants).
"""
from __future__ import annotations

import torch
from torch import nn

from mlp_zoo.model_specs import variant
from mlp_zoo.model_specs.drop_path import linear_drop_path_rates
from mlp_zoo.model_specs.features import Indices, take_indices
from .layers import DropPath, LayerNorm, Mlp, linear_residual, permutator_mix, permutator_split, residual_branch
from .registry import register_model


class WeightedPermuteMlp(nn.Module):
    """Mixes (B, H, W, C) features along H, along W and over channels, then fuses the three branches with
    per-channel softmax weights predicted from their pooled sum.

    Channels split segment-major into ``segment_dim`` segments of S = C / segment_dim. The H branch is one
    C x C Linear on each (H, S) slice flattened H-major, for every (W, segment); W likewise. Hence H * S == C,
    i.e. H == W == segment_dim.
    """

    def __init__(self, dim: int, segment_dim: int) -> None:
        super().__init__()
        if dim % segment_dim:
            raise ValueError(f"dim {dim} is not divisible by segment_dim {segment_dim}")
        self.segment_dim = segment_dim
        self.mix_c = nn.Linear(dim, dim, bias=False)
        self.mix_h = nn.Linear(dim, dim, bias=False)
        self.mix_w = nn.Linear(dim, dim, bias=False)
        self.reweight = Mlp(dim, dim // 4, out_dim=3 * dim)  # 3 logits per channel, interleaved: 3c, 3c+1, 3c+2
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.fuse(x))

    def residual(self, x: torch.Tensor, residual: torch.Tensor, drop_path: DropPath) -> torch.Tensor:
        """``residual + drop_path(self(x))`` (``layers.residual_branch``)."""
        return linear_residual(self.proj, self.fuse(x), residual, drop_path)

    def fuse(self, x: torch.Tensor) -> torch.Tensor:
        """The three branches' weighted sum, before ``proj``."""
        B, H, W, C = x.shape
        G = self.segment_dim
        if H != G or W != G:
            raise ValueError(f"ViP's permute needs a {G}x{G} token grid here, got {H}x{W}")
        S = C // G
        seg, to_h, to_w = permutator_split(x.reshape(B, H, W, G, S))
        # one copy in per branch (the reshape of a permuted view) to bring (H, S) / (W, S) together
        h = self.mix_h(to_h.reshape(B, W, G, H * S)).reshape(B, W, G, H, S)
        w = self.mix_w(to_w.reshape(B, H, G, W * S)).reshape(B, H, G, W, S)
        c = self.mix_c(seg.reshape(B, H, W, C)).reshape(B, H, W, G, S)
        return permutator_mix(c, h, w, self.reweight).reshape(B, H, W, C)

    def extra_repr(self) -> str:
        return f"segment_dim={self.segment_dim}"


class PermutatorBlock(nn.Module):
    def __init__(self, dim: int, segment_dim: int, mlp_ratio: float = 3.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.permute_mlp = WeightedPermuteMlp(dim, segment_dim)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = residual_branch(x, self.norm1, self.permute_mlp, self.drop_path)  # x + drop_path(mlp(norm(x)))
        return residual_branch(x, self.norm2, self.mlp, self.drop_path)


class Downsample(nn.Conv2d):
    """The 2x2 stride-2 transition conv (with bias) on channels-last input."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__(in_dim, out_dim, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the permuted view is channels_last memory: the conv returns channels_last and both permutes are free
        return super().forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class PermutatorStage(nn.Module):
    """A transition conv (none in the first stage) and the stage's blocks."""

    def __init__(self, in_dim: int, dim: int, segment_dim: int, depth: int, mlp_ratio: float,
                 drop_paths: list[float], downsample: bool) -> None:
        super().__init__()
        self.downsample = Downsample(in_dim, dim) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[PermutatorBlock(dim, segment_dim, mlp_ratio, drop_paths[i])
                                      for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class VisionPermutator(nn.Module):
    def __init__(self, in_chans: int = 3, num_classes: int = 1000, patch_size: int = 7,
                 depths: tuple[int, ...] = (4, 14), embed_dims: tuple[int, ...] = (192, 384),
                 segment_dims: tuple[int, ...] = (32, 16), mlp_ratio: float = 3.0,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if not len(depths) == len(embed_dims) == len(segment_dims):
            raise ValueError("depths, embed_dims and segment_dims need one entry per stage")
        self.num_features = embed_dims[-1]
        rates = linear_drop_path_rates(drop_path_rate, sum(depths))
        self.stem = nn.Conv2d(in_chans, embed_dims[0], patch_size, stride=patch_size)
        stages, start = [], 0
        for i, depth in enumerate(depths):
            stages.append(PermutatorStage(embed_dims[max(i - 1, 0)], embed_dims[i], segment_dims[i], depth,
                                          mlp_ratio, rates[start:start + depth], downsample=i > 0))
            start += depth
        self.stages = nn.Sequential(*stages)
        self.norm = LayerNorm(self.num_features)
        self.apply(_init_weights)
        self.reset_classifier(num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        """A new classifier for ``num_classes`` (0: none, features only), initialised as built."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.head.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # contiguous channels-last once, else the residual stream keeps the conv's NCHW memory order throughout
        x = self.stem(x).permute(0, 2, 3, 1).contiguous()
        return self.norm(self.stages(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((1, 2))
        return x if pre_logits else self.head(x)

    def forward_intermediates(self, x: torch.Tensor, indices: Indices = None) -> list[torch.Tensor]:
        """The outputs of the blocks in ``indices`` (None: all; n: the last n; numbered through all stages), NCHW,
        before the final norm; the forward stops after the last one asked for."""
        take = take_indices(sum(len(stage.blocks) for stage in self.stages), indices)
        x = self.stem(x).permute(0, 2, 3, 1).contiguous()
        out, i = [], 0
        for stage in self.stages:
            x = stage.downsample(x)
            for block in stage.blocks:
                x = block(x)
                if i in take:
                    out.append(x.permute(0, 3, 1, 2))
                if i == max(take):
                    return out
                i += 1
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _init_weights(module: nn.Module) -> None:
    """The official init: truncated normal (std .02) Linear weights, zero biases; convs keep the default."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _vip(name: str, **kwargs) -> VisionPermutator:
    return VisionPermutator(**{**variant(name).config, **kwargs})


@register_model
def vip_s14(**kwargs) -> VisionPermutator:
    return _vip("vip_s14", **kwargs)


@register_model
def vip_s7(**kwargs) -> VisionPermutator:
    return _vip("vip_s7", **kwargs)


@register_model
def vip_m7(**kwargs) -> VisionPermutator:
    return _vip("vip_m7", **kwargs)


@register_model
def vip_l7(**kwargs) -> VisionPermutator:
    return _vip("vip_l7", **kwargs)
