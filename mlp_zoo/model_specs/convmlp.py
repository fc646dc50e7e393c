"""ConvMLP (arXiv 2109.04454), as in the official SHI-Labs code: variants, published figures, native keys.

The native keys are the official ones, so the released ``convmlp_{s,m,l}_imagenet.pth`` load as they are.
"""
from __future__ import annotations

from typing import Any

from .registry import Family, ModelInfo, State, add_family, add_variants, count_indices

_RELEASE = "convmlp_{}_imagenet.pth (SHI-Labs)"

add_variants(
    ModelInfo("convmlp_s", "convmlp", dict(depths=(2, 4, 2), dims=(128, 256, 512), mlp_ratios=(2, 2, 2),
                                           tokenizer_dim=64, n_conv_blocks=2),
              params=9_022_920, macs=2.39, top1=76.8, official_release=_RELEASE.format("s")),
    ModelInfo("convmlp_m", "convmlp", dict(depths=(3, 6, 3), dims=(128, 256, 512), mlp_ratios=(3, 3, 3),
                                           tokenizer_dim=64, n_conv_blocks=3),
              params=17_410_504, macs=3.93, top1=79.0, official_release=_RELEASE.format("m")),
    ModelInfo("convmlp_l", "convmlp", dict(depths=(4, 8, 3), dims=(192, 384, 768), mlp_ratios=(3, 3, 3),
                                           tokenizer_dim=96, n_conv_blocks=3),
              params=42_728_440, macs=9.87, top1=80.2, official_release=_RELEASE.format("l")),
)


def _ratio(hidden: int, dim: int) -> float | int:
    return hidden // dim if hidden % dim == 0 else hidden / dim


def describe(state: State) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(architecture, extra build arguments) of a native (= official) ConvMLP state dict, or None."""
    if "tokenizer.block.0.weight" not in state or "conv_stages.downsample.weight" not in state:
        return None
    n_stages = count_indices(state, r"stages\.(\d+)\.")
    depths = tuple(count_indices(state, rf"stages\.{s}\.blocks\.(\d+)\.") for s in range(n_stages))
    dims = tuple(state[f"stages.{s}.blocks.0.norm1.weight"].shape[0] for s in range(n_stages))
    hidden = [state[f"stages.{s}.blocks.0.channel_mlp1.fc1.weight"].shape[0] for s in range(n_stages)]
    arch = {"depths": depths, "dims": dims, "mlp_ratios": tuple(map(_ratio, hidden, dims)),
            "tokenizer_dim": state["tokenizer.block.6.weight"].shape[0],
            "n_conv_blocks": count_indices(state, r"conv_stages\.conv_blocks\.(\d+)\.")}
    classes = state["head.weight"].shape[0] if "head.weight" in state else 0  # 0: saved without a head
    extra: dict[str, Any] = {} if classes == 1000 else {"num_classes": classes}
    return arch, extra


add_family(Family("convmlp", describe,
                  arch_keys=("depths", "dims", "mlp_ratios", "tokenizer_dim", "n_conv_blocks"),
                  classifier=("head.weight", "head.bias")))
