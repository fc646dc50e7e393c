"""Multithreaded CPU kernels for the work that dominates a training step besides the matrix products and
convolutions: the bias + exact GELU between an MLP's two linears, LayerNorm (optionally passing its input through,
to add a residual's gradient), BatchNorm (training), ReLU, permutes (with a bias add), a residual block's last
bias + drop path + residual, ViP's branch split, pooling and fusion, and the SGD update, each forward and
backward; and the weight gradient of an MLP's first linear in the orientation oneDNN computes faster.

The C++ lives in ``kernels/*.h`` (listed in ``kernels/README.md``), compile-time variants as template parameters;
here are only the ``jt.Function`` wrappers, the shapes, and one line of glue per call that picks the template.
Jittor compiles a ``jt.code`` op once per distinct text (header and glue), so the glue names no shapes: it reads
them from the inputs at run time, and one compiled kernel serves every shape of a rank.

Jittor's CPU kernels (everything but oneDNN's conv and matmul) run on one thread; its ``parallel`` loop option
interleaves elements across threads and is 6x slower. These are OpenMP loops over rows, vectorised by the
compiler, with every sum over rows (bias, weight gradients) in float64, per thread and then in thread order, so
a result does not depend on scheduling (only, in its last bit at most, on the thread count). On CUDA the layers
keep their Jittor-op forms (Jittor's GPU kernels are parallel).
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

from mlp_zoo.jittor_support.runtime import jt

KERNELS = Path(__file__).with_name("kernels")
_COMMON = '#include "common.h"'


@functools.cache
def kernel_source(name: str) -> str:
    """The text of ``kernels/<name>.h`` as ``jt.code`` compiles it: with ``common.h`` pasted where it is
    included (Jittor compiles the text in its cache folder, where no include path leads here)."""
    text = (KERNELS / f"{name}.h").read_text()
    return text.replace(_COMMON, (KERNELS / "common.h").read_text(), 1) if _COMMON in text else text


def _constants(name: str) -> tuple[float, ...]:
    """A ``constexpr float name[n] = {...}`` list of ``common.h``."""
    found = re.search(rf"{name}\[\d+\] = \{{([^}}]*)\}}", kernel_source("common"))
    if found is None:
        raise RuntimeError(f"{KERNELS / 'common.h'} defines no {name}")
    return tuple(float(v.strip().rstrip("f")) for v in found.group(1).split(","))


# the rational erf's coefficients (common.h), for the Jittor-op form of GELU that CUDA runs
ERF_P, ERF_Q = _constants("kErfP"), _constants("kErfQ")


def enabled(*tensors: jt.Var) -> bool:
    """Whether the kernels here can take these tensors: the next Jittor op runs on the CPU (they have no CUDA
    form) and all are float32 (they read and write float; float64 or float16 models take Jittor's ops)."""
    return not jt.flags.use_cuda and all(t.dtype == "float32" for t in tensors)


def _code(shapes: list, dtypes: list | str, inputs: list[jt.Var], kernel: str, glue: str) -> jt.Var | list[jt.Var]:
    """``jt.code`` running ``glue`` (a call into ``kernels/<kernel>.h``) on the CPU."""
    return jt.code(shapes, dtypes, inputs, cpu_header=kernel_source(kernel), cpu_src=glue)


def _flags(*flags: bool) -> str:
    """Template arguments: ``<true, false>``."""
    return "<" + ", ".join("true" if f else "false" for f in flags) + ">"


def _gelu_forward(bias: bool) -> str:
    return (f"const int64 C = in0->shape[in0->shape.size() - 1];\n"
            f"mlpzoo::gelu_forward{_flags(bias)}(in0_p, {'in1_p' if bias else 'nullptr'}, out0_p, in0->num / C, C);")


def _gelu_backward(bias: bool) -> str:
    args = "in0_p, in1_p, in2_p, out0_p, out1_p" if bias else "in0_p, nullptr, in1_p, out0_p, nullptr"
    return (f"const int64 C = in0->shape[in0->shape.size() - 1];\n"
            f"mlpzoo::gelu_backward{_flags(bias)}({args}, in0->num / C, C);")


class GELU(jt.Function):
    """Exact (erf) GELU; the backward uses GELU's derivative ``cdf + x * pdf``, as PyTorch does."""

    def execute(self, x: jt.Var) -> jt.Var:
        self.x = x
        return _code(x.shape, x.dtype, [x], "gelu", _gelu_forward(bias=False))

    def grad(self, g: jt.Var) -> jt.Var:
        return _code(self.x.shape, self.x.dtype, [self.x, g], "gelu", _gelu_backward(bias=False))


class BiasGELU(jt.Function):
    """``gelu(x + bias)`` over the last axis: a linear's bias add and the exact GELU after it, in one kernel."""

    def execute(self, x: jt.Var, bias: jt.Var) -> jt.Var:
        self.x, self.bias = x, bias
        return _code(x.shape, x.dtype, [x, bias], "gelu", _gelu_forward(bias=True))

    def grad(self, g: jt.Var) -> tuple[jt.Var, jt.Var]:
        dx, dbias = _code([self.x.shape, self.bias.shape], [self.x.dtype, self.bias.dtype], [self.x, self.bias, g],
                          "gelu", _gelu_backward(bias=True))
        return dx, dbias


# inputs (x, weight, mean, invstd, output gradient[, x's other gradient]), outputs (dx, dweight, dbias)
_NORM_BACKWARD_ARGS = "in0_p, in1_p, in2_p, in3_p, in4_p"
_NORM_BACKWARD_OUT = "out0_p, out1_p, out2_p"
_LAYER_NORM_ROWS = "in0->num / in1->num, in1->num"
_BNC = "in0->shape[0], in0->shape[1], in0->shape[2]"


class _Normalization(jt.Function):
    """A normalisation whose forward keeps ``x``, ``weight`` and per-group ``mean`` and ``invstd``, and whose
    backward glue ``BACKWARD`` into ``kernels/<KERNEL>.h`` takes (x, weight, mean, invstd, output gradient) to
    (dx, dweight, dbias)."""

    KERNEL = ""
    BACKWARD = ""

    def grad(self, g: jt.Var) -> tuple[jt.Var, jt.Var, jt.Var]:
        return self._backward(self.BACKWARD, [g])

    def _backward(self, glue: str, grads: list[jt.Var]) -> tuple[jt.Var, jt.Var, jt.Var]:
        return tuple(_code([self.x.shape, self.weight.shape, self.weight.shape], [self.x.dtype] * 3,
                           [self.x, self.weight, self.mean, self.invstd, *grads], self.KERNEL, glue))


class LayerNormFn(_Normalization):
    """LayerNorm over the last axis: per-row mean and variance in two float64 passes, PyTorch's backward.

    With ``keep_input`` it returns ``(y, x)``, x passed through untouched, for a residual block
    ``x + f(norm(x))``: x's two gradients are then added by the LayerNorm's backward kernel, not by the
    single-threaded add Jittor's autograd would insert. With ``transpose`` too, (B, N, C) input gives y as
    (B, C, N), with no separate permute either way."""

    KERNEL = "layer_norm"
    BACKWARD = (f"mlpzoo::layer_norm_backward<false>({_NORM_BACKWARD_ARGS}, nullptr, {_NORM_BACKWARD_OUT}, "
                f"{_LAYER_NORM_ROWS});")
    BACKWARD_RESIDUAL = (f"mlpzoo::layer_norm_backward<true>({_NORM_BACKWARD_ARGS}, in5_p, {_NORM_BACKWARD_OUT}, "
                         f"{_LAYER_NORM_ROWS});")
    BACKWARD_TRANSPOSED = (f"mlpzoo::layer_norm_backward_transposed({_NORM_BACKWARD_ARGS}, in5_p, "
                           f"{_NORM_BACKWARD_OUT}, {_BNC});")

    def __init__(self, eps: float, keep_input: bool = False, transpose: bool = False) -> None:
        if transpose and not keep_input:
            raise ValueError("a transposed LayerNormFn passes its input through (keep_input=True)")
        self.eps, self.keep_input, self.transpose = eps, keep_input, transpose

    def execute(self, x: jt.Var, weight: jt.Var, bias: jt.Var) -> jt.Var | tuple[jt.Var, jt.Var]:
        rows, eps = list(x.shape[:-1]), repr(float(self.eps))
        if self.transpose:
            shape = [x.shape[0], x.shape[2], x.shape[1]]
            glue = f"mlpzoo::layer_norm_forward_transposed(in0_p, in1_p, in2_p, out0_p, out1_p, out2_p, {_BNC}, {eps});"
        else:
            shape = x.shape
            glue = (f"mlpzoo::layer_norm_forward(in0_p, in1_p, in2_p, out0_p, out1_p, out2_p, {_LAYER_NORM_ROWS}, "
                    f"{eps});")
        y, self.mean, self.invstd = _code([shape, rows, rows], [x.dtype] * 3, [x, weight, bias], self.KERNEL, glue)
        self.x, self.weight = x, weight
        return (y, x) if self.keep_input else y

    def grad(self, g: jt.Var, g_input: jt.Var | None = None) -> tuple[jt.Var, jt.Var, jt.Var]:
        if g is None:  # only the passed-through x reaches the loss
            return g_input, None, None
        if self.transpose:
            return self._backward(self.BACKWARD_TRANSPOSED, [g, jt.zeros_like(self.x) if g_input is None else g_input])
        if g_input is None:
            return self._backward(self.BACKWARD, [g])
        return self._backward(self.BACKWARD_RESIDUAL, [g, g_input])


# (outer, C, inner) memory: (N, C, H*W) for NCHW input, (rows, C, 1) for channels-last rows
_BATCH_NORM_LAYOUT = "in0->shape[0], in0->shape[1], in0->num / (in0->shape[0] * in0->shape[1])"


class BatchNormTrain(_Normalization):
    """Normalisation by the batch's statistics over axis 1: mean and variance in two passes, every sum over the
    batch (forward and backward) in float64, PyTorch's backward formula. After the forward, ``mean`` (float32),
    ``var`` (biased, float64) and ``n`` (values per channel) are there for the running statistics."""

    KERNEL = "batch_norm"
    BACKWARD = f"mlpzoo::batch_norm_backward({_NORM_BACKWARD_ARGS}, {_NORM_BACKWARD_OUT}, {_BATCH_NORM_LAYOUT});"

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def execute(self, x: jt.Var, weight: jt.Var, bias: jt.Var) -> jt.Var:
        c = x.shape[1]
        self.n = x.numel() // c
        glue = (f"mlpzoo::batch_norm_forward(in0_p, in1_p, in2_p, out0_p, out1_p, out2_p, out3_p, "
                f"{_BATCH_NORM_LAYOUT}, {float(self.eps)!r});")
        y, self.mean, self.var, self.invstd = _code([x.shape, [c], [c], [c]], [x.dtype, x.dtype, "float64", x.dtype],
                                                    [x, weight, bias], self.KERNEL, glue)
        self.x, self.weight = x, weight
        return y


class ChannelAffine(jt.Function):
    """``x * scale + shift`` along axis 1 (BatchNorm in eval, from its running statistics), on all threads; the
    backward in Jittor's ops."""

    def execute(self, x: jt.Var, scale: jt.Var, shift: jt.Var) -> jt.Var:
        self.x, self.scale = x, scale
        glue = f"mlpzoo::channel_affine(in0_p, in1_p, in2_p, out0_p, {_BATCH_NORM_LAYOUT});"
        return _code(x.shape, x.dtype, [x, scale, shift], "batch_norm", glue)

    def grad(self, g: jt.Var) -> tuple[jt.Var, jt.Var, jt.Var]:
        dims = [0] + list(range(2, g.ndim))
        return g * self.scale.broadcast(g, dims), (g * self.x).sum(dims), g.sum(dims)


class ReLU(jt.Function):
    """``max(x, 0)``; the backward passes the gradient where the output is positive, as PyTorch's does."""

    def execute(self, x: jt.Var) -> jt.Var:
        self.y = _code(x.shape, x.dtype, [x], "relu", "mlpzoo::relu_forward(in0_p, out0_p, in0->num);")
        return self.y

    def grad(self, g: jt.Var) -> jt.Var:
        return _code(g.shape, g.dtype, [self.y, g], "relu", "mlpzoo::relu_backward(in0_p, in1_p, out0_p, in0->num);")


class BiasResidual(jt.Function):
    """``residual + drop_path(m + bias)``, the bias along m's last axis, the drop-path ``mask`` (0 or 1 per sample,
    then divided by ``keep``) optional, with ``transpose`` m's last two axes swapped first: the end of a residual
    block's last linear in one pass (Jittor adds the bias and the residual in one single-threaded kernel and sums
    the bias gradient in another)."""

    def __init__(self, keep: float = 1.0, transpose: bool = False) -> None:
        self.keep, self.transpose = keep, transpose

    def _keep(self) -> str:
        # without a mask the kernel ignores keep: one text (one compiled kernel) for every drop rate
        return f"{float(self.keep)!r}f" if self.mask is not None else "1.0f"

    def execute(self, m: jt.Var, bias: jt.Var, residual: jt.Var, mask: jt.Var | None = None) -> jt.Var:
        self.shape, self.mask = tuple(m.shape), mask
        inputs = [m, bias, residual] + ([] if mask is None else [mask])
        glue = (f"const int64 Q = in1->num, B = in0->shape[0];\n"
                f"mlpzoo::bias_residual_forward{_flags(mask is not None, self.transpose)}(in0_p, in1_p, in2_p, "
                f"{'nullptr' if mask is None else 'in3_p'}, out0_p, B, in0->num / (B * Q), Q, {self._keep()});")
        return _code(residual.shape, m.dtype, inputs, "bias_residual", glue)

    def grad(self, g: jt.Var) -> tuple[jt.Var | None, ...]:
        masked = self.mask is not None
        dm = masked or self.transpose  # otherwise m's gradient is g itself
        db = "out1" if dm else "out0"
        glue = (f"const int64 Q = {db}->num, B = in0->shape[0];\n"
                f"mlpzoo::bias_residual_backward{_flags(masked, self.transpose)}(in0_p, "
                f"{'in1_p' if masked else 'nullptr'}, {'out0_p' if dm else 'nullptr'}, {db}_p, B, "
                f"in0->num / (B * Q), Q, {self._keep()});")
        inputs, c = [g] + ([self.mask] if masked else []), [self.shape[-1]]
        if not dm:
            return g, _code(c, g.dtype, inputs, "bias_residual", glue), g
        dm, dbias = _code([self.shape, c], [g.dtype] * 2, inputs, "bias_residual", glue)
        return (dm, dbias, g) + ((None,) if masked else ())


def sgd_update(p: jt.Var, g: jt.Var, buf: jt.Var | None, lr: float, weight_decay: float, momentum: float,
               dampening: float, nesterov: bool) -> tuple[jt.Var, jt.Var | None]:
    """One torch.optim.SGD step of parameter ``p``: (its new value, the new momentum buffer or None)."""
    hyper = jt.array([lr, weight_decay, momentum, 1 - dampening], dtype="float32")
    first = buf is None
    read_buf = bool(momentum) and not first
    glue = (f"mlpzoo::sgd_update{_flags(bool(weight_decay), bool(momentum), first, nesterov)}(in0_p, in1_p, "
            f"{'in2_p' if read_buf else 'nullptr'}, {'in3_p' if read_buf else 'in2_p'}, out0_p, "
            f"{'out1_p' if momentum else 'nullptr'}, in0->num);")
    if not momentum:
        return _code(p.shape, p.dtype, [p, g, hyper], "sgd", glue), None
    inputs = [p, g, hyper] if first else [p, g, buf, hyper]
    new_p, new_buf = _code([p.shape, p.shape], [p.dtype, p.dtype], inputs, "sgd", glue)
    return new_p, new_buf


_MAX_DIMS = 8  # kMaxDims of permute.h


def _permute_glue(dims: int, order: tuple[int, ...], bias_axis: int | None, backward: bool) -> str:
    """The call of ``permute.h`` for ``order`` of ``dims`` axes; the input's shape is ``in0``'s (forward) or
    ``out0``'s (backward: in0 is the output gradient)."""
    shape = ", ".join(f"{'out0' if backward else 'in0'}->shape[{a}]" for a in range(dims))
    bias = bias_axis is not None
    return (f"const int64_t shape[{dims}] = {{{shape}}};\n"
            f"const int order[{dims}] = {{{', '.join(map(str, order))}}};\n"
            f"mlpzoo::permute{_flags(bias, backward)}(in0_p, {'in1_p' if bias and not backward else 'nullptr'}, "
            f"out0_p, {'out1_p' if bias and backward else 'nullptr'}, {dims}, shape, order, "
            f"{bias_axis if bias else -1});")


class Permute(jt.Function):
    """``x.permute(order)``, plus ``bias`` along output axis ``bias_axis`` (not the last) if given: one pass over
    memory on all threads (Jittor's transpose runs on one)."""

    def __init__(self, order: tuple[int, ...], bias_axis: int | None = None) -> None:
        self.order, self.bias_axis = tuple(order), bias_axis
        if sorted(self.order) != list(range(len(self.order))) or len(self.order) > _MAX_DIMS:
            raise ValueError(f"{self.order} is not a permutation of at most {_MAX_DIMS} axes")
        if bias_axis is not None and bias_axis == len(order) - 1:
            raise ValueError("the bias axis of a Permute cannot be the last")
        if bias_axis is not None and self.order[-1] != len(order) - 1:
            raise ValueError("a Permute that moves the last axis takes no bias")

    def execute(self, x: jt.Var, bias: jt.Var | None = None) -> jt.Var:
        self.shape = tuple(x.shape)
        out_shape = [self.shape[i] for i in self.order]
        glue = _permute_glue(len(self.order), self.order, self.bias_axis if bias is not None else None, backward=False)
        return _code(out_shape, x.dtype, [x] if bias is None else [x, bias], "permute", glue)

    def grad(self, g: jt.Var) -> jt.Var | tuple[jt.Var, jt.Var]:
        glue = _permute_glue(len(self.order), self.order, self.bias_axis, backward=True)
        if self.bias_axis is None:
            return _code(self.shape, g.dtype, [g], "permute", glue)
        bias_size = self.shape[self.order[self.bias_axis]]
        dx, dbias = _code([self.shape, [bias_size]], [g.dtype, g.dtype], [g], "permute", glue)
        return dx, dbias


def permute(x: jt.Var, order: tuple[int, ...], bias: jt.Var | None = None, bias_axis: int | None = None) -> jt.Var:
    """``x.permute(order)`` (+ ``bias`` along output axis ``bias_axis``): the kernel on the CPU, Jittor's ops on
    CUDA (and beyond the kernel's rank)."""
    if len(order) <= _MAX_DIMS and (enabled(x) if bias is None else enabled(x, bias)):
        return Permute(order, bias_axis)(x) if bias is None else Permute(order, bias_axis)(x, bias)
    y = x.permute(order)
    if bias is None:
        return y
    return y + bias.reshape((-1,) + (1,) * (x.ndim - 1 - bias_axis))


# measured forward + backward of one linear, Jittor's gradient against WideMatmulTranspose's (ms, 1568 rows unless
# said): 512->2048 26.0/24.0, 80->240 (25088 rows) 11.2/10.8, 384->1152 10.6/10.9, 320->960 6.8/7.2, 640->1920
# (392 rows) 7.2/8.2: only the widest weights gain
WIDE_ROWS = 2048


class WideMatmulTranspose(jt.Function):
    """``x @ weight.T`` for a weight of at least ``WIDE_ROWS`` rows and fewer columns (an MLP's first linear),
    whose weight gradient is taken as ``(x.T @ g).T``: oneDNN 2.6's sgemm computes ``g.T @ x`` for such shapes
    1.5x slower (Mixer-S/16's channel MLP: 12.8 ms against 8.5 ms, plus 0.4 ms for the tiled transpose back)."""

    def execute(self, x: jt.Var, weight: jt.Var) -> jt.Var:
        self.x, self.weight = x, weight
        return jt.nn.matmul_transpose(x, weight)

    def grad(self, g: jt.Var) -> tuple[jt.Var, jt.Var]:
        x, g2 = self.x.reshape(-1, self.x.shape[-1]), g.reshape(-1, g.shape[-1])
        (rows, k), n = x.shape, g2.shape[1]
        # the broadcast-multiply-sum form that Jittor's matmul tuner turns into one transposed-A sgemm
        weight_t = (x.broadcast([rows, k, n], [2]) * g2.broadcast([rows, k, n], [1])).sum(0)
        return jt.nn.matmul(g2, self.weight).reshape(self.x.shape), Permute((1, 0))(weight_t)


def matmul_transpose(x: jt.Var, weight: jt.Var) -> jt.Var:
    """``x @ weight.T`` (a linear without its bias), with the faster weight gradient for a wide weight on the
    CPU."""
    if weight.shape[0] >= max(WIDE_ROWS, weight.shape[1] + 1) and enabled(x, weight):
        return WideMatmulTranspose()(x, weight)
    return jt.nn.matmul_transpose(x, weight)


class ConcatLinear(jt.Function):
    """``concat(parts, -1) @ weight.T`` without the concat (kernels/concat_linear.h): each part meets its block of
    the weight's columns in place, in one oneDNN sgemm, the products accumulated; Jittor would copy the blocks out,
    then add the products on one thread."""

    def execute(self, weight: jt.Var, *parts: jt.Var) -> jt.Var:
        c = parts[0].shape[-1]
        if any(p.shape != parts[0].shape for p in parts) or weight.ndim != 2 or weight.shape[1] != len(parts) * c:
            raise ValueError(f"concat_linear takes parts of one shape and an (out, {len(parts)} x {c}) weight, got "
                             f"{[p.shape for p in parts]} and {weight.shape}")
        self.weight, self.parts = weight, parts
        return _code(list(parts[0].shape[:-1]) + [weight.shape[0]], weight.dtype, [weight, *parts], "concat_linear",
                     self._glue("concat_linear_forward(parts, k, in0_p, out0_p, rows, C, Cout)"))

    def grad(self, g: jt.Var) -> tuple[jt.Var, ...]:
        k = len(self.parts)
        dparts = ", ".join(f"out{i + 1}_p" for i in range(k))
        glue = f"float* const dparts[{k}] = {{{dparts}}};\n" + self._glue(
            f"concat_linear_backward(parts, k, in0_p, in{k + 1}_p, dparts, out0_p, rows, C, Cout)")
        return tuple(_code([self.weight.shape] + [p.shape for p in self.parts], [self.weight.dtype] * (k + 1),
                           [self.weight, *self.parts, g], "concat_linear", glue))

    def _glue(self, call: str) -> str:
        """``call`` into kernels/concat_linear.h after the part pointers (in1..) and the sizes, read at run time."""
        k = len(self.parts)
        pointers = ", ".join(f"in{i + 1}_p" for i in range(k))
        return (f"const int k = {k};\nconst float* const parts[{k}] = {{{pointers}}};\n"
                "const int64 C = in1->shape[in1->shape.size() - 1], rows = in1->num / C, Cout = in0->shape[0];\n"
                f"mlpzoo::{call};")


# Vision Permutator's branch work (kernels/permutator.h) on (B, H, W, G, S) positions, in0 being such a tensor
_POSITIONS = ("const mlpzoo::Positions positions{in0->shape[0], in0->shape[1], in0->shape[2], in0->shape[3], "
              "in0->shape[4]};\n")


class PermutatorSplit(jt.Function):
    """ViP: (B, H, W, G, S) segments ``x`` to ``(x, the H branch's input (B, W, G, H, S), the W branch's
    (B, H, G, W, S))`` in one pass, x passed through untouched, so that the three branches' gradients of x are
    added in this backward kernel."""

    def execute(self, x: jt.Var) -> tuple[jt.Var, jt.Var, jt.Var]:
        self.x = x
        b, h, w, g, s = x.shape
        to_h, to_w = _code([[b, w, g, h, s], [b, h, g, w, s]], [x.dtype] * 2, [x], "permutator",
                           _POSITIONS + "mlpzoo::permutator_split_forward(positions, in0_p, out0_p, out1_p);")
        return x, to_h, to_w

    def grad(self, *grads: jt.Var | None) -> jt.Var:
        b, h, w, g, s = self.x.shape
        shapes = (self.x.shape, [b, w, g, h, s], [b, h, g, w, s])
        grads = [jt.zeros(shape, self.x.dtype) if d is None else d for shape, d in zip(shapes, grads)]
        return _code(self.x.shape, self.x.dtype, [self.x, *grads], "permutator",
                     _POSITIONS + "mlpzoo::permutator_split_backward(positions, in1_p, in2_p, in3_p, out0_p);")


class PermutatorPool(jt.Function):
    """ViP: the mean over H and W of ``c + h + w`` (h, w in their mixing products' layouts), as (B, G * S); c, h
    and w come back untouched beside it, for the branch fusion, so that their gradients from the fusion and from
    the pool are added in this backward kernel (not in three single-threaded adds of Jittor's autograd)."""

    def execute(self, c: jt.Var, h: jt.Var, w: jt.Var) -> tuple[jt.Var, jt.Var, jt.Var, jt.Var]:
        self.inputs = (c, h, w)
        b, _, _, g, s = c.shape
        pooled = _code([b, g * s], c.dtype, [c, h, w], "permutator",
                       _POSITIONS + "mlpzoo::permutator_pool_forward(positions, in0_p, in1_p, in2_p, out0_p);")
        return pooled, c, h, w

    def grad(self, d: jt.Var | None, *fused: jt.Var | None) -> tuple[jt.Var | None, ...]:
        if d is None:
            return fused
        fused = [jt.zeros_like(v) if g is None else g for v, g in zip(self.inputs, fused)]
        c, h, w = self.inputs
        glue = _POSITIONS + ("mlpzoo::permutator_pool_backward(positions, in3_p, in4_p, in5_p, in6_p, out0_p, "
                             "out1_p, out2_p);")
        return tuple(_code([c.shape, h.shape, w.shape], [c.dtype] * 3, [c, h, w, d, *fused], "permutator", glue))


class PermutatorMix(jt.Function):
    """ViP: ``c * a[..., 2] + h * a[..., 0] + w * a[..., 1]`` on (B, H, W, G, S) positions, with ``a`` the
    (B, G, S, 3) branch weights and h, w in their mixing products' layouts."""

    def execute(self, c: jt.Var, h: jt.Var, w: jt.Var, a: jt.Var) -> jt.Var:
        self.inputs = (c, h, w, a)
        return _code(c.shape, c.dtype, [c, h, w, a], "permutator",
                     _POSITIONS + "mlpzoo::permutator_mix_forward(positions, in0_p, in1_p, in2_p, in3_p, out0_p);")

    def grad(self, d: jt.Var) -> tuple[jt.Var, jt.Var, jt.Var, jt.Var]:
        c, h, w, a = self.inputs
        glue = _POSITIONS + ("mlpzoo::permutator_mix_backward(positions, in0_p, in1_p, in2_p, in3_p, in4_p, out0_p, "
                             "out1_p, out2_p, out3_p);")
        return tuple(_code([c.shape, h.shape, w.shape, a.shape], [c.dtype] * 4, [c, h, w, a, d], "permutator", glue))
