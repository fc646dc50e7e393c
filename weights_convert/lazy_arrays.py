"""Arrays as a pickle describes them, checked against the bytes that back them and made real only when
the walk reaches them, within the budget. Nothing here allocates more than its checked description says."""
from __future__ import annotations

import numpy as np

from . import dtypes
from .budget import BadData, Budget, checked_shape, described, numel
from .escaping import shown

_NUMPY_KINDS = "biufc"  # numeric and bool arrays: weights, counters, metrics


class Lazy:
    """Something that becomes one numpy array."""

    def materialize(self, budget: Budget, notes: set[str]) -> np.ndarray:
        raise NotImplementedError


def _raw_bytes(data: object, what: str) -> bytes | bytearray | memoryview:
    if isinstance(data, str):  # Python 2 pickles carry bytes as latin-1 text
        data = data.encode("latin-1")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BadData(f"{what} has data of type {type(data).__name__}, not bytes (pickled objects?)")
    return data


class NumpyDType:
    """``numpy.dtype(spec)`` from a pickle: plain numeric types only, byte order set by its state."""

    def __init__(self, spec: object, *_: object) -> None:
        if not isinstance(spec, str) or len(spec) > 8:
            raise BadData(f"a numpy dtype of type {type(spec).__name__}, not a simple numeric type name")
        try:
            self.dtype = np.dtype(spec)
        except TypeError:
            raise BadData(f"an unknown numpy dtype {shown(spec)}") from None
        if self.dtype.kind not in _NUMPY_KINDS:
            raise BadData(f"a numpy array of dtype {shown(spec)} (pickled objects or text), refused")

    def __setstate__(self, state: object) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">") and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(state[1])


def _dtype_of(value: object, what: str) -> np.dtype:
    if isinstance(value, NumpyDType):
        return value.dtype
    raise BadData(f"{what} has a dtype of type {type(value).__name__}")


class PickledArray(Lazy):
    """numpy's own pickle of an array: ``_reconstruct`` then ``__setstate__``, or ``_frombuffer``."""

    def __init__(self) -> None:
        self.dtype: np.dtype | None = None

    @classmethod
    def from_buffer(cls, data: object, dtype: object, shape: object, order: object) -> PickledArray:
        array = cls()
        array.__setstate__((1, shape, dtype, order == "F", data))
        return array

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise BadData("a numpy array with an unreadable state")
        _, shape, dtype, fortran, data = state if len(state) == 5 else (1,) + state
        self.shape = checked_shape(shape, "a numpy array")
        self.dtype = _dtype_of(dtype, "a numpy array")
        self.fortran = bool(fortran)
        self.data = _raw_bytes(data, "a numpy array")
        need = numel(self.shape) * self.dtype.itemsize
        if len(self.data) != need:  # checked here, before numpy would allocate the declared shape
            raise BadData(f"a numpy array of shape {self.shape} and dtype {self.dtype} needs {need} bytes "
                          f"but holds {len(self.data)}")

    def materialize(self, budget: Budget, notes: set[str]) -> np.ndarray:
        if self.dtype is None:
            raise BadData("a numpy array without its data")
        budget.output(len(self.data), "a numpy array")
        flat = np.frombuffer(self.data, self.dtype)
        array = flat.reshape(self.shape, order="F" if self.fortran else "C").copy(order="K")
        return array.astype(array.dtype.newbyteorder("="), copy=False)


def numpy_scalar(dtype: object, data: object) -> np.generic:
    """``numpy.core.multiarray.scalar``: one value, exactly its dtype's size."""
    dt = _dtype_of(dtype, "a numpy scalar")
    raw = _raw_bytes(data, "a numpy scalar")
    if len(raw) != dt.itemsize:
        raise BadData(f"a numpy scalar of dtype {dt} holds {len(raw)} bytes")
    return np.frombuffer(raw, dt)[0]


class Storage:
    """The bytes of one torch storage and the element type it was saved with."""

    def __init__(self, data: bytes | bytearray | memoryview, dtype: str, big_endian: bool = False) -> None:
        self.data = data
        self.dtype = dtype
        self.big_endian = big_endian


