"""Records every file the test process reads beside the repository: a user's clone has nothing there.

An audit hook sees each ``open``/``listdir``/``scandir``. A path counts as outside when it lies under the
repository's parent folder but not in the repository, the Python installation, the temp files (``tmp*`` and
pytest's, when the clone sits in the temp folder itself), the user's own folders (home, ``XDG_*``, ``JITTOR_HOME``
and Jittor's configured home, ``MPLCONFIGDIR``: a home beside the clone is the user's, not a sibling the clone
lacks) or a hidden folder (``~/.cache`` and the like, when the clone sits in the home folder).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from mlp_zoo.jittor_support.paths import jittor_home

ROOT = Path(__file__).resolve().parent.parent
_PARENT = str(ROOT.parent).rstrip(os.sep) + os.sep
_TEMP = str(Path(tempfile.gettempdir()).resolve()) + os.sep


def _user_dirs() -> set[str]:
    """The user's home, caches and configuration, as the environment places them (XDG_*_DIRS: several each)."""
    named = [os.environ.get(k, "") for k in ("HOME", "JITTOR_HOME", "MPLCONFIGDIR")]
    xdg = [d for k, v in os.environ.items() if k.startswith("XDG_") for d in v.split(os.pathsep)]
    return {d for d in (*named, *xdg, str(Path.home()), str(jittor_home())) if os.path.isabs(d)}


# where the interpreter, the temp files and the user's own folders live; a folder holding the repository itself
# (a clone in /tmp, or in the home folder) is no exception, or everything beside the repository would be
_ALLOWED = tuple(p for d in {ROOT, sys.prefix, sys.base_prefix, sys.exec_prefix, tempfile.gettempdir(), *_user_dirs()}
                 for p in {path.rstrip(os.sep) + os.sep for path in (os.path.abspath(d), os.path.realpath(d))}
                 if not _PARENT.startswith(p))
_EVENTS = {"open", "os.listdir", "os.scandir", "glob.glob"}

reads_outside: list[str] = []


def is_outside(path: str | bytes | os.PathLike) -> bool:
    """Whether ``path`` is a sibling of the repository (or lies inside one) that a clone would not have."""
    full = os.path.abspath(os.fsdecode(path))
    if _PARENT == os.sep:  # a clone at the top of the file system has no siblings of its own to read
        return False
    if not full.startswith(_PARENT) or (full + os.sep).startswith(_ALLOWED):
        return False
    name = full[len(_PARENT):]
    if _PARENT == _TEMP and name.startswith(("tmp", "pytest-of-")):  # a clone in /tmp: the temp files beside it
        return False
    return not name.startswith(".")


def _hook(event: str, args: tuple) -> None:
    if event in _EVENTS and args and isinstance(args[0], (str, bytes, os.PathLike)):
        try:
            if is_outside(args[0]):
                reads_outside.append(os.fsdecode(args[0]))
        except Exception:  # an audit hook must never break the operation it watches
            pass


def install() -> None:
    sys.addaudithook(_hook)  # audit hooks cannot be removed: install once per process
