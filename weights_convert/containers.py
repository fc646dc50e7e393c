"""Finding the state dict inside a checkpoint: the usual wrappers and prefixes, said out loud."""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import CheckpointError
from .escaping import shown

# tried in this order, as the official evaluation scripts do; EMA weights only when asked for
WRAPPER_KEYS = ("model", "state_dict", "module")
EMA_KEYS = ("state_dict_ema", "model_ema")
PREFIXES = ("module.", "model.")


def _is_state(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, (np.ndarray, np.generic, int, float)) for k, v in obj.items())


def unwrap(obj: Any, path: str, ema: bool = False) -> tuple[dict[str, np.ndarray], str]:
    """The flat name -> array dict inside ``obj`` and a description of where it was found.

    ``ema`` takes the EMA weights (``state_dict_ema`` / ``model_ema``) and fails where there are none.
    """
    if ema:
        found = [k for k in EMA_KEYS if isinstance(obj, dict) and isinstance(obj.get(k), dict) and obj[k]]
        if not found:
            raise CheckpointError(f"{path}: holds no EMA weights (no non-empty {' or '.join(EMA_KEYS)} entry)")
        state, where = unwrap(obj[found[0]], path)
        return state, f"entry '{found[0]}'" + ("" if where == "top level" else f" -> {where}")
    entries: list[str] = []
    prefixes: list[str] = []
    while not _is_state(obj):
        if not isinstance(obj, dict):
            raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
        keys = [k for k in WRAPPER_KEYS + EMA_KEYS if isinstance(obj.get(k), dict) and obj[k]]
        if not keys:
            found = ", ".join(shown(k) for k in list(obj)[:6])
            raise CheckpointError(f"{path}: no state dict found (top-level entries: {found})")
        entries.append(f"'{keys[0]}'")
        obj = obj[keys[0]]
    state = {k: np.asarray(v) for k, v in obj.items()}
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
            prefixes.append(f"prefix '{prefix}' removed")
    return state, ", ".join([f"entry {' -> '.join(entries)}" if entries else "top level"] + prefixes)
