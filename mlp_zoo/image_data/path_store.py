"""Many paths in one file that every process maps, instead of a Python list in each: the encoded names end to end,
then where each ends (int64), then their count. ImageNet's 1.28M paths make a file of about 85 MB that the page
cache holds once for all processes; a process's own memory holds only the pages of the names it reads, and a
worker receives the file's name, not the paths."""
from __future__ import annotations

import os
from array import array
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from mlp_zoo.training.checkpoint import write_atomically


class PathStore:
    """A read-only sequence of paths mapped from ``file``; ``store[i]`` is the i-th as ``str`` (undecodable
    bytes kept as ``os.fsdecode`` does)."""

    def __init__(self, file: str | os.PathLike) -> None:
        self.file = os.fspath(file)
        size = os.path.getsize(self.file)
        whole = np.memmap(self.file, np.uint8, "r")  # never empty: the count ends the file
        count = int(whole[size - 8:].view(np.int64)[0])
        self._ends = whole[size - 8 - 8 * count:size - 8].view(np.int64)
        self._data = whole[:size - 8 - 8 * count]

    @classmethod
    def write(cls, file: str | os.PathLike, paths: Iterable[str]) -> "PathStore":
        """Write ``paths`` to ``file`` (atomically; streamed: memory 8 bytes per path) and map it."""
        def write(tmp: str) -> None:
            ends, total = array("q"), 0
            with open(tmp, "wb") as f:
                for path in paths:
                    encoded = os.fsencode(path)
                    f.write(encoded)
                    total += len(encoded)
                    ends.append(total)
                f.write(ends.tobytes())
                f.write(np.int64(len(ends)).tobytes())

        write_atomically(Path(file), write)
        return cls(file)

    def __getstate__(self) -> dict[str, Any]:
        return {"file": self.file}  # a worker maps the file itself

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["file"])

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, index: int) -> str:
        if not -len(self) <= index < len(self):
            raise IndexError(f"path {index} of {len(self)}")
        index %= len(self)
        start = int(self._ends[index - 1]) if index else 0
        return os.fsdecode(self._data[start:int(self._ends[index])].tobytes())
