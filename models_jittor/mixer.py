"""MLP-Mixer (arXiv 2105.01601) in Jittor, computing what Google's JAX model and timm's port compute.

Tokens (B, N, C) come from a strided p x p patch conv. Each block: ``x + token_mlp(norm1(x))``, one MLP along
the N tokens shared by all channels, then ``x + channel_mlp(norm2(x))``. Head: LayerNorm, mean over tokens,
Linear. Names are timm's, so its checkpoints load as they are (Google's .npz via weights_convert).
GELU is exact as in timm; ``gelu='tanh'`` reproduces JAX (chosen automatically for JAX checkpoints).
Unlike the original, the input may be any size divisible by the patch (the token MLP's N follows it).
"""
from __future__ import annotations

import math

from mlp_zoo.jittor_support.runtime import jt
from jittor import init, nn

from mlp_zoo.model_specs import variant
from mlp_zoo.model_specs.features import Indices, take_indices
from .layers import DropPath, LayerNorm, Mlp, gelu_layer, linear_act, linear_residual, permute, residual_branch
from .registry import register_model

LN_EPS = 1e-6  # Flax's LayerNorm default, kept by timm


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches projected to C channels, as (B, N, C) tokens in row-major grid order."""

    def __init__(self, img_size: tuple[int, int], patch_size: int, in_chans: int, embed_dim: int) -> None:
        if img_size[0] % patch_size or img_size[1] % patch_size:
            raise ValueError(f"img_size {img_size} must be divisible by the patch size {patch_size}")
        self.grid = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.num_tokens = self.grid[0] * self.grid[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)

    def execute(self, x: jt.Var) -> jt.Var:
        return self.proj(x).flatten(2).transpose(1, 2)  # no .contiguous(): Jittor's transpose is never a view


class TokenMlp(nn.Module):
    """Linear -> GELU -> Linear along the token axis of (B, N, C) input, the same for every channel."""

    TRANSPOSED_INPUT = True  # residual() takes x as (B, C, N) (in Jittor, as the LayerNorm kernel writes it)

    def __init__(self, num_tokens: int, hidden: int, gelu: str = "exact") -> None:
        self.fc1 = nn.Linear(num_tokens, hidden)
        self.act = gelu_layer(gelu)
        self.fc2 = nn.Linear(hidden, num_tokens)

    def execute(self, x: jt.Var) -> jt.Var:
        # Jittor has no batched GEMM on CPU (weights times a 3-D batch become a broadcast-reduce), so the tokens go
        # last for its Linear's 2-D GEMM: the whole Mixer-B/16 ran 13-35% faster so on 2 CPU cores (our permute:
        # Jittor's transposes run on one CPU thread)
        return permute(self.fc2(linear_act(self.fc1, self.act, permute(x, (0, 2, 1)))), (0, 2, 1))

    def residual(self, x: jt.Var, residual: jt.Var, drop_path: DropPath) -> jt.Var:
        """``residual + drop_path(self(x.transpose(1, 2)))`` (``layers.residual_branch``)."""
        # the tokens are already last: the linears take x as it is and the end of the block transposes back
        return linear_residual(self.fc2, linear_act(self.fc1, self.act, x), residual, drop_path, transpose=True)


class MixerBlock(nn.Module):
    def __init__(self, dim: int, num_tokens: int, tokens_dim: int, channels_dim: int,
                 drop_path: float = 0.0, gelu: str = "exact") -> None:
        self.norm1 = LayerNorm(dim, eps=LN_EPS)
        self.mlp_tokens = TokenMlp(num_tokens, tokens_dim, gelu)
        self.norm2 = LayerNorm(dim, eps=LN_EPS)
        self.mlp_channels = Mlp(dim, channels_dim, gelu)
        self.drop_path = DropPath(drop_path)

    def execute(self, x: jt.Var) -> jt.Var:
        x = residual_branch(x, self.norm1, self.mlp_tokens, self.drop_path)  # x + drop_path(mlp(norm(x)))
        return residual_branch(x, self.norm2, self.mlp_channels, self.drop_path)


class MlpMixer(nn.Module):
    def __init__(self, img_size: int | tuple[int, int] = 224, in_chans: int = 3, num_classes: int = 1000,
                 patch_size: int = 16, depth: int = 8, embed_dim: int = 512, tokens_dim: int = 256,
                 channels_dim: int = 2048, drop_path_rate: float = 0.0, gelu: str = "exact") -> None:
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

    def _init_weights(self) -> None:
        """timm's Mixer init: lecun-normal stem (Flax's default), xavier-uniform MLPs with near-zero biases;
        LayerNorms start at ones and zeros (the head: ``reset_classifier``)."""
        stem = self.stem.proj.weight
        std = math.sqrt(1.0 / math.prod(stem.shape[1:])) / 0.87962566103423978  # std of N(0, 1) truncated to +-2
        init.trunc_normal_(stem, std=std, a=-2 * std, b=2 * std)
        init.zero_(self.stem.proj.bias)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                init.xavier_uniform_(module.weight)
                init.gauss_(module.bias, std=1e-6)

    def reset_classifier(self, num_classes: int) -> None:
        """A new classifier for ``num_classes`` (0: none, features only), zero as in both timm and JAX."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            init.zero_(self.head.weight)
            init.zero_(self.head.bias)

    def forward_features(self, x: jt.Var) -> jt.Var:
        return self.norm(self.blocks(self.stem(x)))

    def forward_head(self, x: jt.Var, pre_logits: bool = False) -> jt.Var:
        x = x.mean(1)
        return x if pre_logits else self.head(x)

    def forward_intermediates(self, x: jt.Var, indices: Indices = None) -> list[jt.Var]:
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

    def execute(self, x: jt.Var) -> jt.Var:
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
