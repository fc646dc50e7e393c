"""Official checkpoint layouts and their translation to the zoo's own (native) key names.

Each module here defines ``LAYOUT``: it recognises its keys, renames and reshapes them to native, and may
say how the model must be built to reproduce the official outputs (e.g. JAX's tanh GELU).
Native checkpoints pass through unchanged.
"""
from __future__ import annotations

import importlib
import pkgutil

from .layout import Layout, State

LAYOUTS: tuple[Layout, ...] = tuple(
    importlib.import_module(f"{__name__}.{m.name}").LAYOUT
    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name) if m.name != "layout")


def to_native(state: State) -> tuple[State, Layout | None]:
    """``state`` in native names, and the official layout it came in (None when already native)."""
    for layout in LAYOUTS:
        if layout.matches(state):
            return layout.to_native(state), layout
    return state, None
