"""The blank stand-in image a rank steps with when bad images left its shard empty (``training.loop``): both
frameworks' synchronised BatchNorms give it no weight in the global batch's statistics."""
from __future__ import annotations

import contextlib
from typing import Iterator

_blank = False


@contextlib.contextmanager
def blank_batch() -> Iterator[None]:
    """Inside: this rank's batch counts for nothing in the statistics (it still takes part in the collectives)."""
    global _blank
    _blank, before = True, _blank
    try:
        yield
    finally:
        _blank = before


def batch_weight() -> float:
    """1 for a real batch, 0 for the blank stand-in."""
    return 0.0 if _blank else 1.0
