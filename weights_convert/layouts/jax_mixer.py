"""Google's JAX MLP-Mixer layout (google-research/vision_transformer vit_jax/models_mixer.py): a flat .npz of
``/``-joined Flax names. The stem kernel is HWIO and Dense kernels are (in, out), so both are transposed to
PyTorch's (out, in, kh, kw) and (out, in). The JAX model uses tanh-approximated GELU, so models built from
these weights do too.
"""
from __future__ import annotations

import re

import numpy as np

from .layout import Layout, State

_BLOCK = re.compile(r"MixerBlock_(\d+)/(.+)/(kernel|bias|scale)")
_PARTS = {"LayerNorm_0": "norm1", "token_mixing/Dense_0": "mlp_tokens.fc1", "token_mixing/Dense_1": "mlp_tokens.fc2",
          "LayerNorm_1": "norm2", "channel_mixing/Dense_0": "mlp_channels.fc1",
          "channel_mixing/Dense_1": "mlp_channels.fc2"}
_TOP = {"stem": "stem.proj", "pre_head_layer_norm": "norm", "head": "head"}
_PARAMS = {"kernel": "weight", "scale": "weight", "bias": "bias"}


def matches(state: State) -> bool:
    return "stem/kernel" in state and any(k.startswith("MixerBlock_") for k in state)


def _param(name: str, value: np.ndarray) -> tuple[str, np.ndarray]:
    if name == "kernel":  # HWIO conv -> OIHW; Dense (in, out) -> (out, in)
        value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T
    return _PARAMS[name], np.ascontiguousarray(value)


def to_native(state: State) -> State:
    out: State = {}
    for key, value in state.items():
        if m := _BLOCK.fullmatch(key):
            module = f"blocks.{m.group(1)}.{_PARTS.get(m.group(2), m.group(2))}"
            name = m.group(3)
        else:
            module, _, name = key.rpartition("/")
            module = _TOP.get(module, module)
        if name not in _PARAMS:  # unknown entries pass through and are then reported as unexpected keys
            out[key] = value
            continue
        param, value = _param(name, value)
        out[f"{module}.{param}"] = value
    return out


LAYOUT = Layout("Google JAX MLP-Mixer", "mixer", matches, to_native, model_kwargs={"gelu": "tanh"})
