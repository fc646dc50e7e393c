"""Reading any supported checkpoint into native names, and fitting it strictly to a model."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlp_zoo.model_specs import checkpoint_cfg

from . import layouts
from .checks import Shapes, check_values, match_state
from .containers import unwrap
from .detect import detect
from .errors import CheckpointError
from .formats import read_file

State = dict[str, np.ndarray]


@dataclass
class Checkpoint:
    """A checkpoint's weights in the zoo's native names, with what was learnt while reading it."""

    path: str
    state: State
    file_format: str
    container: str
    layout: str  # "native" or the official release layout it was translated from
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # needed to reproduce the official model
    notes: list[str] = field(default_factory=list)
    pretrained_cfg: dict[str, Any] | None = None  # the cfg a fine-tuned checkpoint carries (checked)

    def detect(self) -> tuple[str, dict[str, Any]]:
        """(variant name, extra build arguments) that these weights belong to."""
        name, extra = detect(self.state, self.path)
        return name, {**self.model_kwargs, **extra}

    def fit(self, expected: Shapes, model: str) -> State:
        """The weights for a model whose state dict has ``expected`` shapes; strict."""
        return match_state(self.state, expected, self.path, model)

    def summary(self) -> str:
        parts = [f"{self.file_format} file", self.container, f"{self.layout} layout"] + self.notes
        return "; ".join(parts)


def read_checkpoint(path: str | os.PathLike, trust_pickle: bool = False, allow_nonfinite: bool = False,
                    ema: bool = False) -> Checkpoint:
    """Read ``path`` (any supported format and container) and translate an official layout to native.

    ``ema`` takes the EMA weights of a training checkpoint that holds both."""
    source = str(path)
    obj, fmt, notes = read_file(path, trust_pickle=trust_pickle)
    raw, container = unwrap(obj, source, ema=ema)
    cfg = carried_cfg(obj, source)
    state, value_notes = check_values(raw, source, allow_nonfinite=allow_nonfinite)
    notes += value_notes
    try:
        native, layout = layouts.to_native(state)
    except (KeyError, ValueError, IndexError, AttributeError) as e:
        raise CheckpointError(f"{source}: an incomplete official checkpoint ({type(e).__name__}: {e})") from None
    return Checkpoint(source, native, fmt, container, layout.name if layout else "native",
                      dict(layout.model_kwargs) if layout else {}, notes, cfg)


def carried_cfg(obj: Any, source: str) -> dict[str, Any] | None:
    """The checked ``pretrained_cfg`` entry beside the state dict (see ``model_specs.checkpoint_cfg``), or None."""
    if not isinstance(obj, dict) or "pretrained_cfg" not in obj:
        return None
    try:
        return checkpoint_cfg(obj["pretrained_cfg"], "its pretrained_cfg")
    except ValueError as e:
        raise CheckpointError(f"{source}: {e}") from None
