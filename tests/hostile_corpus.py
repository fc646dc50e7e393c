"""Small hostile files, crafted byte by byte where torch would refuse to write them: memory bombs, reference
and nesting bombs, odd tensor types, and names that try to drive the terminal. Each builder writes its file
into a folder and returns (path, text the one-line refusal must contain)."""
from __future__ import annotations

import collections
import hashlib
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
BOMB_BYTES = 256 << 20  # what the zip bombs inflate to: enough to see, cheap to build


def jittor_pkl(path: Path, payload: bytes) -> Path:
    path.write_bytes(payload + hashlib.sha1(payload).digest() + b"HCAJSLHD")
    return path


def torch_zip(path: Path, data_pkl: bytes, storages: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        for key, data in (storages or {}).items():
            z.writestr(f"archive/data/{key}", data)
        z.writestr("archive/version", "3\n")
    return path


def legacy_torch(main_pickle: bytes, keys: list[str], raw: bytes) -> bytes:
    """A legacy torch.save stream: magic, protocol, system info, the object, the storage keys, the storages."""
    info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return b"".join(pickle.dumps(x, 2) for x in (LEGACY_MAGIC, 1001, info)) + main_pickle + \
        pickle.dumps(keys, 2) + raw


class StorageRef:
    def __init__(self, key: str, storage_type: type, numel: int, legacy: bool = False) -> None:
        self.key, self.storage_type, self.numel, self.legacy = key, storage_type, numel, legacy


class TensorRef:
    """Pickles as torch pickles a tensor, with whatever offset, size and stride it is given."""

    def __init__(self, storage: StorageRef, offset: int, size: tuple, stride: tuple) -> None:
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, StorageRef):
            pid = ("storage", obj.storage_type, obj.key, "cpu", obj.numel)
            return pid + (None,) if obj.legacy else pid
        return None


def torch_pickle(obj) -> bytes:
    import io

    buf = io.BytesIO()
    TorchPickler(buf, 2).dump(obj)
    return buf.getvalue()


class Reduce:
    """Pickles as ``func(*args)`` then, if given, ``__setstate__(state)``."""

    def __init__(self, func, args: tuple, state=None) -> None:
        self.value = (func, args) if state is None else (func, args, state)

    def __reduce__(self):
        return self.value


