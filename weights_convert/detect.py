"""Which registered variant a native state dict belongs to, read from its keys and shapes."""
from __future__ import annotations

from typing import Any

import numpy as np

from mlp_zoo.model_specs import FAMILIES, VARIANTS

from .errors import CheckpointError
from .escaping import shown

State = dict[str, np.ndarray]


def _same(a: Any, b: Any) -> bool:
    return tuple(np.atleast_1d(a)) == tuple(np.atleast_1d(b))


def detect(state: State, source: str) -> tuple[str, dict[str, Any]]:
    """(variant name, extra build arguments such as img_size) for a native state dict."""
    found: list[tuple[str, dict[str, Any]]] = []
    for family in FAMILIES.values():
        try:
            described = family.describe(state)
        except (ValueError, KeyError, IndexError) as e:  # keys of the family, but shapes that make no sense
            raise CheckpointError(f"{source}: {str(e).strip(chr(39))}") from None
        if described is None:
            continue
        arch, extra = described
        names = [v.name for v in VARIANTS.values() if v.family == family.name
                 and all(_same(v.config[k], arch[k]) for k in family.arch_keys)]
        if not names:
            known = ", ".join(v.name for v in VARIANTS.values() if v.family == family.name)
            raise CheckpointError(f"{source}: a {family.name} checkpoint of no registered variant ({arch}); "
                                  f"known: {known}; pass --model NAME")
        found += [(n, extra) for n in names]
    if len(found) == 1:
        return found[0]
    if not found:
        keys = ", ".join(shown(k) for k in list(state)[:3])
        raise CheckpointError(f"{source}: unknown architecture (keys such as {keys}); "
                              f"candidates: {', '.join(VARIANTS)}; pass --model NAME")
    raise CheckpointError(f"{source}: ambiguous architecture, candidates: {', '.join(n for n, _ in found)}; "
                          f"pass --model NAME")
