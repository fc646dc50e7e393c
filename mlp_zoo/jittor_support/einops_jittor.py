"""einops on Jittor: a backend registered with the installed einops, and ``Rearrange``/``Reduce`` layers.

einops finds backends as subclasses of ``AbstractBackend`` whose ``framework_name`` is an imported module,
so defining the subclass is the registration. Nothing of einops is copied; its own recipes do the work.
"""
from __future__ import annotations

from einops import rearrange, reduce, repeat  # noqa: F401  (re-exported: they now accept jittor Vars)
from einops._backends import AbstractBackend
from einops.layers import RearrangeMixin, ReduceMixin

from . import cpu_kernels
from .runtime import jt


class JittorBackend(AbstractBackend):
    framework_name = "jittor"

    def is_appropriate_type(self, tensor) -> bool:
        return isinstance(tensor, jt.Var)

    def from_numpy(self, x):
        return jt.array(x)

    def to_numpy(self, x):
        return x.numpy()

    def arange(self, start, stop):
        return jt.arange(start, stop, dtype="int64")

    def shape(self, x):
        return tuple(x.shape)

    def reshape(self, x, shape):
        return x.reshape(tuple(shape))

    def transpose(self, x, axes):
        return cpu_kernels.permute(x, tuple(axes))  # multithreaded on the CPU (Jittor's transpose: one thread)

    def reduce(self, x, operation, axes):
        if operation == "mean":
            return x.mean(tuple(axes))
        if operation in ("sum", "max", "min", "prod"):
            return getattr(x, operation)(tuple(axes))
        if operation in ("any", "all"):
            out = x
            for axis in sorted(axes, reverse=True):
                out = getattr(out, operation)(axis)
            return out
        raise NotImplementedError(f"unknown reduction {operation}")

    def stack_on_zeroth_dimension(self, tensors: list):
        return jt.stack(tensors)

    def add_axis(self, x, new_position):
        return x.unsqueeze(new_position)

    def tile(self, x, repeats):
        return x.repeat(tuple(repeats))

    def concat(self, tensors, axis: int):
        return jt.concat(tensors, dim=axis)

    def is_float_type(self, x) -> bool:
        return "float" in str(x.dtype)

    def einsum(self, pattern, *x):
        raise NotImplementedError("einsum is not provided for jittor")


class Rearrange(RearrangeMixin, jt.Module):
    def execute(self, x):
        return self._apply_recipe(x)


class Reduce(ReduceMixin, jt.Module):
    def execute(self, x):
        return self._apply_recipe(x)
