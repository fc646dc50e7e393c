"""What an official checkpoint layout provides."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

State = dict[str, np.ndarray]


def rename_prefix(name: str, table: dict[str, str]) -> str:
    """``name`` with its leading module path renamed by ``table`` (old prefix -> new); unknown names pass
    through unchanged, to be reported as unexpected keys by the strict check."""
    for old, new in table.items():
        if name.startswith(old + "."):
            return new + name[len(old):]
    return name


@dataclass(frozen=True)
class Layout:
    name: str  # e.g. "SPACH sMLPNet"
    family: str
    matches: Callable[[State], bool]  # whether a state dict is in this layout
    to_native: Callable[[State], State]
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # build arguments its outputs need
