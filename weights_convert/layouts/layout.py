"""What an official checkpoint layout provides."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

State = dict[str, np.ndarray]


@dataclass(frozen=True)
class Layout:
    name: str  # e.g. "SPACH sMLPNet"
    family: str
    matches: Callable[[State], bool]  # whether a state dict is in this layout
    to_native: Callable[[State], State]
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # build arguments its outputs need
