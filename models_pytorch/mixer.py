"""MLP-Mixer (arXiv 2105.01601) in PyTorch, computing what Google's JAX model and timm's port compute.

Tokens (B, N, C) come from a strided p x p patch conv. Each block: ``x + token_mlp(norm1(x))``, one MLP along
the N tokens shared by all channels, then ``x + channel_mlp(norm2(x))``. Head: LayerNorm, mean over tokens,
Linear. Names are timm's, so its checkpoints load as they are (Google's .npz via weights_convert).
GELU is exact as in timm; ``gelu='tanh'`` reproduces JAX (chosen automatically for JAX checkpoints).
Unlike the original, the input may be any size divisible by the patch (the token MLP's N follows it).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from mlp_zoo.model_specs import variant
from mlp_zoo.model_specs.features import Indices, take_indices
from .layers import DropPath, LayerNorm, Mlp, gelu_layer, residual_branch
from .registry import register_model

LN_EPS = 1e-6  # Flax's LayerNorm default, kept by timm


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches projected to C channels, as (B, N, C) tokens in row-major grid order."""

    def __init__(self, img_size: tuple[int, int], patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        if img_size[0] % patch_size or img_size[1] % patch_size:
            raise ValueError(f"img_size {img_size} must be divisible by the patch size {patch_size}")
        self.grid = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.num_tokens = self.grid[0] * self.grid[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # contiguous: otherwise the residual stream would inherit the transposed strides through every block
        return self.proj(x).flatten(2).transpose(1, 2).contiguous()


class TokenMlp(nn.Module):
    """Linear -> GELU -> Linear along the token axis of (B, N, C) input, the same for every channel."""

    TRANSPOSED_INPUT = True  # residual() takes x as (B, C, N) (in Jittor, as the LayerNorm kernel writes it)

    def __init__(self, num_tokens: int, hidden: int, gelu: str = "exact") -> None:
        super().__init__()
        self.fc1 = nn.Linear(num_tokens, hidden)
        self.act = gelu_layer(gelu)
        self.fc2 = nn.Linear(hidden, num_tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the weights multiply from the left, so the tokens never need transposing: one batched GEMM per linear
        # with the weight broadcast over the batch as a view (torch.matmul would copy x transposed whenever the
        # weight requires grad)
        b = x.shape[0]
        h = self.act(torch.baddbmm(self.fc1.bias[:, None], self.fc1.weight.expand(b, -1, -1), x))
        return torch.baddbmm(self.fc2.bias[:, None], self.fc2.weight.expand(b, -1, -1), h)

    def residual(self, x: torch.Tensor, residual: torch.Tensor, drop_path: DropPath) -> torch.Tensor:
        """``residual + drop_path(self(x.transpose(1, 2)))`` (``layers.residual_branch``)."""
        return residual + drop_path(self(x.transpose(1, 2)))  # x is a transposed view: no copy either way


class MixerBlock(nn.Module):
    def __init__(self, dim: int, num_tokens: int, tokens_dim: int, channels_dim: int,
                 drop_path: float = 0.0, gelu: str = "exact") -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim, eps=LN_EPS)
        self.mlp_tokens = TokenMlp(num_tokens, tokens_dim, gelu)
        self.norm2 = LayerNorm(dim, eps=LN_EPS)
        self.mlp_channels = Mlp(dim, channels_dim, gelu)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = residual_branch(x, self.norm1, self.mlp_tokens, self.drop_path)  # x + drop_path(mlp(norm(x)))
        return residual_branch(x, self.norm2, self.mlp_channels, self.drop_path)


class MlpMixer(nn.Module):
    def __init__(self, img_size: int | tuple[int, int] = 224, in_chans: int = 3, num_classes: int = 1000,
                 patch_size: int = 16, depth: int = 8, embed_dim: int = 512, tokens_dim: int = 256,
                 channels_dim: int = 2048, drop_path_rate: float = 0.0, gelu: str = "exact") -> None:
        super().__init__()
        self.img_size = _pair(img_size)
        self.num_features = embed_dim
        self.stem = PatchEmbed(self.img_size, patch_size, in_chans, embed_dim)
        # one drop-path rate for every block, as timm does (the JAX original has no stochastic depth)
        self.blocks = nn.Sequential(*[
            MixerBlock(embed_dim, self.stem.num_tokens, tokens_dim, channels_dim, drop_path_rate, gelu)
            for _ in range(depth)])
        self.norm = LayerNorm(embed_dim, eps=LN_EPS)
        self._init_weights()
        self.reset_classifier(num_classes)

    @torch.no_grad()
    def _init_weights(self) -> None:
        """timm's Mixer init: lecun-normal stem (Flax's default), xavier-uniform MLPs with near-zero biases;
        LayerNorms start at ones and zeros (the head: ``reset_classifier``)."""
        stem = self.stem.proj.weight
        std = math.sqrt(1.0 / math.prod(stem.shape[1:])) / 0.87962566103423978  # std of N(0, 1) truncated to +-2
        nn.init.trunc_normal_(stem, std=std, a=-2 * std, b=2 * std)
        nn.init.zeros_(self.stem.proj.bias)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.normal_(module.bias, std=1e-6)

    def reset_classifier(self, num_classes: int) -> None:
        """A new classifier for ``num_classes`` (0: none, features only), zero as in both timm and JAX."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(1)
        return x if pre_logits else self.head(x)

    def forward_intermediates(self, x: torch.Tensor, indices: Indices = None) -> list[torch.Tensor]:
        """The outputs of the blocks in ``indices`` (None: all; n: the last n) as NCHW token grids
        (B, C, H / p, W / p), before the final norm; the forward stops after the last one asked for."""
        take = take_indices(len(self.blocks), indices)
        x, out = self.stem(x), []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in take:
                out.append(x.transpose(1, 2).reshape(x.shape[0], -1, *self.stem.grid))
            if i == max(take):
                break
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _mixer(name: str, **kwargs) -> MlpMixer:
    return MlpMixer(**{**variant(name).config, **kwargs})


@register_model
def mixer_s32(**kwargs) -> MlpMixer:
    return _mixer("mixer_s32", **kwargs)


@register_model
def mixer_s16(**kwargs) -> MlpMixer:
    return _mixer("mixer_s16", **kwargs)


@register_model
def mixer_b32(**kwargs) -> MlpMixer:
    return _mixer("mixer_b32", **kwargs)


@register_model
def mixer_b16(**kwargs) -> MlpMixer:
    return _mixer("mixer_b16", **kwargs)


@register_model
def mixer_l32(**kwargs) -> MlpMixer:
    return _mixer("mixer_l32", **kwargs)


@register_model
def mixer_l16(**kwargs) -> MlpMixer:
    return _mixer("mixer_l16", **kwargs)
