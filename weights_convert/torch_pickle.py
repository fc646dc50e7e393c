"""The globals a PyTorch checkpoint's pickle may name, each as a checking stand-in: tensors become lazy
views into their storages; sparse COO tensors are densified later; quantized and meta tensors are refused
by key; nothing of torch is imported."""
from __future__ import annotations

from typing import Any

from . import dtypes
from .budget import BadData, described
from .lazy_arrays import Refused, SparseTensor, Storage, TensorView
from .safe_pickle import ALLOWED, Namespace, plain_key


class StorageType:
    """``torch.FloatStorage`` and kin: names the element type of a storage reference."""

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype


class TorchDType:
    """``torch.float32`` and kin, as ``_rebuild_tensor_v3`` passes them."""

    def __init__(self, name: str) -> None:
        self.name = name


class TensorClass:
    """``torch.Tensor`` / ``torch.nn.Parameter`` as ``_rebuild_from_type_v2`` names them."""


def _tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> TensorView:
    return TensorView(storage, offset, size, stride)


def _tensor_v3(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = None,
               hooks: Any = None, dtype: Any = None, *_: Any) -> TensorView:
    if not isinstance(dtype, TorchDType):
        raise BadData(f"a tensor whose dtype is a {type(dtype).__name__}")
    return TensorView(storage, offset, size, stride, dtype.name)


def _qtensor(storage: Any, *_: Any) -> Refused:
    name = storage.dtype if isinstance(storage, Storage) else "unknown"
    return Refused(dtypes.quantized_refusal(name))


def _meta_tensor(*_: Any) -> Refused:
    return Refused("a tensor saved without its data (meta device)")


def _parameter(data: Any, *_: Any) -> Any:
    return data


def _from_type(func: Any, new_type: Any, args: Any, state: Any = None) -> Any:
    """``torch._tensor._rebuild_from_type_v2``: plain tensors and parameters only."""
    if not (isinstance(new_type, TensorClass) and func in _REBUILDERS and isinstance(args, tuple)):
        raise BadData("a tensor subclass or an unknown rebuild function")
    return func(*args)


def _size(dims: Any = ()) -> tuple:
    if not isinstance(dims, (tuple, list)):
        raise BadData(f"a torch.Size made from {described(dims)}")
    return tuple(dims)


def _layout(name: Any) -> Any:
    return name


def _device(*_: Any) -> str:
    return "cpu"  # everything is read to the CPU


def _set(items: Any = ()) -> set:
    if not isinstance(items, (list, tuple)):
        raise BadData("a set made from something other than a list")
    for item in items:
        plain_key(item)
    return set(items)


_REBUILDERS = (_tensor, _tensor_v3, _qtensor, _meta_tensor, _parameter)

TORCH_ALLOWED: dict[tuple[str, str], Any] = dict(ALLOWED)
TORCH_ALLOWED.update({
    ("torch._utils", "_rebuild_tensor"): _tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _tensor_v3,
    ("torch._utils", "_rebuild_qtensor"): _qtensor,
    ("torch._utils", "_rebuild_meta_tensor_no_storage"): _meta_tensor,
    ("torch._utils", "_rebuild_parameter"): _parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _parameter,
    ("torch._utils", "_rebuild_sparse_tensor"): SparseTensor,
    ("torch._tensor", "_rebuild_from_type_v2"): _from_type,
    ("torch", "Tensor"): TensorClass(),
    ("torch.nn.parameter", "Parameter"): TensorClass(),
    ("torch", "Size"): _size,
    ("torch", "device"): _device,
    ("torch.serialization", "_get_layout"): _layout,
    ("torch", "sparse_coo"): "torch.sparse_coo",
    ("builtins", "set"): _set,
    ("builtins", "frozenset"): lambda items=(): frozenset(_set(items)),
    ("argparse", "Namespace"): Namespace,
    ("torch.storage", "UntypedStorage"): StorageType("uint8"),
})
# quantization schemes, as a quantized tensor's parameters name them (the tensor itself is refused)
TORCH_ALLOWED.update({("torch", name): name for name in (
    "per_tensor_affine", "per_channel_affine", "per_channel_affine_float_qparams", "per_tensor_symmetric",
    "per_channel_symmetric")})
TORCH_ALLOWED.update({("torch", name): StorageType(dtype) for name, dtype in dtypes.STORAGE_TYPES.items()})
TORCH_ALLOWED.update({("torch", name): TorchDType(name) for name in dtypes.KNOWN})
