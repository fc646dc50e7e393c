"""Which samples every optimizer step sees, in every process: one seeded order per epoch (a function of the seed
and the epoch alone, so a resumed run sees what the uninterrupted one saw), cut into global batches, each split
into ``accum_steps`` micro-batches and each micro-batch into contiguous per-rank shards (the split
``jittor.dataset.Dataset`` makes; DDP averages the shards' gradients back into the global batch's)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layout:
    """How one global batch is divided: ``batch_size`` samples per micro-batch (over all ranks),
    ``accum_steps`` micro-batches per optimizer step, ``world_size`` ranks."""

    batch_size: int
    accum_steps: int = 1
    world_size: int = 1

    def __post_init__(self) -> None:
        if self.batch_size % self.world_size:
            raise ValueError(f"--batch-size {self.batch_size} must be a multiple of the {self.world_size} processes")

    @property
    def samples_per_step(self) -> int:
        return self.batch_size * self.accum_steps

    def shards(self, step_indices: np.ndarray, rank: int) -> list[np.ndarray]:
        """This rank's part of each micro-batch of one optimizer step's samples."""
        per_rank = self.batch_size // self.world_size
        micro = step_indices.reshape(self.accum_steps, self.batch_size)
        return [m[per_rank * rank:per_rank * (rank + 1)] for m in micro]


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def steps_per_epoch(n: int, layout: Layout) -> int:
    """Full optimizer steps in one pass; the last partial global batch is dropped."""
    return n // layout.samples_per_step


def step_indices(order: np.ndarray, step_in_epoch: int, layout: Layout) -> np.ndarray:
    k = layout.samples_per_step
    return order[k * step_in_epoch:k * (step_in_epoch + 1)]


def total_steps(n: int, layout: Layout, epochs: int, steps: int | None) -> int:
    total = steps_per_epoch(n, layout) * epochs
    return total if steps is None else min(total, steps)
