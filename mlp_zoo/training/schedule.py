"""The learning rate of every optimizer step: timm's cosine schedule, stepped per update.

``learning_rate(step, ...)`` equals the rate of ``timm.scheduler.CosineLRScheduler(optimizer,
t_initial=total_steps, lr_min=min_lr, warmup_t=warmup_steps, warmup_lr_init=warmup_lr, warmup_prefix=False,
cycle_limit=1, t_in_epochs=False)`` after ``step_update(num_updates=step)``: what timm's train.py runs update
``step`` (0-based) with, and what ``timm.scheduler.create_scheduler_v2(sched="cosine", num_epochs=E,
updates_per_epoch=U, warmup_epochs=W, warmup_lr=warmup_lr, min_lr=min_lr, step_on_epochs=False)`` builds for
``total_steps = E * U``, ``warmup_steps = W * U``. The warmup rises linearly from ``warmup_lr`` and overlaps the
cosine, which runs over all ``total_steps``: no step is held at the peak, and the last one is above ``min_lr``.
"""
from __future__ import annotations

import math


def learning_rate(step: int, base_lr: float, total_steps: int, warmup_steps: int = 0, min_lr: float = 0.0,
                  warmup_lr: float = 0.0) -> float:
    """The rate for optimizer step ``step`` (0-based) of ``total_steps``."""
    if step < warmup_steps:
        return warmup_lr + step * (base_lr - warmup_lr) / warmup_steps
    if step >= total_steps:  # past the one cycle (cycle_limit=1)
        return min_lr
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * step / total_steps))
