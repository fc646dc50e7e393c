"""Unpickling that admits only arrays and plain containers, so a hostile file cannot run code."""
from __future__ import annotations

import collections
import io
import pickle
from typing import Any

import numpy as np

from .errors import CheckpointError


def _array_from_jittor_var(array: np.ndarray) -> np.ndarray:
    """Jittor pickles a Var as ``jittor_core.Var(ndarray)``: keep the array, construct no Var."""
    return array


# (module, name) -> the object to hand the unpickler instead of importing anything
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): np.core.multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): np.core.multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): np.core.multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): np.core.multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("jittor", "jittor_core.Var"): _array_from_jittor_var,
    ("jittor_core", "Var"): _array_from_jittor_var,
}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def refusal(path: str, what: str) -> str:
    """The message for a pickle that needs ``what``, an object outside the allowed set."""
    return (f"{path}: refusing to load {what}, which could run code; pass --trust-pickle "
            f"(trust_pickle=True) only if you trust this file")


def safe_loads(data: bytes, path: str) -> Any:
    """Unpickle ``data`` admitting only arrays and containers; anything else is a CheckpointError."""
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as e:
        msg = str(e)
        if msg.startswith("refusing to load "):
            raise CheckpointError(refusal(path, msg[len("refusing to load "):])) from None
        raise CheckpointError(f"{path}: not a readable pickle ({msg})") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt pickle ({type(e).__name__}: {e})") from None
