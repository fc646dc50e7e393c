"""Multiply-accumulates per image counted from a model itself, in PyTorch and in Jittor.

Only convolutions and matrix products count (norms, activations, pooling and additions do not), which is how
the published figures were counted. PyTorch: every conv/matmul kernel the forward pass dispatches, seen by
``FlopCounterMode`` (on the meta device, so nothing is computed). Jittor: its Python entry points for these
products are wrapped while the forward graph is built (Jittor is lazy, so nothing is computed either).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Callable, Iterator


def torch_macs(name: str, input_hw: tuple[int, int] = (224, 224), **kwargs: Any) -> int:
    """MACs of one ``input_hw`` image through the PyTorch variant ``name`` built with ``kwargs``."""
    import torch

    import models_pytorch

    with torch.device("meta"):
        model = models_pytorch.create_model(name, **kwargs).eval()
        x = torch.empty(1, kwargs.get("in_chans", 3), *input_hw)
    return torch_module_macs(model, x)


def torch_module_macs(module: Any, *inputs: Any) -> int:
    """MACs of ``module(*inputs)`` in PyTorch (any part of a model; meta tensors compute nothing)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    # the in-place accumulating products are not in the counter's table: 2 FLOPs per multiply-accumulate
    in_place = {torch.ops.aten.addmm_: lambda acc, a, b, **_: 2 * a[0] * a[1] * b[1],
                torch.ops.aten.baddbmm_: lambda acc, a, b, **_: 2 * a[0] * a[1] * a[2] * b[2]}
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=in_place) as counter:
        module(*inputs)
    return counter.get_total_flops() // 2  # a MAC is two FLOPs


class _JittorCounter:
    """Wraps Jittor's conv and matmul entry points; products nested in a counted one are not counted again
    (``matmul`` recurses, ``Linear`` goes through ``matmul_transpose``)."""

    def __init__(self) -> None:
        self.macs = 0
        self._depth = 0

    def wrap(self, fn: Callable, macs: Callable[..., int]) -> Callable:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            try:
                out = fn(*args, **kwargs)
            finally:
                self._depth -= 1
            if self._depth == 0:
                self.macs += macs(out, *args, **kwargs)
            return out

        return counted


def _numel(var: Any) -> int:
    return math.prod(var.shape)


@contextmanager
def _counting_jittor() -> Iterator[_JittorCounter]:
    from mlp_zoo.jittor_support import cpu_kernels
    from mlp_zoo.jittor_support.runtime import jt
    from jittor import nn

    counter = _JittorCounter()
    # out[..., n, k] = sum_m a[..., n, m] b[..., m, k]: one MAC per output element and reduced index
    matmul = counter.wrap(nn.matmul, lambda out, a, b: _numel(out) * a.shape[-1])
    # weight (out, in / groups, kh, kw): each output element takes in / groups * kh * kw MACs
    conv_call = counter.wrap(jt.Module.__call__, lambda out, conv, *a, **k: _numel(out) * _numel(conv.weight)
                             // conv.weight.shape[0])
    module_call = jt.Module.__call__

    def call(module: Any, *args: Any, **kwargs: Any) -> Any:
        # every Conv module counts, also subclasses with their own execute (a channels-last one, say)
        return (conv_call if isinstance(module, nn.Conv) else module_call)(module, *args, **kwargs)

    patches = [
        (nn, "matmul", matmul), (jt, "matmul", matmul), (jt.Var, "matmul", matmul),
        (jt.Var, "__matmul__", matmul),
        (nn, "matmul_transpose", counter.wrap(nn.matmul_transpose, lambda out, a, b: _numel(out) * a.shape[-1])),
        (jt.Module, "__call__", call),
        (nn, "conv2d", counter.wrap(nn.conv2d, lambda out, x, weight, *a, **k: _numel(out) * _numel(weight)
                                    // weight.shape[0])),
        # sMLPNet's fuse on the CPU: concat(parts) @ weight.T in oneDNN's sgemm, past Jittor's matmul
        (cpu_kernels.ConcatLinear, "execute",
         counter.wrap(cpu_kernels.ConcatLinear.execute, lambda out, fn, weight, *parts: _numel(out) * weight.shape[1])),
    ]
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in patches]
    try:
        for owner, attr, fn in patches:
            setattr(owner, attr, fn)
        yield counter
    finally:
        for owner, attr, fn in saved:
            setattr(owner, attr, fn)


def jittor_macs(name: str, input_hw: tuple[int, int] = (224, 224), **kwargs: Any) -> int:
    """MACs of one ``input_hw`` image through the Jittor variant ``name`` built with ``kwargs``."""
    import models_jittor
    from mlp_zoo.jittor_support.runtime import jt

    model = models_jittor.create_model(name, **kwargs)
    model.eval()
    return jittor_module_macs(model, jt.zeros((1, kwargs.get("in_chans", 3), *input_hw)))


def jittor_module_macs(module: Any, *inputs: Any) -> int:
    """MACs of ``module(*inputs)`` in Jittor (any part of a model)."""
    from mlp_zoo.jittor_support.runtime import jt

    with jt.no_grad(), _counting_jittor() as counter:
        module(*inputs)  # builds the lazy graph only: nothing is computed, since nothing is fetched
    return counter.macs
