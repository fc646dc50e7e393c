"""Training-state files: written atomically (a temporary file in the same folder, flushed to disk, then renamed
over the old one), so a run killed while saving leaves the previous complete checkpoint and a stray temporary file
that is never read; the next run in that folder removes those of writers that are gone (the name holds the host and
the PID of its writer). Each framework writes its native format (``torch.save`` / ``jt.save``; both are read back
without running pickled code); the file names live here."""
from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Callable

SUFFIX = {"torch": ".pth", "jittor": ".pkl"}


def state_path(out: Path, framework: str) -> Path:
    """The latest full training state of a run in ``framework``."""
    return Path(out) / f"checkpoint_{framework}{SUFFIX[framework]}"


def weights_path(out: Path, model: str, framework: str, ema: bool = False) -> Path:
    """Final weights, loadable by ``create_model(model, pretrained=...)`` in both frameworks."""
    return Path(out) / f"{model}_{framework}{'_ema' if ema else ''}{SUFFIX[framework]}"


def write_atomically(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(temporary_path)``, then move the finished file to ``path``; the suffix is kept, as
    ``jt.save`` picks its format by it."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{socket.gethostname()}-{os.getpid()}{path.suffix}")
    try:
        write(str(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a crash of the machine
    finally:
        os.close(fd)


TEMPORARY = re.compile(r"\..+\.tmp-(?P<host>.+)-(?P<pid>\d+)\.\w+")  # write_atomically's names


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Remove the temporary files in ``out`` left by writers killed mid-save: written on this host by a process
    that no longer runs (another host's, or a live writer's, are left alone). Returns those removed."""
    removed = []
    host = socket.gethostname()
    for entry in Path(out).glob(".*.tmp-*"):
        match = TEMPORARY.fullmatch(entry.name)
        if match and match["host"] == host and not _alive(int(match["pid"])):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
