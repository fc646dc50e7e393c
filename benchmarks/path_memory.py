#!/usr/bin/env python
"""Peak memory of the training parent and of one image worker, against the number of listed paths: the paths
as a Python list (what the fine-tune held before) and as a ``PathStore`` file every process maps (now). The names
are made up (ImageNet-shaped, ~55 bytes) and never opened: only the listing is measured.

    .venv/bin/python benchmarks/path_memory.py 10000 1000000
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def names(n: int):
    return (f"/data/imagenet/train/n{i % 1000:08d}/n{i % 1000:08d}_{i:08d}.JPEG" for i in range(n))


def peak_rss_mb() -> float:
    """This process's high-water mark (VmHWM, per address space: ru_maxrss would carry the parent's across
    the worker's fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def read_some(paths, index: int) -> float:
    """In the worker: the name of one image, then this process's peak memory."""
    assert paths[index]
    return peak_rss_mb()


def measure(n: int, store: str) -> dict[str, float]:
    """Run in a fresh process: list ``n`` paths, start one stream worker holding them, read 100 names."""
    import functools

    from mlp_zoo.image_data.path_store import PathStore
    from mlp_zoo.image_data.stream import stream

    with tempfile.TemporaryDirectory() as tmp:
        paths = list(names(n)) if store == "list" else PathStore.write(Path(tmp) / "paths.bin", names(n))
        worker = max(v for _, v in stream(range(0, n, max(n // 100, 1)), functools.partial(read_some, paths),
                                          workers=1))
        return {"paths": n, "store": store, "parent_mb": round(peak_rss_mb(), 1), "worker_mb": round(worker, 1)}


if __name__ == "__main__":
    if sys.argv[1] == "--one":
        print(json.dumps(measure(int(sys.argv[2]), sys.argv[3])))
        sys.exit()
    print("| paths | store | parent peak (MB) | worker peak (MB) |\n|---|---|---|---|")
    for store in ("list", "PathStore"):
        for n in map(int, sys.argv[1:]):
            row = json.loads(subprocess.run([sys.executable, __file__, "--one", str(n), store], check=True,
                                            capture_output=True, text=True).stdout)
            print(f"| {n:,} | {store} | {row['parent_mb']} | {row['worker_mb']} |", flush=True)
