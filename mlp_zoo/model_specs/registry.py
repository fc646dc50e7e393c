"""The one table of variants and families that both model trees and the converter read."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

State = dict[str, np.ndarray]


@dataclass(frozen=True)
class ModelInfo:
    """A named variant: its family, constructor arguments and the published figures."""

    name: str
    family: str
    config: dict[str, Any]
    params: int  # official parameter count (1000 classes)
    macs: float | None  # official multiply-accumulates per 224 image, in G
    top1: float | None  # published ImageNet-1k top-1 at 224
    official_release: str | None = None


@dataclass(frozen=True)
class Family:
    """How to recognise a family's native state dict: ``describe(state)`` returns (architecture config,
    extra build arguments such as img_size) or None; ``arch_keys`` are the config entries naming a variant;
    ``classifier`` the keys of the classification head, its (num_classes, features) weight first."""

    name: str
    describe: Callable[[State], tuple[dict[str, Any], dict[str, Any]] | None]
    arch_keys: tuple[str, ...]
    classifier: tuple[str, ...]

    def num_classes(self, state: State) -> int | None:
        """The class count of ``state``'s classifier: 0 for a state saved without one, None for a malformed one."""
        weight = state.get(self.classifier[0])
        if weight is None:
            return 0
        return int(weight.shape[0]) if weight.ndim == 2 else None


VARIANTS: dict[str, ModelInfo] = {}
FAMILIES: dict[str, Family] = {}


def add_variants(*infos: ModelInfo) -> None:
    for info in infos:
        if info.name in VARIANTS:
            raise ValueError(f"variant {info.name} is defined twice")
        VARIANTS[info.name] = info


def add_family(family: Family) -> None:
    FAMILIES[family.name] = family


def variant(name: str) -> ModelInfo:
    """The variant called ``name``; an unknown name raises KeyError listing the known ones."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown model '{name}'; known: {', '.join(sorted(VARIANTS))}") from None


def count_indices(state: State, pattern: str) -> int:
    """How many distinct values fill the one group of regex ``pattern`` over the keys of ``state``."""
    import re

    rx = re.compile(pattern)
    return len({m.group(1) for m in map(rx.match, state) if m})
