"""Reading and writing the file formats: PyTorch (zip and legacy), Jittor .pkl, .safetensors, .npz.

The format is recognised from the file's bytes, not its name. Nothing read here executes code from the
file unless ``trust_pickle`` is set. Arrays come out as numpy; torch is imported only to write torch files
or to read a trusted one.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .bounded_zip import BoundedZip
from .budget import BadData, Budget
from .errors import CheckpointError
from .npz_file import read_npz
from .safe_pickle import unpickle
from .safetensors_file import read_safetensors
from .torch_files import is_torch_legacy, read_torch_legacy, read_torch_zip
from .walk import plain

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
        head = f.read(64)
        f.seek(max(size - len(JITTOR_MAGIC), 0))
        tail = f.read()
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except Exception as e:  # zipfile raises many types for a malformed directory (reading runs no code)
            raise CheckpointError(f"{path}: truncated or corrupt zip archive ({type(e).__name__}: {e})") from None
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
        return "torch-legacy" if is_torch_legacy(head) else "pickle"
    raise CheckpointError(f"{path}: unknown format (not PyTorch, Jittor .pkl, .safetensors or .npz)")


def read_file(path: str | os.PathLike, trust_pickle: bool = False) -> tuple[Any, str, list[str]]:
    """Load ``path`` into plain Python containers of numpy arrays; returns (object, format, notes).

    Memory stays in proportion to the file's size (see budget.py), whatever the file declares."""
    path = Path(path)
    fmt = sniff(path)
    budget = Budget(path.stat().st_size)
    if fmt == "safetensors":
        state, notes = read_safetensors(path, budget)
        return state, fmt, notes
    if fmt == "npz":
        return read_npz(path, budget), fmt, []
    if trust_pickle:
        obj = _read_trusted(path, fmt, budget)
    elif fmt == "torch-zip":
        obj = read_torch_zip(path, budget)
    elif fmt == "torch-legacy":
        obj = read_torch_legacy(path, budget)
    else:
        obj = unpickle(io.BytesIO(_pickle_bytes(path, fmt)), str(path))  # the unpickler stops at the trailer
    obj, notes = plain(obj, budget, str(path))
    return obj, fmt, notes


def _pickle_bytes(path: Path, fmt: str) -> bytes:
    data = path.read_bytes()
    if fmt == "jittor" and hashlib.sha1(memoryview(data)[:-28]).digest() != data[-28:-8]:
        raise CheckpointError(f"{path}: Jittor checksum mismatch (truncated or corrupt file)")
    return data


def _read_trusted(path: Path, fmt: str, budget: Budget) -> Any:
    """The file unpickled with its code run (the user vouched for it); zip sizes are still checked first."""
    try:
        if fmt == "torch-zip":
            with zipfile.ZipFile(path) as archive:
                BoundedZip(archive, budget)
        if fmt.startswith("torch"):
            import torch

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return torch.load(path, map_location="cpu", weights_only=False)
        return pickle.loads(_pickle_bytes(path, fmt))
    except CheckpointError:
        raise
    except BadData as e:
        raise CheckpointError(f"{path}: {e}") from None
    except Exception as e:  # the file's own code may raise anything
        raise CheckpointError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None


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


