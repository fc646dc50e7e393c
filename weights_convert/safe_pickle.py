"""Unpickling that admits only arrays and plain containers, so a hostile file can neither run code nor
exhaust memory or the stack.

Python's own pure-Python unpickler does the work (its memo is a dict: the C unpickler sizes its memo array
from an index the file gives). On top: a fixed set of allowed callables, each a checking stand-in rather than
the real function; a cap on operations; dictionary keys and set members restricted to plain values (hashing
a tuple nested a million deep crashes the interpreter); and state set only on objects built here.
"""
from __future__ import annotations

import argparse
import collections
import pickle
import struct
from typing import IO, Any, Callable

from .budget import MAX_PICKLE_OPS, BadData, described
from .errors import CheckpointError
from .escaping import shown
from .lazy_arrays import NumpyDType, PickledArray, numpy_scalar

_KEY_TYPES = (str, bytes, int, float, bool, type(None))


def _ndarray(*_: object) -> None:
    raise BadData("a pickle calls numpy.ndarray directly, which numpy's own pickles never do")


def _reconstruct(subtype: object, shape: object, typecode: object) -> PickledArray:
    """numpy's ``_reconstruct(ndarray, (0,), b'b')``: an empty array whose data ``__setstate__`` brings."""
    if subtype is not _ndarray:
        raise BadData(f"a numpy array of subtype {type(subtype).__name__}")
    return PickledArray()


def _array_from_jittor_var(array: object) -> object:
    """Jittor pickles a Var as ``jittor_core.Var(ndarray)``: keep the array, construct no Var."""
    return array


def _encode(text: object, encoding: object = "utf-8") -> bytes:
    """``_codecs.encode``: how protocol 2 pickles bytes (as latin-1 text)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise BadData("a pickle encodes text other than latin-1 bytes")
    return text.encode("latin-1")


def _bytes(*args: object) -> bytes:
    """``bytes()``: how protocol 2 pickles an empty bytes object (``bytes(n)`` would allocate n bytes)."""
    if args:
        raise BadData("a pickle calls bytes() with arguments")
    return b""


def _ordered_dict(items: object = ()) -> collections.OrderedDict:
    if items != ():
        raise BadData("an OrderedDict built from arguments, not from its items")
    return collections.OrderedDict()


class Namespace(argparse.Namespace):
    """argparse's Namespace (training arguments in SPACH checkpoints): plain attributes only."""

    def __setstate__(self, state: object) -> None:
        if not (isinstance(state, dict) and all(isinstance(k, str) for k in state)):
            raise BadData("an argparse Namespace with unreadable state")
        vars(self).update(state)


# (module, name) -> the stand-in the unpickler gets instead of importing anything
ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("_codecs", "encode"): _encode,
    ("__builtin__", "bytes"): _bytes,
    ("builtins", "bytes"): _bytes,
    ("jittor", "jittor_core.Var"): _array_from_jittor_var,
    ("jittor_core", "Var"): _array_from_jittor_var,
}
for _numpy in ("numpy.core", "numpy._core"):
    ALLOWED.update({(f"{_numpy}.multiarray", "_reconstruct"): _reconstruct,
                    (f"{_numpy}.multiarray", "scalar"): numpy_scalar,
                    (f"{_numpy}.numeric", "_frombuffer"): PickledArray.from_buffer})
ALLOWED.update({("numpy", "ndarray"): _ndarray, ("numpy", "dtype"): NumpyDType})

_BUILDABLE = (PickledArray, NumpyDType, Namespace)


def _counted(op: Callable[[Any], None]) -> Callable[[Any], None]:
    def counted(self: BoundedUnpickler) -> None:
        self.ops_left -= 1
        if self.ops_left < 0:
            raise BadData(f"a pickle of more than {MAX_PICKLE_OPS} operations (no checkpoint is)")
        op(self)
    return counted


def plain_key(key: object) -> None:
    """Only plain values may be hashed: hashing a deeply nested tuple overflows the C stack."""
    if not isinstance(key, _KEY_TYPES):
        raise BadData(f"a dictionary key or set member of type {type(key).__name__}, not a plain value")


