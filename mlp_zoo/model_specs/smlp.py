"""sMLPNet (arXiv 2109.05422), as in the official SPACH code: variants, published figures, native keys."""
from __future__ import annotations

from typing import Any

from .registry import Family, ModelInfo, State, add_family, add_variants, count_indices

add_variants(
    ModelInfo("smlpnet_t", "smlp", dict(embed_dim=80, depths=(2, 8, 14, 2), drop_path_rate=0.0),
              params=24_123_584, macs=4.99, top1=81.9, official_release=None),
    ModelInfo("smlpnet_s", "smlp", dict(embed_dim=96, depths=(2, 10, 24, 2), drop_path_rate=0.2),
              params=48_558_136, macs=10.31, top1=83.1, official_release="smlp_s.pth (SPACH)"),
    ModelInfo("smlpnet_b", "smlp", dict(embed_dim=112, depths=(2, 10, 24, 2), drop_path_rate=0.3),
              params=65_880_408, macs=13.99, top1=83.4, official_release="smlp_b.pth (SPACH)"),
)


def describe(state: State) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(architecture, extra build arguments) of a native sMLPNet state dict, or None."""
    first = "stages.0.blocks.0.token_mix"
    if "stem.weight" not in state or f"{first}.mix_w.weight" not in state:
        return None
    n_stages = count_indices(state, r"stages\.(\d+)\.")
    depths = tuple(count_indices(state, rf"stages\.{s}\.blocks\.(\d+)\.") for s in range(n_stages))
    img = (state[f"{first}.mix_h.weight"].shape[0] * 4, state[f"{first}.mix_w.weight"].shape[0] * 4)
    extra: dict[str, Any] = {} if img == (224, 224) else {"img_size": img}
    if "head.weight" in state and state["head.weight"].shape[0] != 1000:
        extra["num_classes"] = state["head.weight"].shape[0]
    return {"embed_dim": state["stem.weight"].shape[0], "depths": depths}, extra


add_family(Family("smlp", describe, arch_keys=("embed_dim", "depths"),
                  classifier=("head.weight", "head.bias")))
