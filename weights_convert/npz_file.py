""".npz read member by member: each .npy header's shape and dtype are checked against the member's size,
and pickled object arrays are refused, before the data is read."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .bounded_zip import BoundedZip, read_into
from .budget import BadData, Budget, checked_shape, numel
from .errors import CheckpointError
from .escaping import shown

_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def read_npz(path: Path, budget: Budget) -> dict[str, np.ndarray]:
    """name -> array of an .npz file (np.savez or np.savez_compressed)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = BoundedZip(archive, budget)
            return {name[:-4]: _read_member(members, name) for name in members.members}
    except CheckpointError:
        raise
    except BadData as e:
        raise CheckpointError(f"{path}: {e}") from None
    except Exception as e:  # a malformed header or stream: numpy's parser raises many types, runs no code
        raise CheckpointError(f"{path}: truncated or corrupt .npz file ({type(e).__name__}: {e})") from None


def _read_member(members: BoundedZip, name: str) -> np.ndarray:
    what = f"member {shown(name)}"
    with members.open(name) as stream:
        version = np.lib.format.read_magic(stream)
        if version not in _HEADER_READERS:
            raise BadData(f"{what} is an .npy file of unsupported version {version}")
        shape, fortran, dtype = _HEADER_READERS[version](stream)
        if dtype.hasobject:
            raise CheckpointError(f"{members.archive.filename}: .npz holds pickled objects, refused ({what})")
        shape = checked_shape(shape, what)
        nbytes = numel(shape) * dtype.itemsize
        held = members.members[name].file_size - stream.tell()
        if nbytes != held:  # the header's shape against the member's real size, before reading
            raise BadData(f"{what} declares shape {shape} of {dtype} ({nbytes} bytes) but holds {held} bytes")
        members.budget.output(nbytes, what)
        buf = bytearray(nbytes)
        read_into(stream, memoryview(buf), what)
    array = np.frombuffer(buf, dtype).reshape(shape, order="F" if fortran else "C")
    return array.astype(dtype.newbyteorder("="), copy=False)
