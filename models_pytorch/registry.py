"""The PyTorch model registry: ``create_model(name, pretrained=None, **kwargs)`` and ``list_models()``."""
from __future__ import annotations

import os
from typing import Any, Callable, Collection

import numpy as np
import torch
from torch import nn

from weights_convert.pretrained import build_with_weights

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_MODELS)


def state_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def load_state(model: nn.Module, state: dict[str, np.ndarray], fresh: Collection[str] = ()) -> None:
    """Load an already strictly matched numpy state dict; the keys in ``fresh`` (a new classifier) keep the
    model's own values and must be the only ones ``state`` lacks."""
    tensors = {k: torch.from_numpy(np.asarray(v, order="C")) for k, v in state.items()}
    result = model.load_state_dict(tensors, strict=not fresh)
    if set(result.missing_keys) != set(fresh) or result.unexpected_keys:
        raise RuntimeError(f"state does not fit: missing {result.missing_keys}, unexpected {result.unexpected_keys}")


def create_model(name: str, pretrained: bool | str | os.PathLike | None = None, **kwargs: Any) -> nn.Module:
    """Build the variant ``name``; ``pretrained`` is a checkpoint path in any supported format, or a published
    release: ``True`` (the variant's default), ``"variant.tag"`` or ``"hf-hub:org/repo"``, downloaded once into
    the cache (docs/releases.md). Built with the file's class count unless ``num_classes`` is given: another
    count fine-tunes (a fresh classifier, a warning).

    ``trust_pickle=True`` allows pickled objects beyond arrays (only for files you trust); ``ema=True`` takes
    the EMA weights of a training checkpoint; ``allow_nonfinite=True`` accepts NaN/Inf weights. An ``img_size``
    other than the file's resamples its grid-sized token-mixing weights, with a warning: ``resample='pi'``
    (default), ``'interp'`` or ``'none'`` (refuse), ``resample_kernel='bilinear'`` or ``'bicubic'``
    (docs/resolution.md).
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model '{name}'; known: {', '.join(list_models())}")
    return build_with_weights(_MODELS[name], name, pretrained, state_shapes, load_state, **kwargs)
