"""PyTorch checkpoints (zip and legacy) read without torch: the pickle through the bounded unpickler,
storages from their zip members or their place in the legacy stream, every size checked first."""
from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path
from typing import Any

from . import dtypes
from .bounded_zip import BoundedZip
from .budget import BadData, Budget
from .errors import CheckpointError
from .escaping import shown
from .lazy_arrays import Storage
from .safe_pickle import ALLOWED, unpickle
from .torch_pickle import TORCH_ALLOWED, StorageType

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


def _storage_reference(pid: Any, fields: int) -> tuple[StorageType, str, int]:
    """(type, key, element count) of a persistent id ``('storage', type, key, location, numel, ...)``."""
    if not (isinstance(pid, tuple) and len(pid) == fields and pid[0] == "storage"
            and isinstance(pid[1], StorageType) and isinstance(pid[2], str) and len(pid[2]) <= 64
            and type(pid[4]) is int and pid[4] >= 0):
        raise BadData("an unreadable storage reference")
    return pid[1], pid[2], pid[4]


def read_torch_zip(path: Path, budget: Budget) -> Any:
    """What a zip-format torch.save file holds, tensors as lazy views (see lazy_arrays)."""
    source = str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = BoundedZip(archive, budget)
            pickles = sorted((n for n in members.members if n.endswith("data.pkl")), key=len)
            prefix = pickles[0][: -len("data.pkl")]
            big_endian = members.members.get(prefix + "byteorder") is not None and \
                bytes(members.read(prefix + "byteorder")) == b"big"
            loaded: dict[str, bytearray] = {}

            def persistent_load(pid: Any) -> Storage:
                storage_type, key, _ = _storage_reference(pid, 5)
                if key not in loaded:  # a storage shared by many tensors is read once
                    loaded[key] = members.read(f"{prefix}data/{key}")
                return Storage(loaded[key], storage_type.dtype, big_endian)

            data = members.read(pickles[0])
            return unpickle(io.BytesIO(data), source, TORCH_ALLOWED, persistent_load, "PyTorch pickle")
    except CheckpointError:
        raise
    except BadData as e:
        raise CheckpointError(f"{source}: {e}") from None
    except Exception as e:  # zipfile's many error types for a malformed archive (reading runs no code)
        raise CheckpointError(f"{source}: truncated or corrupt PyTorch file ({type(e).__name__}: {e})") from None


def read_torch_legacy(path: Path, budget: Budget) -> Any:
    """What a legacy (pre-1.6) torch.save file holds: header pickles, the object pickle, then the storages'
    raw bytes in the order of a list of keys, each preceded by its element count."""
    source = str(path)
    data = path.read_bytes()
    stream = io.BytesIO(data)
    header = [unpickle(stream, source, ALLOWED, what="PyTorch header") for _ in range(3)]
    if header[0] != LEGACY_MAGIC or header[1] != LEGACY_PROTOCOL or not isinstance(header[2], dict):
        raise CheckpointError(f"{source}: a legacy PyTorch file with an unknown header")
    big_endian = header[2].get("little_endian", True) is False
    declared: dict[str, tuple[Storage, int]] = {}
    views: list[tuple[Storage, str, Any]] = []

    def persistent_load(pid: Any) -> Storage:
        storage_type, key, count = _storage_reference(pid, 6)
        if key not in declared:
            declared[key] = (Storage(b"", storage_type.dtype, big_endian), count)
        if pid[5] is None:
            return declared[key][0]
        view = Storage(b"", storage_type.dtype, big_endian)  # an old storage view: filled in below
        views.append((view, key, pid[5]))
        return view

    obj = unpickle(stream, source, TORCH_ALLOWED, persistent_load, "PyTorch pickle")
    keys = unpickle(stream, source, ALLOWED, what="PyTorch storage list")
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise CheckpointError(f"{source}: a legacy PyTorch file with an unreadable storage list")
    buffer = memoryview(data)
    position = stream.tell()
    try:
        for key in keys:
            storage, count = declared[key] if key in declared else (None, 0)
            if storage is None:
                raise BadData(f"storage {shown(key)} is listed but never used")
            (stored,) = struct.unpack("<q" if not big_endian else ">q", bytes(buffer[position:position + 8]))
            nbytes = count * _itemsize(storage.dtype, source)
            if stored != count or position + 8 + nbytes > len(data):  # checked before any slicing
                raise BadData(f"storage {shown(key)} declares {count} elements but the file holds "
                              f"{max(len(data) - position - 8, 0)} bytes for it")
            storage.data = buffer[position + 8:position + 8 + nbytes]
            position += 8 + nbytes
        for view, key, meta in views:  # meta: (view key, offset, element count) within storage ``key``
            if not (isinstance(meta, tuple) and len(meta) == 3
                    and all(type(n) is int and n >= 0 for n in meta[1:])):
                raise BadData("an unreadable storage view")
            base = declared[key][0]
            itemsize = _itemsize(base.dtype, source)
            if meta[1] + meta[2] > len(base.data) // itemsize:
                raise BadData(f"a view of storage {shown(key)} reaches beyond it")
            view.data = base.data[meta[1] * itemsize:(meta[1] + meta[2]) * itemsize]
    except (BadData, struct.error) as e:
        raise CheckpointError(f"{source}: truncated or corrupt legacy PyTorch file ({e})") from None
    return obj


def _itemsize(dtype: str, source: str) -> int:
    """Bytes per element of a legacy storage; a type we do not read (quantized, ...) is refused as such."""
    try:
        return dtypes.raw_dtype(dtype).itemsize
    except BadData as e:
        raise CheckpointError(f"{source}: a storage holds {e}") from None


def is_torch_legacy(head: bytes) -> bool:
    """Legacy torch files start with a pickled magic number."""
    try:
        return unpickle(io.BytesIO(head), "", ALLOWED) == LEGACY_MAGIC
    except CheckpointError:  # any other pickle, or one we may not unpickle: not legacy torch
        return False
