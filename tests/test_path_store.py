"""The fine-tune's path listing does not grow with the folder: 200,000 paths cost the parent 16 bytes each while
written (the ends, as they are collected and written out) and a worker nothing it did not read (the file is mapped
and the worker gets its name), against some 100 bytes per path in every process for a list of str. The table at
10k and 1M paths: docs/training_at_scale.md (benchmarks/path_memory.py)."""
from __future__ import annotations

import functools
import pickle
import tracemalloc
from pathlib import Path

from mlp_zoo.image_data.path_store import PathStore
from mlp_zoo.image_data.stream import stream
from mlp_zoo.training.data import FolderSource


def _names(n: int):
    return (f"/data/imagenet/train/n{i % 1000:08d}/n{i % 1000:08d}_{i:08d}.JPEG" for i in range(n))


def anonymous_mb(source: FolderSource, index: int) -> float:
    """In a worker: read one name, then this process's private (not file-backed) resident memory."""
    assert source.paths[index].endswith(f"_{index:08d}.JPEG")
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["RssAnon"].split()[0]) / 1024


def _costs(folder: Path, n: int) -> tuple[int, int, float]:
    tracemalloc.start()
    store = PathStore.write(folder / f"{n}.bin", _names(n))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(store) == n and store[n - 1].endswith(f"_{n - 1:08d}.JPEG") and store[-n] == next(_names(1))
    source = FolderSource(store)
    worker = max(mb for _, mb in stream(range(0, n, n // 50), functools.partial(anonymous_mb, source), workers=1))
    return peak, len(pickle.dumps(source)), worker


def test_listing_memory_does_not_grow_with_the_paths(tmp_path: Path):
    small, large = _costs(tmp_path, 2_000), _costs(tmp_path, 200_000)
    assert large[0] - small[0] < 17 * 198_000  # the parent: the ends only (a list of str: ~100 bytes a path)
    assert large[1] == small[1] + 2  # what a worker is sent: the file's name ("2000" -> "200000")
    assert large[2] - small[2] < 4.0, (small, large)  # a worker's private memory, MB (a list: ~20 MB more)
