"""MLP-Mixer (arXiv 2105.01601), as in Google's JAX code and timm's port: variants, published figures, native keys.

Native keys are timm's (``stem.proj``, ``blocks.{i}.{norm1,mlp_tokens,norm2,mlp_channels}``, ``norm``, ``head``),
so timm's released state dicts load as they are.
"""
from __future__ import annotations

import math
from typing import Any

from .registry import Family, ModelInfo, State, add_family, add_variants, count_indices


def _mixer(patch: int, depth: int, dim: int) -> dict[str, Any]:
    """Token MLP width C / 2 and channel MLP width 4C, as in every official Mixer configuration."""
    return dict(patch_size=patch, depth=depth, embed_dim=dim, tokens_dim=dim // 2, channels_dim=4 * dim)


_B16_RELEASE = "jx_mixer_b16_224-76587d61.pth (timm); imagenet1k/Mixer-B_16.npz (gs://mixer_models)"
_L16_RELEASE = "jx_mixer_l16_224-92f9adc4.pth (timm); imagenet1k/Mixer-L_16.npz (gs://mixer_models)"

add_variants(
    ModelInfo("mixer_s32", "mixer", _mixer(32, 8, 512), params=19_104_624, macs=1.00, top1=None),
    ModelInfo("mixer_s16", "mixer", _mixer(16, 8, 512), params=18_528_264, macs=3.78, top1=None),
    ModelInfo("mixer_b32", "mixer", _mixer(32, 12, 768), params=60_293_428, macs=3.24, top1=None),
    ModelInfo("mixer_b16", "mixer", _mixer(16, 12, 768), params=59_880_472, macs=12.60, top1=76.4,
              official_release=_B16_RELEASE),
    ModelInfo("mixer_l32", "mixer", _mixer(32, 24, 1024), params=206_939_264, macs=None, top1=None),
    ModelInfo("mixer_l16", "mixer", _mixer(16, 24, 1024), params=208_196_168, macs=44.55, top1=71.8,
              official_release=_L16_RELEASE),
)


def describe(state: State) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(architecture, extra build arguments) of a native MLP-Mixer state dict, or None."""
    if "stem.proj.weight" not in state or "blocks.0.mlp_tokens.fc1.weight" not in state:
        return None
    stem = state["stem.proj.weight"]  # (C, in_chans, p, p)
    tokens_dim, n_tokens = state["blocks.0.mlp_tokens.fc1.weight"].shape
    arch = dict(patch_size=stem.shape[-1], depth=count_indices(state, r"blocks\.(\d+)\."), embed_dim=stem.shape[0],
                tokens_dim=tokens_dim, channels_dim=state["blocks.0.mlp_channels.fc1.weight"].shape[0])
    side = math.isqrt(n_tokens)
    if side * side != n_tokens:
        raise ValueError(f"an MLP-Mixer for {n_tokens} tokens: not a square grid, pass img_size=(H, W) and --model")
    extra: dict[str, Any] = {}
    if side * stem.shape[-1] != 224:
        extra["img_size"] = side * stem.shape[-1]
    if stem.shape[1] != 3:
        extra["in_chans"] = stem.shape[1]
    num_classes = state["head.weight"].shape[0] if "head.weight" in state else 0
    if num_classes != 1000:
        extra["num_classes"] = num_classes
    return arch, extra


add_family(Family("mixer", describe, arch_keys=("patch_size", "depth", "embed_dim", "tokens_dim", "channels_dim"),
                  classifier=("head.weight", "head.bias")))