class TensorView(Lazy):
    """``torch._utils._rebuild_tensor*``: a view (offset, shape, strides in elements) into a storage."""

    def __init__(self, storage: object, offset: object, size: object, stride: object,
                 dtype: str | None = None) -> None:
        if not isinstance(storage, Storage):
            raise BadData(f"a tensor whose storage is a {type(storage).__name__}")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.dtype = dtype or storage.dtype

    def materialize(self, budget: Budget, notes: set[str]) -> np.ndarray:
        raw_dtype = dtypes.raw_dtype(self.dtype, self.storage.big_endian)
        shape = checked_shape(self.size, "a tensor")
        stride = self.stride
        if not (isinstance(stride, (tuple, list)) and len(stride) == len(shape)
                and all(type(s) is int and s >= 0 for s in stride)):
            raise BadData(f"a tensor of shape {shape} has invalid strides {described(stride)}")
        if type(self.offset) is not int or self.offset < 0:
            raise BadData(f"a tensor has an invalid storage offset {described(self.offset)}")
        elements = len(self.storage.data) // raw_dtype.itemsize
        count = numel(shape)
        last = self.offset + sum((n - 1) * s for n, s in zip(shape, stride))
        if count and last >= elements:  # every element the view reaches must lie inside the storage
            raise BadData(f"a tensor of shape {shape} with strides {tuple(stride)} at offset {self.offset} "
                          f"reaches element {last} of a storage of {elements}")
        budget.output(count * dtypes.output_itemsize(self.dtype), f"a tensor of shape {shape}")
        base = np.frombuffer(self.storage.data, raw_dtype, count=elements)
        if count:
            view = np.lib.stride_tricks.as_strided(base[self.offset:], shape,
                                                   tuple(s * raw_dtype.itemsize for s in stride), writeable=False)
        else:
            view = np.empty(shape, raw_dtype)
        note = dtypes.widening_note(self.dtype)
        if note:
            notes.add(note)
        return np.array(dtypes.to_numpy(view, self.dtype), copy=True)


class SparseTensor(Lazy):
    """``torch._utils._rebuild_sparse_tensor``: COO tensors are made dense (with a note), others refused."""

    def __init__(self, layout: object, data: object) -> None:
        self.layout, self.data = layout, data

    def materialize(self, budget: Budget, notes: set[str]) -> np.ndarray:
        if self.layout != "torch.sparse_coo":
            raise BadData(f"a sparse tensor in layout {shown(self.layout)}, which the converter does not read")
        if not (isinstance(self.data, tuple) and len(self.data) in (3, 4)
                and all(isinstance(t, TensorView) for t in self.data[:2])):
            raise BadData("a sparse COO tensor with unreadable parts")
        indices_view, values_view, size = self.data[:3]
        size = checked_shape(size, "a sparse tensor")
        dtypes.raw_dtype(values_view.dtype)  # refuses unsupported element types before any work
        budget.output(numel(size) * dtypes.output_itemsize(values_view.dtype),
                      f"a dense tensor of shape {size}")  # before it is made
        indices = indices_view.materialize(budget, notes)
        values = values_view.materialize(budget, notes)
        sparse_dims = indices.shape[0] if indices.ndim == 2 else -1
        if (indices.dtype != np.int64 or sparse_dims < 0 or sparse_dims > len(size)
                or values.shape != (indices.shape[1],) + size[sparse_dims:]):
            raise BadData(f"a sparse COO tensor whose indices {indices.shape} and values {values.shape} "
                          f"do not fit its size {size}")
        bounds = np.array(size[:sparse_dims], dtype=np.int64).reshape(-1, 1)
        if indices.size and ((indices < 0).any() or (indices >= bounds).any()):
            raise BadData(f"a sparse COO tensor with indices outside its size {size}")
        dense = np.zeros(size, values.dtype)
        np.add.at(dense, tuple(indices), values)  # duplicate indices add up, as torch's coalesce does
        notes.add("densified sparse COO tensors")
        return dense


class Refused(Lazy):
    """A tensor that has no exact float value here (quantized, meta); the walk names its key."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def materialize(self, budget: Budget, notes: set[str]) -> np.ndarray:
        raise BadData(self.reason)
