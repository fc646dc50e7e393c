"""SPACH's sMLPNet layout (microsoft/SPACH models/smlp.py): flat global block indices, Conv2d(N, N, 1) mixes.

Its ``proj_h`` mixes along W and ``proh_w`` (sic) along H; here they become ``mix_w`` and ``mix_h``.
"""
from __future__ import annotations

import re

from .layout import Layout, State, rename_prefix

_BLOCK = re.compile(r"(token_mix|channel_mix)\.(\d+)\.(.+)")
_STEM = re.compile(r"to_patch_embedding\.(\d+)\.0\.weight")
_TOKEN_MIX = {"0.conv_merge.BN": "dw_norm", "0.conv_merge.Conv": "dw_conv", "1.BN": "mix_norm",
              "1.proj_h": "mix_w", "1.proh_w": "mix_h", "1.fuse": "fuse"}
_CHANNEL_MIX = {"1": "norm", "2.net.0": "mlp.fc1", "2.net.3": "mlp.fc2"}
_HEAD = {"batch_norm": "norm", "mlp_head.0": "head"}


def matches(state: State) -> bool:
    return "to_patch_embedding.0.0.weight" in state and any(k.startswith("token_mix.") for k in state)


def _stage_of_blocks(state: State) -> list[tuple[int, int]]:
    """(stage, index in stage) for each global block index, from where the downsampling convs change width."""
    n_blocks = 1 + max(int(m.group(2)) for m in map(_BLOCK.match, state) if m)
    n_stages = 1 + max(int(m.group(1)) for m in map(_STEM.match, state) if m)
    widths = [state[f"token_mix.{i}.1.fuse.weight"].shape[0] for i in range(n_blocks)]
    stage_widths = [state[f"to_patch_embedding.{s}.0.weight"].shape[0] for s in range(n_stages)]
    out, stage, j = [], 0, 0
    for i, w in enumerate(widths):
        if w != stage_widths[stage]:
            stage, j = stage + 1, 0
        out.append((stage, j))
        j += 1
    return out


def to_native(state: State) -> State:
    where = _stage_of_blocks(state)
    out: State = {}
    for key, value in state.items():
        if m := _STEM.match(key):
            s = int(m.group(1))
            out["stem.weight" if s == 0 else f"stages.{s}.downsample.weight"] = value
        elif m := _BLOCK.match(key):
            stage, j = where[int(m.group(2))]
            table = _TOKEN_MIX if m.group(1) == "token_mix" else _CHANNEL_MIX
            part = rename_prefix(m.group(3), table)
            if m.group(1) == "token_mix":
                part = "token_mix." + part
                if part.startswith(("token_mix.mix_w.weight", "token_mix.mix_h.weight")) and value.ndim == 4:
                    value = value.reshape(value.shape[:2])  # Conv2d(N, N, 1x1) -> (N, N) matrix
            out[f"stages.{stage}.blocks.{j}.{part}"] = value
        else:
            out[rename_prefix(key, _HEAD)] = value
    return out


LAYOUT = Layout("SPACH sMLPNet", "smlp", matches, to_native)
