"""Writing a converted file so that nothing is lost: temp file in the destination folder, then rename."""
from __future__ import annotations

import errno
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
    """Write ``state`` to ``dst`` in the format its suffix names; returns the format.

    The data goes to a temporary file in the destination folder, which is removed on any failure or
    interruption. Without ``force`` it is linked into place, which fails if ``dst`` appeared meanwhile, so
    two writers can never both "create" the same file; with ``force`` it replaces ``dst``."""
    fmt = check_destination(dst, force)
    data = serialize(state, fmt)
    dst = Path(dst)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent if str(dst.parent) else ".")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, dst)
        else:
            _link_new(tmp, dst)
    except OSError as e:  # a full disk, an I/O error, a vanished folder: say which file
        raise CheckpointError(f"{dst}: cannot write ({e.strerror or e})") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return fmt


def _link_new(tmp: str, dst: Path) -> None:
    """Put ``tmp`` at ``dst`` only if nothing is there, atomically."""
    try:
        os.link(tmp, dst)
    except FileExistsError:
        raise CheckpointError(f"{dst}: already exists (pass --force to overwrite)") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # a file system without hard links: check, then rename (a race remains possible there only)
        if dst.exists():
            raise CheckpointError(f"{dst}: already exists (pass --force to overwrite)") from None
        os.rename(tmp, dst)
