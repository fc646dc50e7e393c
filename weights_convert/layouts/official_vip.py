"""The official ViP layout (Andrew-Qibin/VisionPermutator models/vip.py): ``network`` is one list of block
groups with the transition convs between them, e.g. ViP-S/7 ``network.0.{0-3}``, ``network.1.proj``
(transition), ``network.2.{0-2}``, ``network.3.{0-7}``, ``network.4.{0-2}``.

Natively the groups between two transitions form one stage with blocks numbered through, the transition
is that stage's ``downsample``, and ``attn`` (the Weighted Permute-MLP) is ``permute_mlp``.
"""
from __future__ import annotations

import re

from .layout import Layout, State, rename_prefix

_NETWORK = re.compile(r"network\.(\d+)\.(?:(\d+)\.)?(.+)")  # entry, block in a group (none: transition), rest
_BLOCK_PARTS = {"attn.mlp_c": "permute_mlp.mix_c", "attn.mlp_h": "permute_mlp.mix_h",
                "attn.mlp_w": "permute_mlp.mix_w", "attn.reweight": "permute_mlp.reweight",
                "attn.proj": "permute_mlp.proj"}  # norm1, norm2 and mlp keep their names


def matches(state: State) -> bool:
    return "patch_embed.proj.weight" in state and "network.0.0.attn.mlp_h.weight" in state


def _places(state: State) -> dict[int, tuple[int, int | None]]:
    """For each ``network`` entry: (native stage, native index of its first block), or (stage, None) for a
    transition, which starts a new stage."""
    blocks: dict[int, set[int]] = {}
    for m in filter(None, map(_NETWORK.match, state)):
        indices = blocks.setdefault(int(m.group(1)), set())
        if m.group(2):
            indices.add(int(m.group(2)))
    places: dict[int, tuple[int, int | None]] = {}
    stage, first = 0, 0
    for i in sorted(blocks):
        if blocks[i]:
            places[i] = (stage, first)
            first += max(blocks[i]) + 1
        else:
            stage, first = stage + 1, 0
            places[i] = (stage, None)
    return places


def to_native(state: State) -> State:
    places = _places(state)
    out: State = {}
    for key, value in state.items():
        if key.startswith("patch_embed.proj."):
            out["stem." + key[len("patch_embed.proj."):]] = value
        elif m := _NETWORK.match(key):
            stage, first = places[int(m.group(1))]
            if first is None:  # the transition's own Conv2d is called proj
                out[f"stages.{stage}.downsample.{m.group(3).removeprefix('proj.')}"] = value
            else:
                part = rename_prefix(m.group(3), _BLOCK_PARTS)
                out[f"stages.{stage}.blocks.{first + int(m.group(2))}.{part}"] = value
        else:
            out[key] = value  # norm.*, head.*
    return out


LAYOUT = Layout("official ViP", "vip", matches, to_native)
