"""Progress lines while Jittor compiles silently: its C++ core once per machine (minutes), new kernels on first use."""
from __future__ import annotations

import contextlib
import sys
import threading
import time
from pathlib import Path
from typing import Iterator


def _compiled_since(start: float) -> int | None:
    """Files Jittor has compiled since ``start``: its core's objects and its ops' kernels (None until Jittor
    names its cache)."""
    utils = sys.modules.get("jittor_utils")
    cache = getattr(utils, "cache_path", None)
    if not cache:
        return None
    try:
        built = [*(Path(cache) / "obj_files").glob("*.o"), *(Path(cache) / "jit").glob("*.so")]
        return sum(1 for f in built if f.stat().st_mtime >= start)
    except OSError:  # the build renames files under our feet
        return None


@contextlib.contextmanager
def reporting(what: str, every_s: float = 15.0) -> Iterator[None]:
    """Print ``what`` with the elapsed time and the files compiled so far every ``every_s`` seconds while the
    block runs; a block that ends sooner (the core is already built) prints nothing."""
    start, done = time.time(), threading.Event()

    def report() -> None:
        while not done.wait(every_s):
            files = _compiled_since(start - 1)
            count = f", {files} files compiled" if files else ""
            print(f"  {what}: {time.time() - start:.0f} s{count} ...", flush=True)

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
