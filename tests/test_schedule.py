"""training/schedule.py against timm's CosineLRScheduler: the formula of timm/scheduler/cosine_lr.py
(``_get_lr``, one cycle, warmup not a prefix) written out here, read after ``step_update(num_updates=step)``."""
from __future__ import annotations

import math

import pytest

from mlp_zoo.training.schedule import learning_rate


def timm_cosine(t: int, base: float, t_initial: int, lr_min: float, warmup_t: int, warmup_lr_init: float) -> float:
    """CosineLRScheduler(t_initial, lr_min, warmup_t, warmup_lr_init, warmup_prefix=False, cycle_limit=1)."""
    if t < warmup_t:
        return warmup_lr_init + t * (base - warmup_lr_init) / warmup_t
    i = t // t_initial
    if i >= 1:
        return lr_min
    return lr_min + 0.5 * (base - lr_min) * (1 + math.cos(math.pi * (t - t_initial * i) / t_initial))


@pytest.mark.parametrize("total, warmup, base, min_lr, warmup_lr", [
    (10, 0, 1.0, 0.0, 0.0), (10, 2, 1.0, 0.1, 1e-5), (37, 5, 3e-3, 1e-5, 1e-6), (1, 0, 0.5, 0.0, 0.0),
    (4, 4, 2.0, 0.0, 0.0),
])
def test_equals_timm_cosine_at_every_step(total, warmup, base, min_lr, warmup_lr):
    ours = [learning_rate(s, base, total, warmup, min_lr, warmup_lr) for s in range(total)]
    theirs = [timm_cosine(s, base, total, min_lr, warmup, warmup_lr) for s in range(total)]
    assert ours == pytest.approx(theirs, rel=1e-12, abs=0)


def test_no_step_at_the_peak_twice_and_none_wasted_at_the_floor():
    lrs = [learning_rate(s, 1.0, 10, warmup_steps=2, min_lr=0.0, warmup_lr=0.1) for s in range(10)]
    assert lrs[:3] == pytest.approx([0.1, 0.55, 0.5 * (1 + math.cos(math.pi * 2 / 10))])
    assert max(lrs) < 1.0 and lrs[0] < lrs[1] < lrs[2] and all(a > b for a, b in zip(lrs[2:], lrs[3:]))
    assert lrs[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 9 / 10))) and lrs[-1] > 0.02
    no_warmup = [learning_rate(s, 1.0, 4) for s in range(4)]
    assert no_warmup == pytest.approx([1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5,
                                      0.5 * (1 + math.cos(0.75 * math.pi))])
    assert no_warmup.count(1.0) == 1


def test_min_lr_equal_to_lr_is_a_constant_rate_after_the_warmup():
    assert [learning_rate(s, 0.3, 6, 2, min_lr=0.3, warmup_lr=0.0) for s in range(6)] == pytest.approx(
        [0.0, 0.15, 0.3, 0.3, 0.3, 0.3])