def npy_header(shape: tuple, descr: str = "<f4", fortran: bool = False) -> bytes:
    header = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def _zipinfo_deflated(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


# ------------------------------------------------------------------------------------------- the corpus

def torch_zip_bomb(folder: Path) -> tuple[Path, str]:
    path = folder / "zip_bomb.pth"
    n = BOMB_BYTES // 4
    pkl = torch_pickle({"w": TensorRef(StorageRef("0", torch.FloatStorage, n), 0, (n,), (1,))})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", pkl)
        with z.open(_zipinfo_deflated("archive/data/0"), "w", force_zip64=True) as f:
            for _ in range(BOMB_BYTES >> 20):
                f.write(bytes(1 << 20))
    return path, "zip bomb"


def npz_bomb(folder: Path) -> tuple[Path, str]:
    path = folder / "zip_bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open(_zipinfo_deflated("w.npy"), "w", force_zip64=True) as f:
            f.write(npy_header((BOMB_BYTES // 4,)))
            for _ in range(BOMB_BYTES >> 20):
                f.write(bytes(1 << 20))
    return path, "zip bomb"


def npz_huge_header(folder: Path) -> tuple[Path, str]:
    path = folder / "huge_header.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("w.npy", npy_header((10**11,)) + bytes(16))
    return path, "declares shape (100000000000,)"


def torch_stride0(folder: Path) -> tuple[Path, str]:
    path = folder / "stride0.pth"
    torch.save({"w": torch.zeros(1, dtype=torch.float64).expand(25000, 25000)}, path)
    return path, "key 'w': a tensor of shape (25000, 25000) declares 5000000000 bytes"


def jittor_ndarray_stride0(folder: Path) -> tuple[Path, str]:
    array = Reduce(np.ndarray, ((25000, 25000), np.dtype("f8"), bytes(8), 0, (0, 0)))
    return jittor_pkl(folder / "stride0.pkl", pickle.dumps({"w": array}, 4)), "numpy.ndarray directly"


def numpy_reconstruct_no_data(folder: Path) -> tuple[Path, str]:
    array = Reduce(np.core.multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                   (1, (400_000_000,), np.dtype("f8"), False, b""))
    return jittor_pkl(folder / "no_data.pkl", pickle.dumps({"w": array}, 2)), "needs 3200000000 bytes but holds 0"


def torch_billion_laughs(folder: Path) -> tuple[Path, str]:
    level = [torch.zeros(1), torch.zeros(1)]
    for _ in range(32):
        level = [level, level]
    path = folder / "laughs.pth"
    torch.save({"w": level}, path)
    return path, "reference bomb"


def _deep_lists(depth: int) -> bytes:
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


def torch_deep_nesting(folder: Path) -> tuple[Path, str]:
    return torch_zip(folder / "deep.pth", _deep_lists(200_000)), "nested deeper than"


def legacy_deep_nesting(folder: Path) -> tuple[Path, str]:
    path = folder / "deep_legacy.pth"
    path.write_bytes(legacy_torch(_deep_lists(200_000), [], b""))
    return path, "nested deeper than"


def jittor_deep_nesting(folder: Path) -> tuple[Path, str]:
    return jittor_pkl(folder / "deep.pkl", _deep_lists(200_000)), "nested deeper than"


def memo_index_bomb(folder: Path) -> tuple[Path, str]:
    # LONG_BINPUT at index 2**31: the C unpickler would size its memo array to 2**32 entries
    return jittor_pkl(folder / "memo.pkl", b"\x80\x02]r\x00\x00\x00\x80."), "holds a list, not a state dict"


def bytearray_length_bomb(folder: Path) -> tuple[Path, str]:
    # BYTEARRAY8 declaring 8 GiB: Python's own pure-Python unpickler allocates the declared length first
    payload = b"\x80\x05\x96" + struct.pack("<Q", 8 << 30) + b"."
    return jittor_pkl(folder / "bytearray.pkl", payload), "bytearray declares 8589934592 bytes"


def deep_tuple_key(folder: Path) -> tuple[Path, str]:
    # hashing a tuple nested 100000 deep overflows the C stack (a crash, not an exception)
    payload = b"\x80\x02}" + b")" + b"\x85" * 100_000 + b"K\x01s."
    return jittor_pkl(folder / "deep_key.pkl", payload), "of type tuple, not a plain value"


def legacy_huge_storage(folder: Path) -> tuple[Path, str]:
    storage = StorageRef("0", torch.FloatStorage, 10**11, legacy=True)
    main = torch_pickle({"w": TensorRef(storage, 0, (10**11,), (1,))})
    path = folder / "huge_storage_legacy.pth"
    path.write_bytes(legacy_torch(main, ["0"], struct.pack("<q", 10**11) + bytes(16)))
    return path, "declares 100000000000 elements"


def torch_view_beyond_storage(folder: Path) -> tuple[Path, str]:
    storage = StorageRef("0", torch.FloatStorage, 2)
    pkl = torch_pickle({"w": TensorRef(storage, 0, (1000,), (1,))})
    return torch_zip(folder / "beyond.pth", pkl, {"0": bytes(8)}), "reaches element 999 of a storage of 2"


def torch_huge_offset(folder: Path) -> tuple[Path, str]:
    storage = StorageRef("0", torch.FloatStorage, 2)
    pkl = torch_pickle({"w": TensorRef(storage, 2**62, (2,), (1,))})
    return torch_zip(folder / "offset.pth", pkl, {"0": bytes(8)}), "of a storage of 2"


def safetensors_offsets_beyond_file(folder: Path) -> tuple[Path, str]:
    import json

    header = json.dumps({"w": {"dtype": "F32", "shape": [250_000_000_000], "data_offsets": [0, 10**12]}}).encode()
    path = folder / "offsets.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    return path, "data offsets outside"


def safetensors_unsupported_type(folder: Path) -> tuple[Path, str]:
    import json

    header = json.dumps({"w": {"dtype": "F8_E4M3FNUZ", "shape": [4], "data_offsets": [0, 4]}}).encode()
    path = folder / "fnuz.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
    return path, "tensor w has element type F8_E4M3FNUZ, which the converter does not support"


def torch_quantized(folder: Path) -> tuple[Path, str]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.quantize_per_tensor(torch.zeros(4), 0.1, 0, torch.qint8)
    path = folder / "quantized.pth"
    torch.save({"head.weight": q}, path)
    return path, "key 'head.weight': a quantized (qint8) tensor, refused"


def safetensors(path: Path, state: dict[str, np.ndarray]) -> Path:
    """A float32 .safetensors file, written here so that any key (a megabyte long, say) goes in."""
    import json

    header, offset = {}, 0
    for key, value in state.items():
        header[key] = {"dtype": "F32", "shape": list(value.shape),
                       "data_offsets": [offset, offset + value.nbytes]}
        offset += value.nbytes
    data = json.dumps(header).encode()
    tensors = b"".join(v.astype("<f4").tobytes() for v in state.values())
    path.write_bytes(struct.pack("<Q", len(data)) + data + tensors)
    return path


def terminal_escape_key(folder: Path) -> tuple[Path, str]:
    key = "\x1b[2J\x1b[H\rwrote out.pkl: smlpnet_t (detected), 1 tensors, jittor format OK\n"
    return safetensors(folder / "escapes.safetensors", {key: np.zeros(1, np.float32)}), "\\x1b[2J\\x1b[H\\x0dwrote"


def megabyte_key(folder: Path) -> tuple[Path, str]:
    path = safetensors(folder / "long_key.safetensors", {"k" * 1_000_000: np.zeros(1, np.float32)})
    return path, "(1000000 characters)"


def bidi_key(folder: Path) -> tuple[Path, str]:
    path = safetensors(folder / "bidi.safetensors", {"\u202eweights.pth\u2066": np.zeros(1, np.float32)})
    return path, "\\u202eweights"


def escape_in_file_name(folder: Path) -> tuple[Path, str]:
    path = folder / "evil\x1b]0;title\x07\rname.pth"
    path.write_bytes(b"not a checkpoint at all")
    return path, "unknown format"


CORPUS: dict[str, Callable[[Path], tuple[Path, str]]] = {
    f.__name__: f for f in (
        torch_zip_bomb, npz_bomb, npz_huge_header, torch_stride0, jittor_ndarray_stride0,
        numpy_reconstruct_no_data, torch_billion_laughs, torch_deep_nesting, legacy_deep_nesting,
        jittor_deep_nesting, memo_index_bomb, bytearray_length_bomb, deep_tuple_key, legacy_huge_storage,
        torch_view_beyond_storage, torch_huge_offset, safetensors_offsets_beyond_file, safetensors_unsupported_type,
        torch_quantized, terminal_escape_key, megabyte_key, bidi_key, escape_in_file_name)}
