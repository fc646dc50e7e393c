"""The learning rate of every optimizer step: linear warmup, then cosine decay to a floor (timm's
CosineLRScheduler stepped per update, with the warmup starting at lr / warmup_steps rather than 0)."""
from __future__ import annotations

import math


def learning_rate(step: int, base_lr: float, total_steps: int, warmup_steps: int = 0, min_lr: float = 0.0) -> float:
    """The rate for optimizer step ``step`` (0-based) of ``total_steps``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = total_steps - warmup_steps
    if decay_steps <= 1:
        return base_lr
    progress = (step - warmup_steps) / (decay_steps - 1)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))
