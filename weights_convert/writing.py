"""Writing a converted file so that nothing is lost: temp file in the destination folder, then rename."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import CheckpointError
from .formats import format_for_suffix, serialize


def check_destination(dst: str | os.PathLike, force: bool = False, src: str | os.PathLike | None = None) -> str:
    """Fail before any work if ``dst`` cannot be written; returns the format its suffix asks for."""
    dst = Path(dst)
    fmt = format_for_suffix(dst)
    if src is not None and Path(src).exists() and dst.exists() and dst.resolve() == Path(src).resolve():
        raise CheckpointError(f"{dst}: destination is the source file; choose another name")
    if dst.is_dir():
        raise CheckpointError(f"{dst}: destination is a directory")
    if dst.exists() and not force:
        raise CheckpointError(f"{dst}: already exists (pass --force to overwrite)")
    folder = dst.parent if str(dst.parent) else Path(".")
    if not folder.is_dir():
        raise CheckpointError(f"{dst}: destination folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise CheckpointError(f"{dst}: destination folder {folder} is not writable")
    return fmt


def write_atomic(dst: str | os.PathLike, state: dict[str, np.ndarray], force: bool = False) -> str:
    """Write ``state`` to ``dst`` in the format its suffix names; returns the format."""
    fmt = check_destination(dst, force)
    data = serialize(state, fmt)
    dst = Path(dst)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent if str(dst.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if dst.exists() and not force:  # appeared while we worked
            raise CheckpointError(f"{dst}: already exists (pass --force to overwrite)")
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return fmt
