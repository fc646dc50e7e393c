"""Strict matching of a state dict against what a model expects, and checks of the values themselves."""
from __future__ import annotations

import numpy as np

from .errors import CheckpointError
from .escaping import shown

State = dict[str, np.ndarray]
Shapes = dict[str, tuple[int, ...]]

# BatchNorm's counter exists in PyTorch only; Jittor's BatchNorm has none (a framework difference)
OPTIONAL_SUFFIXES = (".num_batches_tracked",)
_SHOW = 5


def _listing(items: list[str]) -> str:
    more = f" (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return ", ".join(shown(item) for item in items[:_SHOW]) + more


def _optional(key: str) -> bool:
    return key.endswith(OPTIONAL_SUFFIXES)


def match_state(state: State, expected: Shapes, source: str, model: str) -> State:
    """``state`` restricted to and completed for ``expected``; any real mismatch is one CheckpointError."""
    missing = sorted(k for k in expected if k not in state and not _optional(k))
    unexpected = sorted(k for k in state if k not in expected and not _optional(k))
    mismatched = sorted(f"{k} {tuple(state[k].shape)} vs {tuple(expected[k])}" for k in expected
                        if k in state and tuple(state[k].shape) != tuple(expected[k]))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (file vs model): {_listing(mismatched)}")
    if problems:
        raise CheckpointError(f"{source}: does not fit {model}: " + "; ".join(problems))
    out = {k: state[k] for k in expected if k in state}
    for k in expected:
        if k not in out:  # an optional counter the source framework does not keep
            out[k] = np.zeros(expected[k], dtype=np.int64)
    return out


def check_values(state: State, source: str, allow_nonfinite: bool = False) -> tuple[State, list[str]]:
    """Weights as float32 (counters as int64); refuses non-numeric and non-finite weights. Returns notes."""
    out: State = {}
    notes: list[str] = []
    widened: set[str] = set()
    for key, value in state.items():
        if value.dtype.kind in "iub":
            out[key] = value.astype(np.int64) if _optional(key) else value
            if not _optional(key):
                raise CheckpointError(f"{source}: weight {shown(key)} has integer dtype {value.dtype}, "
                                      f"expected float")
            continue
        if value.dtype.kind != "f":
            raise CheckpointError(f"{source}: weight {shown(key)} has non-numeric dtype {value.dtype}")
        if value.dtype != np.float32:
            widened.add(str(value.dtype))
            value = value.astype(np.float32)
        if not allow_nonfinite and not np.isfinite(value).all():
            raise CheckpointError(f"{source}: weight {shown(key)} contains NaN or Inf "
                                  f"(pass --allow-nonfinite to convert it anyway)")
        out[key] = value
    if widened:
        notes.append(f"converted {', '.join(sorted(widened))} weights to float32")
    return out, notes
