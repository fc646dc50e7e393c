"""Reading and writing the file formats: PyTorch (zip and legacy), Jittor .pkl, .safetensors, .npz.

The format is recognised from the file's bytes, not its name. Nothing read here executes code from the
file unless ``trust_pickle`` is set. Arrays come out as numpy; torch is imported only for torch files.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import pickle
import re
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError
from .safe_pickle import RestrictedUnpickler, refusal, safe_loads

JITTOR_MAGIC = b"HCAJSLHD"  # Jittor's .pkl trailer: sha1(payload) + magic
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".pth.tar")
WRITE_FORMATS = {"torch": TORCH_SUFFIXES, "jittor": (".pkl",), "safetensors": (".safetensors",),
                 "npz": (".npz",)}


def sniff(path: Path) -> str:
    """The format of ``path`` from its content: torch-zip, torch-legacy, jittor, safetensors or npz."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: empty file")
    with open(path, "rb") as f:
        head = f.read(16)
        f.seek(max(size - len(JITTOR_MAGIC), 0))
        tail = f.read()
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise CheckpointError(f"{path}: truncated or corrupt zip archive ({e})") from None
        if any(n.endswith("data.pkl") for n in names):
            return "torch-zip"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        raise CheckpointError(f"{path}: a zip archive that is neither a PyTorch checkpoint nor an .npz")
    if tail == JITTOR_MAGIC:
        return "jittor"
    if len(head) >= 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if 0 < header_len <= size - 8:
            return "safetensors"
    if head[:1] == b"\x80":
        return "torch-legacy" if _is_torch_legacy(path) else "pickle"
    raise CheckpointError(f"{path}: unknown format (not PyTorch, Jittor .pkl, .safetensors or .npz)")


def _is_torch_legacy(path: Path) -> bool:
    """Legacy torch files start with a pickled magic number (0x1950a86a20f9469cfc6c)."""
    with open(path, "rb") as f:
        try:
            return RestrictedUnpickler(f).load() == 0x1950A86A20F9469CFC6C
        except Exception:  # any other pickle, or one we may not unpickle: not legacy torch
            return False


def read_file(path: str | os.PathLike, trust_pickle: bool = False) -> tuple[Any, str, list[str]]:
    """Load ``path`` into plain Python containers of numpy arrays; returns (object, format, notes)."""
    path = Path(path)
    fmt = sniff(path)
    notes: list[str] = []
    if fmt in ("torch-zip", "torch-legacy"):
        return _read_torch(path, trust_pickle, notes), fmt, notes
    if fmt == "safetensors":
        return _read_safetensors(path, notes), fmt, notes
    if fmt == "npz":
        return _read_npz(path), fmt, notes
    data = path.read_bytes()
    if fmt == "jittor":
        payload, checksum = data[:-28], data[-28:-8]
        if hashlib.sha1(payload).digest() != checksum:
            raise CheckpointError(f"{path}: Jittor checksum mismatch (truncated or corrupt file)")
        data = payload
    if trust_pickle:
        try:
            return pickle.loads(data), fmt, notes
        except Exception as e:
            raise CheckpointError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None
    return safe_loads(data, str(path)), fmt, notes


# beyond tensors: the argparse Namespace SPACH training checkpoints carry, and numpy arrays and scalars
# (metrics, EMA copies) that training scripts store; none of these can run code when unpickled
_TORCH_SAFE_GLOBALS = [argparse.Namespace, np.core.multiarray._reconstruct, np.core.multiarray.scalar,
                       np.ndarray, np.dtype] + [getattr(np.dtypes, n) for n in dir(np.dtypes)
                                                if n.endswith("DType")]


def _read_torch(path: Path, trust_pickle: bool, notes: list[str]) -> Any:
    import torch

    try:
        if trust_pickle:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        else:
            with torch.serialization.safe_globals(_TORCH_SAFE_GLOBALS):
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+)", str(e))
        what = found.group(1) if found else str(e).split("\n")[0]
        raise CheckpointError(refusal(str(path), what)) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as e:
        msg = str(e).split("\n")[0]
        raise CheckpointError(f"{path}: truncated or corrupt PyTorch file ({msg})") from None
    return _torch_to_numpy(obj, notes)


def _torch_to_numpy(obj: Any, notes: list[str]) -> Any:
    """Tensors to numpy, recursively; bfloat16 (unknown to numpy) is widened to float32 exactly."""
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        if t.dtype == torch.bfloat16:
            if _BF16_NOTE not in notes:
                notes.append(_BF16_NOTE)
            t = t.float()
        return t.numpy()
    if isinstance(obj, dict):
        return type(obj)((k, _torch_to_numpy(v, notes)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_torch_to_numpy(v, notes) for v in obj)
    return obj


_BF16_NOTE = "converted bfloat16 weights to float32"


def _read_safetensors(path: Path, notes: list[str]) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return dict(load_file(str(path)))
    except Exception as e:  # safetensors raises its own error types
        msg = str(e).split("\n")[0]
        if "bfloat16" in msg or "bf16" in msg.lower():
            return _read_safetensors_via_torch(path, notes)
        raise CheckpointError(f"{path}: truncated or corrupt .safetensors file ({msg})") from None


def _read_safetensors_via_torch(path: Path, notes: list[str]) -> dict[str, np.ndarray]:
    from safetensors.torch import load_file

    return _torch_to_numpy(dict(load_file(str(path))), notes)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as e:
        raise CheckpointError(f"{path}: .npz holds pickled objects, refused ({e})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt .npz file ({e})") from None


def format_for_suffix(path: str | os.PathLike) -> str:
    """The format to write for a destination name; an unknown suffix is an error."""
    name = str(path).lower()
    for fmt, suffixes in WRITE_FORMATS.items():
        if name.endswith(suffixes):
            return fmt
    known = ", ".join(s for suffixes in WRITE_FORMATS.values() for s in suffixes)
    raise CheckpointError(f"{path}: unknown output suffix (use one of {known})")


def serialize(state: dict[str, np.ndarray], fmt: str) -> bytes:
    """The bytes of a file holding ``state`` (a flat name -> array dict) in ``fmt``."""
    if fmt == "torch":
        import torch

        buf = io.BytesIO()
        torch.save({k: torch.from_numpy(np.asarray(v, order="C")) for k, v in state.items()}, buf)
        return buf.getvalue()
    if fmt == "jittor":
        payload = pickle.dumps({k: np.asarray(v, order="C") for k, v in state.items()}, 4)
        return payload + hashlib.sha1(payload).digest() + JITTOR_MAGIC
    if fmt == "safetensors":
        from safetensors.numpy import save

        return save({k: np.asarray(v, order="C") for k, v in state.items()})
    if fmt == "npz":
        buf = io.BytesIO()
        np.savez(buf, **state)
        return buf.getvalue()
    raise CheckpointError(f"unknown output format {fmt!r}")


