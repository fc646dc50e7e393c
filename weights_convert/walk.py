"""What a pickle built, turned into plain containers of numpy arrays, with every object reached and every
array made charged to the file's budget: shared references cannot multiply a small file, and nesting is
bounded, so nothing here can hang, exhaust memory or overflow the stack."""
from __future__ import annotations

import collections
import sys
from typing import Any

import numpy as np

from . import dtypes
from .budget import MAX_DEPTH, BadData, Budget
from .errors import CheckpointError
from .escaping import shown
from .lazy_arrays import Lazy
from .safe_pickle import plain_key


def _from_torch(tensor: Any, budget: Budget, notes: set[str]) -> np.ndarray:
    """A real torch tensor (from a trusted pickle): checked against its storage and the budget first."""
    import torch

    t = tensor.detach().cpu()
    name = str(t.dtype).removeprefix("torch.")
    dtypes.raw_dtype(name)  # refuses quantized and unsupported element types
    count = t.numel()
    budget.output(count * dtypes.output_itemsize(name), f"a tensor of shape {tuple(t.shape)}")
    if t.layout == torch.sparse_coo:
        notes.add("densified sparse COO tensors")
        t = t.to_dense()
    elif t.layout != torch.strided:
        raise BadData(f"a tensor in layout {t.layout}, which the converter does not read")
    elif count:
        last = t.storage_offset() + sum((n - 1) * s for n, s in zip(t.shape, t.stride()))
        if (last + 1) * t.element_size() > t.untyped_storage().nbytes():
            raise BadData(f"a tensor of shape {tuple(t.shape)} reaches beyond its storage")
    note = dtypes.widening_note(name)
    if note:
        notes.add(note)
        t = t.float()
    return t.contiguous().numpy()


def plain(obj: Any, budget: Budget, source: str) -> tuple[Any, list[str]]:
    """``obj`` with every lazy array (or torch tensor) made a numpy array; returns (object, notes)."""
    notes: set[str] = set()
    made: dict[int, np.ndarray] = {}  # a tensor shared by several entries is made once, charged per entry
    torch = sys.modules.get("torch")

    def make(x: Any) -> np.ndarray:
        if id(x) in made:
            budget.output(made[id(x)].nbytes, "a shared tensor")
        elif isinstance(x, Lazy):
            made[id(x)] = x.materialize(budget, notes)
        elif isinstance(x, np.ndarray):
            if x.dtype.hasobject:
                raise BadData("an array of pickled objects")
            budget.output(x.nbytes, "an array")
            made[id(x)] = x
        else:
            made[id(x)] = _from_torch(x, budget, notes)
        return made[id(x)]

    def array(x: Any, where: tuple) -> np.ndarray:
        try:
            try:
                return make(x)
            except (ValueError, OverflowError) as e:  # numpy's own limits, e.g. a zero-size array of 1e18 rows
                raise BadData(f"an array numpy cannot represent ({e})") from None
        except BadData as e:
            if not where:
                raise
            raise BadData(f"key '{shown('.'.join(map(str, where)))}': {e}") from None

    def walk(x: Any, depth: int, where: tuple) -> Any:
        budget.reach()
        if depth > MAX_DEPTH:
            raise BadData(f"containers nested deeper than {MAX_DEPTH} levels")
        if isinstance(x, (Lazy, np.ndarray)) or (torch is not None and isinstance(x, torch.Tensor)):
            return array(x, where)
        if isinstance(x, dict):
            out = collections.OrderedDict() if isinstance(x, collections.OrderedDict) else {}
            for k, v in x.items():
                plain_key(k)
                out[k] = walk(v, depth + 1, where + (k,))
            return out
        if isinstance(x, (list, tuple)):
            items = [walk(v, depth + 1, where) for v in x]
            return items if isinstance(x, list) else tuple(items)
        return x

    try:
        return walk(obj, 0, ()), sorted(notes)
    except BadData as e:
        raise CheckpointError(f"{source}: {e}") from None
