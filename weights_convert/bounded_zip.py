"""Zip archives (PyTorch files, .npz) read within the budget: what members say they inflate to is charged
before a byte is inflated, and no member yields more than it declared."""
from __future__ import annotations

import zipfile
from typing import IO

from .budget import BadData, Budget
from .escaping import shown

_CHUNK = 1 << 20


class BoundedZip:
    """An open zip archive whose members are read only within ``budget``."""

    def __init__(self, archive: zipfile.ZipFile, budget: Budget) -> None:
        self.archive = archive
        self.budget = budget
        self.members = {info.filename: info for info in archive.infolist()}
        total = sum(info.file_size for info in self.members.values())
        # the sum of what every member declares: a small archive claiming gigabytes is refused up front
        if total > budget.read_left:
            raise BadData(f"zip members declare {total} bytes in all, more than a file of {budget.file_size} "
                          f"bytes can hold (limit {budget.read_left} bytes; a zip bomb?)")

    def open(self, name: str) -> IO[bytes]:
        """A stream of member ``name``; zipfile stops at the declared size and checks the CRC."""
        info = self.members.get(name)
        if info is None:
            raise BadData(f"zip member {shown(name)} is missing")
        self.budget.read(info.file_size, f"zip member {shown(name)}")
        return self.archive.open(info)

    def read(self, name: str) -> bytearray:
        """The whole of member ``name``, in a writable buffer of exactly its declared size."""
        size = self.members[name].file_size if name in self.members else 0
        with self.open(name) as stream:
            buf = bytearray(size)
            read_into(stream, memoryview(buf), f"zip member {shown(name)}")
            if stream.read(1):
                raise BadData(f"zip member {shown(name)} is longer than it declares")
        return buf


def read_into(stream: IO[bytes], view: memoryview, what: str) -> None:
    """Fill ``view`` from ``stream`` in chunks; BadData if the stream ends first."""
    done = 0
    while done < len(view):
        n = stream.readinto(view[done:done + _CHUNK])
        if not n:
            raise BadData(f"{what} ends after {done} of {len(view)} declared bytes")
        done += n
