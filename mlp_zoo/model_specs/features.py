"""Which intermediate outputs ``forward_intermediates(x, indices)`` returns: timm's convention, for all models."""
from __future__ import annotations

from typing import Sequence

Indices = int | Sequence[int] | None


def take_indices(count: int, indices: Indices) -> set[int]:
    """The stage or block indices (of ``count``) asked for: None, all; an int n, the last n; a sequence, those
    (negative ones count from the end)."""
    if indices is None:
        return set(range(count))
    if isinstance(indices, int):
        if not 0 < indices <= count:
            raise ValueError(f"indices={indices}: ask for 1 to {count} of the last outputs")
        return set(range(count - indices, count))
    taken = {i + count if i < 0 else i for i in indices}
    if not taken or not all(0 <= i < count for i in taken):
        raise ValueError(f"indices={list(indices)}: each must lie in [-{count}, {count})")
    return taken
