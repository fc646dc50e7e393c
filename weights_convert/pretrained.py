"""``create_model(name, pretrained=PATH)`` for either framework: read, build as the file needs, load strictly.

Fine-tuning works as in timm: a ``num_classes`` other than the file's drops the file's classifier, which keeps the
model's fresh init (with a warning naming the dropped keys); every other key still loads strictly.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Collection, TypeVar

import numpy as np

from mlp_zoo.model_specs import FAMILIES, Family, variant
from mlp_zoo.release_files import resolve_weights
from mlp_zoo.model_specs.pretrained_cfg import model_cfg

from .checkpoint import read_checkpoint
from .checks import match_state
from .resample import RESAMPLE_OPTIONS, fit_to_size, resample_state

M = TypeVar("M")
State = dict[str, np.ndarray]


def described_options(family: Family, state: State) -> dict[str, Any]:
    """Build arguments other than the defaults that the weights imply (class count, input size, channels)."""
    try:
        described = family.describe(state)
    except (ValueError, KeyError, IndexError):  # e.g. a non-square Mixer grid: the caller must say img_size
        described = None
    return dict(described[1]) if described else {}


def file_options(family: Family, state: State) -> dict[str, Any]:
    """``described_options`` with the class count set (0 for weights saved without a classifier) unless the
    classifier is malformed (the strict match then reports it)."""
    options = described_options(family, state)
    options.pop("num_classes", None)
    classes = family.num_classes(state)
    return options if classes is None else {**options, "num_classes": classes}


def build_with_weights(build: Callable[..., M], name: str, pretrained: bool | str | os.PathLike | None,
                       shapes_of: Callable[[M], dict[str, tuple[int, ...]]],
                       load: Callable[[M, State, Collection[str]], None],
                       trust_pickle: bool = False, allow_nonfinite: bool = False, ema: bool = False,
                       **kwargs: Any) -> M:
    """``build(**kwargs)``, with the weights of ``pretrained`` loaded strictly: any supported file, or a name that
    ``mlp_zoo.release_files.resolve_weights`` fetches (True: the default release, ``"variant.tag"``, ``"hf-hub:..."``).

    Arguments the file needs (its class count and input size; tanh GELU for JAX weights) apply unless given
    explicitly. An explicit ``num_classes`` that differs from the file's (0: features only) loads everything but
    the classifier, which keeps its fresh init: ``load(model, state, fresh)`` gets the keys to leave as built.
    An ``img_size`` other than the file's resamples its token-mixing weights (``weights_convert.resample``).
    ``model.pretrained_cfg`` is the evaluation cfg of the release detected in the file (or the one it carries).
    """
    if pretrained is None or pretrained is False:
        args = {k: v for k, v in kwargs.items() if k not in RESAMPLE_OPTIONS}
        if variant(name).family == "vip" and "img_size" in args:  # ViP is built at a size by its segment_dims
            args.update(resample_state(name, {}, args.pop("img_size"), built=args)[1])
        model = build(**args)
        model.pretrained_cfg = model_cfg(name, img_size=kwargs.get("img_size"), num_classes=kwargs.get("num_classes"))
        return model
    ckpt = read_checkpoint(resolve_weights(pretrained, name), trust_pickle=trust_pickle, allow_nonfinite=allow_nonfinite, ema=ema)
    family = FAMILIES[variant(name).family]
    options = file_options(family, ckpt.state)
    state, kwargs = fit_to_size(name, ckpt.state, {**ckpt.model_kwargs, **options}, kwargs, ckpt.path)
    model = build(**{**ckpt.model_kwargs, **options, **kwargs})
    expected, fresh = shapes_of(model), ()
    if kwargs.get("num_classes", options.get("num_classes")) != options.get("num_classes"):
        head = set(family.classifier)
        fresh = tuple(k for k in family.classifier if k in expected)
        dropped = [k for k in family.classifier if k in state]
        state = {k: v for k, v in state.items() if k not in head}
        expected = {k: s for k, s in expected.items() if k not in head}
        kept = f"{', '.join(fresh)} keep their fresh init" if fresh else "the model has no classifier"
        has = options.get("num_classes", "a malformed classifier")
        warnings.warn(f"{ckpt.path}: {name} with num_classes={kwargs['num_classes']}, the file has {has}: "
                      f"dropped {', '.join(dropped) or 'nothing'}; {kept}", stacklevel=3)
    load(model, match_state(state, expected, ckpt.path, name), fresh)
    built = {**options, **kwargs}  # the release's cfg, at the size and class count the model was built with
    model.pretrained_cfg = model_cfg(name, ckpt.layout, ckpt.pretrained_cfg, built.get("img_size"),
                                     built.get("num_classes", options.get("num_classes")))
    return model