def _keys_checked(op: Callable[[Any], None], keys: Callable[[list], list]) -> Callable[[Any], None]:
    """``op`` after checking the keys it is about to hash (``keys`` picks them from the stack)."""
    def checked(self: BoundedUnpickler) -> None:
        for key in keys(self.stack):
            plain_key(key)
        op(self)
    return checked


def _load_build(self: BoundedUnpickler) -> None:
    if isinstance(self.stack[-2], collections.OrderedDict):
        self.stack.pop()  # torch.save(model.state_dict()) sets its _metadata (module versions): not weights
        return
    if not isinstance(self.stack[-2], _BUILDABLE):
        raise BadData(f"a pickle sets the state of a {type(self.stack[-2]).__name__}")
    pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]


def _load_bytearray8(self: BoundedUnpickler) -> None:
    """Python's version allocates the declared length before reading: read what is there, then check."""
    (length,) = struct.unpack("<Q", self.read(8))
    data = self.read(length)
    if len(data) != length:
        raise BadData(f"a pickled bytearray declares {length} bytes but the file holds {len(data)}")
    self.append(bytearray(data))


_BASE = pickle._Unpickler.dispatch  # type: ignore[attr-defined]
_OVERRIDES = {
    pickle.BUILD: _load_build,
    pickle.BYTEARRAY8: _load_bytearray8,
    # after MARK the pure-Python unpickler's stack holds just the marked items
    pickle.SETITEM: _keys_checked(_BASE[pickle.SETITEM[0]], lambda stack: stack[-2:-1]),
    pickle.SETITEMS: _keys_checked(_BASE[pickle.SETITEMS[0]], lambda stack: stack[0::2]),
    pickle.DICT: _keys_checked(_BASE[pickle.DICT[0]], lambda stack: stack[0::2]),
    pickle.ADDITEMS: _keys_checked(_BASE[pickle.ADDITEMS[0]], lambda stack: stack),
    pickle.FROZENSET: _keys_checked(_BASE[pickle.FROZENSET[0]], lambda stack: stack),
}


class BoundedUnpickler(pickle._Unpickler):  # type: ignore[name-defined]  # the pure-Python unpickler
    """Admits only ``allowed`` globals; ``persistent_load`` resolves torch's storage references."""

    dispatch = {code: _counted(_OVERRIDES.get(bytes([code]), op)) for code, op in _BASE.items()}

    def __init__(self, stream: IO[bytes], allowed: dict[tuple[str, str], Any],
                 persistent_load: Callable[[Any], Any] | None = None) -> None:
        super().__init__(stream)
        self.allowed = allowed
        self.ops_left = MAX_PICKLE_OPS
        if persistent_load is not None:
            self.persistent_load = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise BadData(f"a pickle refers to external data {described(pid)}")


def refusal(path: str, what: str) -> str:
    """The message for a pickle that needs ``what``, an object outside the allowed set."""
    return (f"{path}: refusing to load {shown(what)}, which could run code; pass --trust-pickle "
            f"(trust_pickle=True) only if you trust this file")


def unpickle(stream: IO[bytes], path: str, allowed: dict[tuple[str, str], Any] = ALLOWED,
             persistent_load: Callable[[Any], Any] | None = None, what: str = "pickle") -> Any:
    """The next pickle of ``stream``, with ``allowed`` globals; every failure is a CheckpointError naming ``path``."""
    try:
        return BoundedUnpickler(stream, allowed, persistent_load).load()
    except CheckpointError:
        raise
    except BadData as e:
        raise CheckpointError(f"{path}: {e}") from None
    except pickle.UnpicklingError as e:
        msg = str(e)
        if msg.startswith("refusing to load "):
            raise CheckpointError(refusal(path, msg[len("refusing to load "):])) from None
        raise CheckpointError(f"{path}: truncated or corrupt {what} ({msg})") from None
    except Exception as e:  # anything else a malformed stream provokes inside the unpickler: no code ran
        raise CheckpointError(f"{path}: truncated or corrupt {what} ({type(e).__name__}: {e})") from None
