"""Run the same weights through the PyTorch and the Jittor model and compare the logits."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class CrossCheck:
    model: str
    max_abs_diff: float
    max_abs_logit: float
    torch_s: float
    jittor_s: float  # first call: includes Jittor's JIT compilation of new op shapes

    @property
    def relative(self) -> float:
        return self.max_abs_diff / max(self.max_abs_logit, 1e-12)


def input_size(kwargs: dict[str, Any]) -> tuple[int, int]:
    size = kwargs.get("img_size", 224)
    return (size, size) if isinstance(size, int) else tuple(size)


def cross_check(name: str, state: dict[str, np.ndarray], batch: int = 2, seed: int = 0,
                device: str = "cpu", **kwargs: Any) -> CrossCheck:
    """Load ``state`` into both frameworks' ``name`` (built with ``kwargs``) and compare eval-mode logits."""
    import torch

    import models_jittor
    import models_pytorch
    from jittor_support.runtime import jt

    h, w = input_size(kwargs)
    x = np.random.RandomState(seed).standard_normal((batch, kwargs.get("in_chans", 3), h, w)).astype(np.float32)

    tm = models_pytorch.create_model(name, **kwargs)
    models_pytorch.load_state(tm, state)
    tm = tm.eval().to(device)
    with torch.no_grad():
        start = time.perf_counter()
        a = tm(torch.from_numpy(x).to(device)).cpu().numpy()
        torch_s = time.perf_counter() - start

    jt.flags.use_cuda = int(device == "cuda")
    try:
        jm = models_jittor.create_model(name, **kwargs)
        models_jittor.load_state(jm, state)
        jm.eval()
        with jt.no_grad():
            start = time.perf_counter()
            b = jm(jt.array(x)).numpy()
            jittor_s = time.perf_counter() - start
    finally:
        jt.flags.use_cuda = 0
    return CrossCheck(name, float(np.abs(a - b).max()), float(np.abs(a).max()), torch_s, jittor_s)
