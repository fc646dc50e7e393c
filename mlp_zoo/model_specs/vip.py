"""Vision Permutator (ViP, arXiv 2106.12368), as in the official code (Andrew-Qibin/VisionPermutator):
variants, published figures, native keys.

The official code lists blocks in groups (``layers``) with a downsampling transition after some of them;
here the groups between two transitions form one stage (one token grid), so ``depths`` counts the blocks
per stage: ViP-M/7's groups 4, 3 / 14, 3 are the stages (7, 17). ``segment_dims`` must equal each stage's
token grid side at 224 (the permute's C x C weights are tied to it).
"""
from __future__ import annotations

from typing import Any

from .registry import Family, ModelInfo, State, add_family, add_variants, count_indices

_RELEASE = "{} (Google Drive link in Andrew-Qibin/VisionPermutator README)"

add_variants(
    ModelInfo("vip_s14", "vip", dict(patch_size=14, depths=(18,), embed_dims=(384,), segment_dims=(16,),
                                     drop_path_rate=0.1),
              params=29_892_904, macs=6.86, top1=80.5, official_release=None),
    ModelInfo("vip_s7", "vip", dict(patch_size=7, depths=(4, 14), embed_dims=(192, 384), segment_dims=(32, 16),
                                    drop_path_rate=0.1),
              params=25_114_984, macs=6.90, top1=81.5, official_release=_RELEASE.format("ViP-Small/7")),
    ModelInfo("vip_m7", "vip", dict(patch_size=7, depths=(7, 17), embed_dims=(256, 512), segment_dims=(32, 16),
                                    drop_path_rate=0.2),
              params=55_272_488, macs=16.28, top1=82.7, official_release=_RELEASE.format("ViP-Medium/7")),
    ModelInfo("vip_l7", "vip", dict(patch_size=7, depths=(8, 28), embed_dims=(256, 512), segment_dims=(32, 16),
                                    drop_path_rate=0.3),
              params=87_784_936, macs=24.34, top1=83.2, official_release=_RELEASE.format("ViP-Large/7")),
)


def describe(state: State) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(architecture, extra build arguments) of a native ViP state dict, or None."""
    if "stem.weight" not in state or "stages.0.blocks.0.permute_mlp.mix_h.weight" not in state:
        return None
    n_stages = count_indices(state, r"stages\.(\d+)\.")
    depths = tuple(count_indices(state, rf"stages\.{s}\.blocks\.(\d+)\.") for s in range(n_stages))
    dims = tuple(state[f"stages.{s}.blocks.0.norm1.weight"].shape[0] for s in range(n_stages))
    extra: dict[str, Any] = {}
    if state["stem.weight"].shape[1] != 3:
        extra["in_chans"] = state["stem.weight"].shape[1]
    if "head.weight" in state and state["head.weight"].shape[0] != 1000:
        extra["num_classes"] = state["head.weight"].shape[0]
    return {"patch_size": state["stem.weight"].shape[-1], "depths": depths, "embed_dims": dims}, extra


add_family(Family("vip", describe, arch_keys=("patch_size", "depths", "embed_dims"),
                  classifier=("head.weight", "head.bias")))
