""".safetensors read without the safetensors package, so that bfloat16 and float8 widen like torch files
and every offset and shape in the JSON header is checked against the file before a byte is read."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from . import dtypes
from .bounded_zip import read_into
from .budget import BadData, Budget, checked_shape, numel
from .errors import CheckpointError
from .escaping import shown

MAX_HEADER = 100 << 20  # the safetensors format's own limit


def read_safetensors(path: Path, budget: Budget) -> tuple[dict[str, np.ndarray], list[str]]:
    """(name -> array, notes) of a .safetensors file."""
    try:
        return _read(path, budget)
    except CheckpointError:
        raise
    except BadData as e:
        raise CheckpointError(f"{path}: truncated or corrupt .safetensors file ({e})") from None
    except (OSError, ValueError, RecursionError, struct.error) as e:  # JSON errors are ValueErrors
        raise CheckpointError(f"{path}: truncated or corrupt .safetensors file ({type(e).__name__}: {e})") from None


def _read(path: Path, budget: Budget) -> tuple[dict[str, np.ndarray], list[str]]:
    size = path.stat().st_size
    out: dict[str, np.ndarray] = {}
    notes: set[str] = set()
    with open(path, "rb") as f:
        (header_size,) = struct.unpack("<Q", f.read(8))
        if header_size > min(size - 8, MAX_HEADER):
            raise BadData(f"a header of {header_size} bytes in a file of {size}")
        header = json.loads(f.read(header_size))
        if not isinstance(header, dict):
            raise BadData("the header is not a JSON object")
        data_start, data_size = 8 + header_size, size - 8 - header_size
        for name, info in header.items():
            if name == "__metadata__":
                continue
            what = f"tensor {shown(name)}"
            if not (isinstance(info, dict) and isinstance(info.get("dtype"), str)
                    and isinstance(info.get("data_offsets"), list) and len(info["data_offsets"]) == 2):
                raise BadData(f"{what} has an unreadable entry")
            dtype_name = dtypes.SAFETENSORS.get(info["dtype"])
            if dtype_name is None:  # a type we do not read is no corruption: say so plainly
                raise CheckpointError(f"{path}: {what} has element type {shown(info['dtype'])}, which the "
                                      f"converter does not support")
            raw = dtypes.raw_dtype(dtype_name)
            shape = checked_shape(info.get("shape"), what)
            begin, end = info["data_offsets"]
            if not (type(begin) is int and type(end) is int and 0 <= begin <= end <= data_size):
                raise BadData(f"{what} has data offsets outside the file's {data_size} data bytes")
            if end - begin != numel(shape) * raw.itemsize:
                raise BadData(f"{what} of shape {shape} and type {info['dtype']} needs "
                              f"{numel(shape) * raw.itemsize} bytes but its offsets span {end - begin}")
            budget.output(numel(shape) * dtypes.output_itemsize(dtype_name), what)
            buf = bytearray(end - begin)
            f.seek(data_start + begin)
            read_into(f, memoryview(buf), what)
            out[name] = dtypes.to_numpy(np.frombuffer(buf, raw.newbyteorder("<")).reshape(shape), dtype_name)
            note = dtypes.widening_note(dtype_name)
            if note:
                notes.add(note)
    return out, sorted(notes)
