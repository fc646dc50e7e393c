"""``create_model(name, pretrained=PATH)`` for either framework: read, build as the file needs, load strictly."""
from __future__ import annotations

import os
from typing import Any, Callable, TypeVar

import numpy as np

from .checkpoint import read_checkpoint

M = TypeVar("M")


def build_with_weights(build: Callable[..., M], name: str, pretrained: str | os.PathLike | None,
                       shapes_of: Callable[[M], dict[str, tuple[int, ...]]],
                       load: Callable[[M, dict[str, np.ndarray]], None],
                       trust_pickle: bool = False, allow_nonfinite: bool = False, ema: bool = False,
                       **kwargs: Any) -> M:
    """``build(**kwargs)``, with the weights of ``pretrained`` (any supported file) loaded strictly.

    Arguments a checkpoint's layout needs (e.g. tanh GELU for JAX weights) apply unless given explicitly.
    """
    if pretrained is None:
        return build(**kwargs)
    ckpt = read_checkpoint(pretrained, trust_pickle=trust_pickle, allow_nonfinite=allow_nonfinite, ema=ema)
    model = build(**{**ckpt.model_kwargs, **kwargs})
    load(model, ckpt.fit(shapes_of(model), name))
    return model
