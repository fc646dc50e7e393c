"""Multithreaded CPU kernels for the work that dominates a training step besides the matrix products and
convolutions: the bias + exact GELU between an MLP's two linears, LayerNorm (optionally passing its input through,
to add a residual's gradient), BatchNorm (training), ReLU, permutes (with a bias add), a residual block's last
bias + drop path + residual, ViP's branch split, pooling and fusion, and the SGD update, each forward and
backward; and the weight gradient of an MLP's first linear in the orientation oneDNN computes faster.

Jittor's CPU kernels (everything but oneDNN's conv and matmul) run on one thread; its ``parallel`` loop option
interleaves elements across threads and is 6x slower. These are OpenMP loops over rows, vectorised by the
compiler, with every sum over rows (bias, weight gradients) in float64, per thread and then in thread order, so
a result does not depend on scheduling (only, in its last bit at most, on the thread count). On CUDA the layers keep their Jittor-op forms (Jittor's GPU kernels
are parallel).
"""
from __future__ import annotations

import math

from jittor_support.runtime import jt

# erf(x) ~ x * P(x^2) / Q(x^2) on [-4, 4] (beyond, erf is +-1 in float32): the rational form vectorised erf
# kernels use (Eigen's coefficients); max error 4e-7, about Jittor's own erf (2e-7)
ERF_P = (-1.60960333262415e-02, -2.95459980854025e-03, -7.34990630326855e-04, -5.69250639462346e-05,
         -2.10102402082508e-06, 2.77068142495902e-08, -2.72614225801306e-10)
ERF_Q = (-1.42647390514189e-02, -7.37332916720468e-03, -1.68282697438203e-03, -2.13374055278905e-04,
         -1.45660718464996e-05)


def enabled(*tensors: jt.Var) -> bool:
    """Whether the kernels here can take these tensors: the next Jittor op runs on the CPU (they have no CUDA
    form) and all are float32 (they read and write float; float64 or float16 models take Jittor's ops)."""
    return not jt.flags.use_cuda and all(t.dtype == "float32" for t in tensors)


# side of the square tiles in which the transposing kernels walk memory, so that both sides of a tile stay in cache
_TILE = 32


def _horner(var: str, coefficients: tuple[float, ...]) -> str:
    out = f"{coefficients[-1]!r}f"
    for c in coefficients[-2::-1]:
        out = f"({out} * {var} + {c!r}f)"
    return out


_HEADER = f"""
#include <omp.h>
#include <cmath>
#include <vector>
static inline float mlpzoo_erf(float x) {{
    const float t = fminf(fmaxf(x, -4.0f), 4.0f), t2 = t * t;
    return t * {_horner("t2", ERF_P)} / {_horner("t2", ERF_Q)};
}}
// per-thread float64 column sums (threads x C), added in thread order
static inline void mlpzoo_column_sums(const std::vector<double>& part, int threads, long long C, float* out) {{
    for (long long c = 0; c < C; c++) {{
        double s = 0.0;
        for (int t = 0; t < threads; t++) s += part[t * C + c];
        out[c] = (float)s;
    }}
}}
"""


def _gelu_forward(bias: bool) -> str:
    return f"""
const float* x = in0_p; {"const float* b = in1_p;" if bias else ""} float* y = out0_p;
const int64 C = in0->shape[in0->shape.size() - 1], rows = in0->num / C;
#pragma omp parallel for schedule(static)
for (int64 r = 0; r < rows; r++) {{
    const float* xr = x + r * C; float* yr = y + r * C;
    #pragma omp simd
    for (int64 c = 0; c < C; c++) {{
        const float h = xr[c]{" + b[c]" if bias else ""};
        yr[c] = 0.5f * h * (1.0f + mlpzoo_erf(h * 0.70710678118654752f));
    }}
}}
"""


def _gelu_backward(bias: bool) -> str:
    g, out = ("in2_p", "out1_p") if bias else ("in1_p", None)
    return f"""
const float* x = in0_p; {"const float* b = in1_p;" if bias else ""} const float* g = {g}; float* dx = out0_p;
const int64 C = in0->shape[in0->shape.size() - 1], rows = in0->num / C;
const int threads = omp_get_max_threads();
std::vector<double> part({"threads * C" if bias else "0"}, 0.0);
#pragma omp parallel num_threads(threads)
{{
    double* acc = part.data() + omp_get_thread_num() * C;
    #pragma omp for schedule(static)
    for (int64 r = 0; r < rows; r++) {{
        const float* xr = x + r * C; const float* gr = g + r * C; float* dr = dx + r * C;
        #pragma omp simd
        for (int64 c = 0; c < C; c++) {{
            const float h = xr[c]{" + b[c]" if bias else ""};
            const float cdf = 0.5f * (1.0f + mlpzoo_erf(h * 0.70710678118654752f));
            const float pdf = 0.3989422804014327f * expf(-0.5f * h * h);
            const float d = gr[c] * (cdf + h * pdf);
            dr[c] = d;
            {"acc[c] += d;" if bias else ""}
        }}
    }}
}}
{f"mlpzoo_column_sums(part, threads, C, {out});" if bias else ""}
"""


class GELU(jt.Function):
    """Exact (erf) GELU; the backward uses GELU's derivative ``cdf + x * pdf``, as PyTorch does."""

    def execute(self, x: jt.Var) -> jt.Var:
        self.x = x
        return jt.code(x.shape, x.dtype, [x], cpu_header=_HEADER, cpu_src=_gelu_forward(bias=False))

    def grad(self, g: jt.Var) -> jt.Var:
        return jt.code(self.x.shape, self.x.dtype, [self.x, g], cpu_header=_HEADER,
                       cpu_src=_gelu_backward(bias=False))


class BiasGELU(jt.Function):
    """``gelu(x + bias)`` over the last axis: a linear's bias add and the exact GELU after it, in one kernel."""

    def execute(self, x: jt.Var, bias: jt.Var) -> jt.Var:
        self.x, self.bias = x, bias
        return jt.code(x.shape, x.dtype, [x, bias], cpu_header=_HEADER, cpu_src=_gelu_forward(bias=True))

    def grad(self, g: jt.Var) -> tuple[jt.Var, jt.Var]:
        dx, dbias = jt.code([self.x.shape, self.bias.shape], [self.x.dtype, self.bias.dtype],
                            [self.x, self.bias, g], cpu_header=_HEADER, cpu_src=_gelu_backward(bias=True))
        return dx, dbias


_LAYER_NORM_FORWARD = """
const float* x = in0_p; const float* w = in1_p; const float* b = in2_p;
float* y = out0_p; float* mean_out = out1_p; float* invstd_out = out2_p;
const int64 C = in1->num, rows = in0->num / C;
const double eps = @EPS;
#pragma omp parallel for schedule(static)
for (int64 r = 0; r < rows; r++) {
    const float* xr = x + r * C; float* yr = y + r * C;
    double s = 0.0;
    #pragma omp simd reduction(+:s)
    for (int64 c = 0; c < C; c++) s += xr[c];
    const double mean = s / C;
    double v = 0.0;
    #pragma omp simd reduction(+:v)
    for (int64 c = 0; c < C; c++) { const double d = xr[c] - mean; v += d * d; }
    const float m = (float)mean, invstd = (float)(1.0 / std::sqrt(v / C + eps));
    mean_out[r] = m; invstd_out[r] = invstd;
    #pragma omp simd
    for (int64 c = 0; c < C; c++) yr[c] = (xr[c] - m) * invstd * w[c] + b[c];
}
"""

def _layer_norm_backward(residual: bool) -> str:
    """(x, weight, mean, invstd, output gradient[, gradient of x from elsewhere]) -> (dx, dweight, dbias); the
    other gradient of x (a residual's) is added in the same pass."""
    return f"""
const float* x = in0_p; const float* w = in1_p; const float* mean = in2_p; const float* invstd = in3_p;
const float* g = in4_p; {"const float* gx = in5_p;" if residual else ""} float* dx = out0_p;
const int64 C = in1->num, rows = in0->num / C;
const int threads = omp_get_max_threads();
std::vector<double> part_w(threads * C, 0.0), part_b(threads * C, 0.0);
#pragma omp parallel num_threads(threads)
{{
    double* acc_w = part_w.data() + omp_get_thread_num() * C;
    double* acc_b = part_b.data() + omp_get_thread_num() * C;
    #pragma omp for schedule(static)
    for (int64 r = 0; r < rows; r++) {{
        const float* xr = x + r * C; const float* gr = g + r * C; float* dr = dx + r * C;
        const float m = mean[r], is = invstd[r];
        double sum_gn = 0.0, sum_gn_xhat = 0.0;
        #pragma omp simd reduction(+:sum_gn, sum_gn_xhat)
        for (int64 c = 0; c < C; c++) {{
            const float xhat = (xr[c] - m) * is, gn = gr[c] * w[c];
            sum_gn += gn; sum_gn_xhat += gn * xhat;
            acc_w[c] += gr[c] * xhat;
            acc_b[c] += gr[c];
        }}
        const float a = (float)(sum_gn / C), bb = (float)(sum_gn_xhat / C);
        {"const float* gxr = gx + r * C;" if residual else ""}
        #pragma omp simd
        for (int64 c = 0; c < C; c++) {{
            const float xhat = (xr[c] - m) * is;
            dr[c] = is * (gr[c] * w[c] - a - xhat * bb){" + gxr[c]" if residual else ""};
        }}
    }}
}}
mlpzoo_column_sums(part_w, threads, C, out1_p);
mlpzoo_column_sums(part_b, threads, C, out2_p);
"""


# LayerNorm of (B, N, C) input written as (B, C, N) (Mixer's token MLP takes it so), and its backward from a
# (B, C, N) output gradient plus x's residual gradient: tasks of _TILE tokens of one sample, whose rows of x stay in
# cache while the output or gradient is walked along N.
_LAYER_NORM_TRANSPOSED_TASKS = """
const int64 B = in0->shape[0], N = in0->shape[1], C = in0->shape[2], tiles = (N + @TILE - 1) / @TILE;
""".replace("@TILE", str(_TILE))

_LAYER_NORM_FORWARD_TRANSPOSED = _LAYER_NORM_TRANSPOSED_TASKS + """
const float* x = in0_p; const float* w = in1_p; const float* b = in2_p;
float* y = out0_p; float* mean_out = out1_p; float* invstd_out = out2_p;
const double eps = @EPS;
#pragma omp parallel for schedule(static)
for (int64 bt = 0; bt < B * tiles; bt++) {
    const int64 bb = bt / tiles, n0 = (bt % tiles) * @TILE, n1 = n0 + @TILE < N ? n0 + @TILE : N;
    for (int64 n = n0; n < n1; n++) {
        const float* xr = x + (bb * N + n) * C;
        double s = 0.0;
        #pragma omp simd reduction(+:s)
        for (int64 c = 0; c < C; c++) s += xr[c];
        const double mean = s / C;
        double v = 0.0;
        #pragma omp simd reduction(+:v)
        for (int64 c = 0; c < C; c++) { const double d = xr[c] - mean; v += d * d; }
        mean_out[bb * N + n] = (float)mean; invstd_out[bb * N + n] = (float)(1.0 / std::sqrt(v / C + eps));
    }
    const float* m = mean_out + bb * N; const float* is = invstd_out + bb * N;
    for (int64 c = 0; c < C; c++) {
        const float wc = w[c], bc = b[c]; float* yr = y + (bb * C + c) * N;
        for (int64 n = n0; n < n1; n++) yr[n] = (x[(bb * N + n) * C + c] - m[n]) * is[n] * wc + bc;
    }
}
""".replace("@TILE", str(_TILE))

_LAYER_NORM_BACKWARD_TRANSPOSED = _LAYER_NORM_TRANSPOSED_TASKS + """
const float* x = in0_p; const float* w = in1_p; const float* mean = in2_p; const float* invstd = in3_p;
const float* g = in4_p; const float* gx = in5_p; float* dx = out0_p;
const int threads = omp_get_max_threads();
std::vector<double> part_w(threads * C, 0.0), part_b(threads * C, 0.0);
#pragma omp parallel num_threads(threads)
{
    double* acc_w = part_w.data() + omp_get_thread_num() * C;
    double* acc_b = part_b.data() + omp_get_thread_num() * C;
    #pragma omp for schedule(static)
    for (int64 bt = 0; bt < B * tiles; bt++) {
        const int64 bb = bt / tiles, n0 = (bt % tiles) * @TILE, n1 = n0 + @TILE < N ? n0 + @TILE : N;
        const float* m = mean + bb * N; const float* is = invstd + bb * N;
        double sum_gn[@TILE] = {0.0}, sum_gn_xhat[@TILE] = {0.0};
        for (int64 c = 0; c < C; c++) {
            const float* gr = g + (bb * C + c) * N; const float wc = w[c];
            double aw = 0.0, ab = 0.0;
            for (int64 n = n0; n < n1; n++) {
                const float xhat = (x[(bb * N + n) * C + c] - m[n]) * is[n], gn = gr[n] * wc;
                sum_gn[n - n0] += gn; sum_gn_xhat[n - n0] += gn * xhat;
                aw += gr[n] * xhat; ab += gr[n];
            }
            acc_w[c] += aw; acc_b[c] += ab;
        }
        for (int64 n = n0; n < n1; n++) {
            const float* xr = x + (bb * N + n) * C; const float* gxr = gx + (bb * N + n) * C; float* dr = dx + (bb * N + n) * C;
            const float a = (float)(sum_gn[n - n0] / C), bb2 = (float)(sum_gn_xhat[n - n0] / C), mn = m[n], isn = is[n];
            for (int64 c = 0; c < C; c++) {
                const float xhat = (xr[c] - mn) * isn;
                dr[c] = isn * (g[(bb * C + c) * N + n] * w[c] - a - xhat * bb2) + gxr[c];
            }
        }
    }
}
mlpzoo_column_sums(part_w, threads, C, out1_p);
mlpzoo_column_sums(part_b, threads, C, out2_p);
""".replace("@TILE", str(_TILE))


class _Normalization(jt.Function):
    """A normalisation whose forward keeps ``x``, ``weight`` and per-group ``mean`` and ``invstd``, and whose
    backward kernel ``BACKWARD`` takes (x, weight, mean, invstd, output gradient) to (dx, dweight, dbias)."""

    BACKWARD = ""

    def grad(self, g: jt.Var) -> tuple[jt.Var, jt.Var, jt.Var]:
        return self._backward(self.BACKWARD, [g])

    def _backward(self, source: str, grads: list[jt.Var]) -> tuple[jt.Var, jt.Var, jt.Var]:
        return tuple(jt.code([self.x.shape, self.weight.shape, self.weight.shape], [self.x.dtype] * 3,
                             [self.x, self.weight, self.mean, self.invstd, *grads],
                             cpu_header=_HEADER, cpu_src=source))


class LayerNormFn(_Normalization):
    """LayerNorm over the last axis: per-row mean and variance in two float64 passes, PyTorch's backward.

    With ``keep_input`` it returns ``(y, x)``, x passed through untouched, for a residual block
    ``x + f(norm(x))``: x's two gradients are then added by the LayerNorm's backward kernel, not by the
    single-threaded add Jittor's autograd would insert. With ``transpose`` too, (B, N, C) input gives y as
    (B, C, N), with no separate permute either way."""

    BACKWARD = _layer_norm_backward(residual=False)
    BACKWARD_RESIDUAL = _layer_norm_backward(residual=True)

    def __init__(self, eps: float, keep_input: bool = False, transpose: bool = False) -> None:
        if transpose and not keep_input:
            raise ValueError("a transposed LayerNormFn passes its input through (keep_input=True)")
        self.eps, self.keep_input, self.transpose = eps, keep_input, transpose

    def execute(self, x: jt.Var, weight: jt.Var, bias: jt.Var) -> jt.Var | tuple[jt.Var, jt.Var]:
        rows = list(x.shape[:-1])
        shape, source = x.shape, _LAYER_NORM_FORWARD
        if self.transpose:
            shape, source = [x.shape[0], x.shape[2], x.shape[1]], _LAYER_NORM_FORWARD_TRANSPOSED
        y, self.mean, self.invstd = jt.code([shape, rows, rows], [x.dtype] * 3, [x, weight, bias],
                                            cpu_header=_HEADER, cpu_src=source.replace("@EPS", repr(float(self.eps))))
        self.x, self.weight = x, weight
        return (y, x) if self.keep_input else y

    def grad(self, g: jt.Var, g_input: jt.Var | None = None) -> tuple[jt.Var, jt.Var, jt.Var]:
        if g is None:  # only the passed-through x reaches the loss
            return g_input, None, None
        if self.transpose:
            return self._backward(_LAYER_NORM_BACKWARD_TRANSPOSED,
                                  [g, jt.zeros_like(self.x) if g_input is None else g_input])
        if g_input is None:
            return self._backward(self.BACKWARD, [g])
        return self._backward(self.BACKWARD_RESIDUAL, [g, g_input])


# BatchNorm over axis 1 of (outer, C, inner) memory: (N, C, H*W) for NCHW input, (rows, C, 1) for channels-last
# rows. Each thread takes a share of ``outer`` and keeps float64 per-channel partial sums.
_BATCH_NORM_LAYOUT = """
const int64 C = in0->shape[1], outer = in0->shape[0], inner = in0->num / (outer * C);
const double n = (double)(outer * inner);
const int threads = omp_get_max_threads();
"""

_BATCH_NORM_FORWARD = _BATCH_NORM_LAYOUT + """
const float* x = in0_p; const float* w = in1_p; const float* b = in2_p;
float* y = out0_p; float* mean_out = out1_p; double* var_out = out2_p; float* invstd_out = out3_p;
std::vector<double> part(threads * C);
std::vector<float> scale(C);
#pragma omp parallel num_threads(threads)
{
    double* acc = part.data() + omp_get_thread_num() * C;
    for (int64 c = 0; c < C; c++) acc[c] = 0.0;
    #pragma omp for schedule(static)
    for (int64 o = 0; o < outer; o++)
        if (inner == 1) {
            const float* xr = x + o * C;
            #pragma omp simd
            for (int64 c = 0; c < C; c++) acc[c] += xr[c];
        } else for (int64 c = 0; c < C; c++) {
            const float* xr = x + (o * C + c) * inner;
            double s = 0.0;
            #pragma omp simd reduction(+:s)
            for (int64 i = 0; i < inner; i++) s += xr[i];
            acc[c] += s;
        }
    #pragma omp single
    for (int64 c = 0; c < C; c++) {
        double s = 0.0;
        for (int t = 0; t < threads; t++) { s += part[t * C + c]; part[t * C + c] = 0.0; }
        mean_out[c] = (float)(s / n);
    }
    #pragma omp for schedule(static)
    for (int64 o = 0; o < outer; o++)
        if (inner == 1) {
            const float* xr = x + o * C;
            #pragma omp simd
            for (int64 c = 0; c < C; c++) { const float d = xr[c] - mean_out[c]; acc[c] += (double)d * d; }
        } else for (int64 c = 0; c < C; c++) {
            const float* xr = x + (o * C + c) * inner; const float m = mean_out[c];
            double s = 0.0;
            #pragma omp simd reduction(+:s)
            for (int64 i = 0; i < inner; i++) { const float d = xr[i] - m; s += (double)d * d; }
            acc[c] += s;
        }
    #pragma omp single
    for (int64 c = 0; c < C; c++) {
        double s = 0.0;
        for (int t = 0; t < threads; t++) s += part[t * C + c];
        var_out[c] = s / n;
        invstd_out[c] = (float)(1.0 / std::sqrt(s / n + @EPS));
        scale[c] = invstd_out[c] * w[c];
    }
    #pragma omp for schedule(static)
    for (int64 o = 0; o < outer; o++)
        if (inner == 1) {
            const float* xr = x + o * C; float* yr = y + o * C;
            #pragma omp simd
            for (int64 c = 0; c < C; c++) yr[c] = (xr[c] - mean_out[c]) * scale[c] + b[c];
        } else for (int64 c = 0; c < C; c++) {
            const float* xr = x + (o * C + c) * inner; float* yr = y + (o * C + c) * inner;
            const float m = mean_out[c], sc = scale[c], shift = b[c];
            #pragma omp simd
            for (int64 i = 0; i < inner; i++) yr[i] = (xr[i] - m) * sc + shift;
        }
}
"""

_BATCH_NORM_BACKWARD = _BATCH_NORM_LAYOUT + """
const float* x = in0_p; const float* w = in1_p; const float* mean = in2_p; const float* invstd = in3_p;
const float* g = in4_p; float* dx = out0_p; float* dw = out1_p; float* db = out2_p;
std::vector<double> part_g(threads * C, 0.0), part_gc(threads * C, 0.0);
std::vector<float> mean_g(C), slope(C), scale(C);
#pragma omp parallel num_threads(threads)
{
    double* acc_g = part_g.data() + omp_get_thread_num() * C;
    double* acc_gc = part_gc.data() + omp_get_thread_num() * C;
    #pragma omp for schedule(static)
    for (int64 o = 0; o < outer; o++)
        if (inner == 1) {
            const float* xr = x + o * C; const float* gr = g + o * C;
            #pragma omp simd
            for (int64 c = 0; c < C; c++) { acc_g[c] += gr[c]; acc_gc[c] += (double)gr[c] * (xr[c] - mean[c]); }
        } else for (int64 c = 0; c < C; c++) {
            const float* xr = x + (o * C + c) * inner; const float* gr = g + (o * C + c) * inner;
            const float m = mean[c];
            double s = 0.0, sc = 0.0;
            #pragma omp simd reduction(+:s, sc)
            for (int64 i = 0; i < inner; i++) { s += gr[i]; sc += (double)gr[i] * (xr[i] - m); }
            acc_g[c] += s; acc_gc[c] += sc;
        }
    #pragma omp single
    for (int64 c = 0; c < C; c++) {
        double s = 0.0, sc = 0.0;
        for (int t = 0; t < threads; t++) { s += part_g[t * C + c]; sc += part_gc[t * C + c]; }
        const double is = invstd[c];
        mean_g[c] = (float)(s / n);
        slope[c] = (float)(sc / n * is * is);
        scale[c] = invstd[c] * w[c];
        dw[c] = (float)(sc * is);
        db[c] = (float)s;
    }
    #pragma omp for schedule(static)
    for (int64 o = 0; o < outer; o++)
        if (inner == 1) {
            const float* xr = x + o * C; const float* gr = g + o * C; float* dr = dx + o * C;
            #pragma omp simd
            for (int64 c = 0; c < C; c++) dr[c] = scale[c] * (gr[c] - mean_g[c] - (xr[c] - mean[c]) * slope[c]);
        } else for (int64 c = 0; c < C; c++) {
            const float* xr = x + (o * C + c) * inner; const float* gr = g + (o * C + c) * inner;
            float* dr = dx + (o * C + c) * inner;
            const float m = mean[c], mg = mean_g[c], sl = slope[c], sc = scale[c];
            #pragma omp simd
            for (int64 i = 0; i < inner; i++) dr[i] = sc * (gr[i] - mg - (xr[i] - m) * sl);
        }
}
"""


class BatchNormTrain(_Normalization):
    """Normalisation by the batch's statistics over axis 1: mean and variance in two passes, every sum over the
    batch (forward and backward) in float64, PyTorch's backward formula. After the forward, ``mean`` (float32),
    ``var`` (biased, float64) and ``n`` (values per channel) are there for the running statistics."""

    BACKWARD = _BATCH_NORM_BACKWARD

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def execute(self, x: jt.Var, weight: jt.Var, bias: jt.Var) -> jt.Var:
        c = x.shape[1]
        self.n = x.numel() // c
        y, self.mean, self.var, self.invstd = jt.code(
            [x.shape, [c], [c], [c]], [x.dtype, x.dtype, "float64", x.dtype], [x, weight, bias],
            cpu_header=_HEADER, cpu_src=_BATCH_NORM_FORWARD.replace("@EPS", repr(float(self.eps))))
        self.x, self.weight = x, weight
        return y


_RELU_FORWARD = """
const float* x = in0_p; float* y = out0_p; const int64 n = in0->num;
#pragma omp parallel for simd schedule(static)
for (int64 i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
"""

_RELU_BACKWARD = """
const float* y = in0_p; const float* g = in1_p; float* dx = out0_p; const int64 n = in0->num;
#pragma omp parallel for simd schedule(static)
for (int64 i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? g[i] : 0.0f;
"""


class ReLU(jt.Function):
    """``max(x, 0)``; the backward passes the gradient where the output is positive, as PyTorch's does."""

    def execute(self, x: jt.Var) -> jt.Var:
        self.y = jt.code(x.shape, x.dtype, [x], cpu_header=_HEADER, cpu_src=_RELU_FORWARD)
        return self.y

    def grad(self, g: jt.Var) -> jt.Var:
        return jt.code(g.shape, g.dtype, [self.y, g], cpu_header=_HEADER, cpu_src=_RELU_BACKWARD)


# y = residual + drop_path(m + bias), the bias along m's last axis. Rows: m, residual and y are (rows, C), the
# drop-path mask per sample (rows / samples consecutive rows each). Transposed (Mixer's token MLP): m is (B, P, Q)
# and residual and y are (B, Q, P), in tiles as in ``_transpose_source``.


def _masked(value: str, mask: bool) -> str:
    """``value`` through drop path as PyTorch computes it: ``value * mask / keep``."""
    return f"(({value}) * mk) / @KEEP" if mask else value


def _tiles(body: str) -> str:
    """A loop over (sample bb, tile of (p, q)) of (B, P, Q) input ``in0`` running ``body`` for every q with
    ``p0 <= p < p1`` to do; ``mk`` is the sample's drop-path mask."""
    return f"""
const int64 B = @B, P = @P, Q = @Q, pt = (P + {_TILE - 1}) / {_TILE}, qt = (Q + {_TILE - 1}) / {_TILE};
#pragma omp for collapse(2) schedule(static)
for (int64 bb = 0; bb < B; bb++)
for (int64 t = 0; t < pt * qt; t++) {{
    const int64 p0 = (t / qt) * {_TILE}, q0 = (t % qt) * {_TILE};
    const int64 p1 = p0 + {_TILE} < P ? p0 + {_TILE} : P, q1 = q0 + {_TILE} < Q ? q0 + {_TILE} : Q;
    const float mk = @MASK;
    const int64 base = bb * P * Q;
    for (int64 q = q0; q < q1; q++) {{
        {body}
    }}
}}
"""


def _bias_residual_forward(mask: bool, transpose: bool) -> str:
    head = f"""
const float* m = in0_p; const float* b = in1_p; const float* r = in2_p; float* y = out0_p;
{"const float* mask = in3_p;" if mask else ""}
"""
    if transpose:
        return head + "#pragma omp parallel\n{" + _tiles(f"""
        const float bq = b[q];
        for (int64 p = p0; p < p1; p++)
            y[base + q * P + p] = r[base + q * P + p] + {_masked("m[base + p * Q + q] + bq", mask)};""") + "}"
    return head + f"""
const int64 C = @Q, rows = in0->num / C, per = rows / @B;
#pragma omp parallel for schedule(static)
for (int64 o = 0; o < rows; o++) {{
    const float mk = @MASK;
    const float* mo = m + o * C; const float* ro = r + o * C; float* yo = y + o * C;
    #pragma omp simd
    for (int64 c = 0; c < C; c++) yo[c] = ro[c] + {_masked("mo[c] + b[c]", mask)};
}}
"""


def _bias_residual_backward(mask: bool, transpose: bool) -> str:
    """gradient (and mask) -> (gradient of m, where it is not the gradient itself; bias gradient, summed in
    float64 per thread and added in thread order)."""
    dm = transpose or mask
    head = f"""
const float* g = in0_p; {"const float* mask = in1_p;" if mask else ""} {"float* dm = out0_p;" if dm else ""}
const int64 C = @Q;
const int threads = omp_get_max_threads();
std::vector<double> part(threads * C, 0.0);
#pragma omp parallel num_threads(threads)
{{
double* acc = part.data() + omp_get_thread_num() * C;
"""
    if transpose:
        body = _tiles(f"""
        double s = 0.0;
        for (int64 p = p0; p < p1; p++) {{
            const float d = {_masked("g[base + q * P + p]", mask)};
            dm[base + p * Q + q] = d; s += d;
        }}
        acc[q] += s;""")
    else:
        body = f"""
const int64 rows = in0->num / C, per = rows / @B;
#pragma omp for schedule(static)
for (int64 o = 0; o < rows; o++) {{
    const float mk = @MASK;
    const float* go = g + o * C; {"float* dmo = dm + o * C;" if dm else ""}
    #pragma omp simd
    for (int64 c = 0; c < C; c++) {{ const float d = {_masked("go[c]", mask)}; acc[c] += d; {"dmo[c] = d;" if dm else ""} }}
}}
"""
    return head + body + f"}}\nmlpzoo_column_sums(part, threads, C, out{1 if dm else 0}_p);\n"


class BiasResidual(jt.Function):
    """``residual + drop_path(m + bias)``, the bias along m's last axis, the drop-path ``mask`` (0 or 1 per sample,
    then divided by ``keep``) optional, with ``transpose`` m's last two axes swapped first: the end of a residual
    block's last linear in one pass (Jittor adds the bias and the residual in one single-threaded kernel and sums
    the bias gradient in another)."""

    def __init__(self, keep: float = 1.0, transpose: bool = False) -> None:
        self.keep, self.transpose = keep, transpose

    def _source(self, template: str) -> str:
        samples, q = self.shape[0], self.shape[-1]
        mk = ("mask[bb]" if self.transpose else "mask[o / per]") if self.mask is not None else "1.0f"
        return (template.replace("@KEEP", f"{float(self.keep)!r}f").replace("@MASK", mk).replace("@B", str(samples))
                .replace("@P", str(math.prod(self.shape[1:-1]))).replace("@Q", str(q)))

    def execute(self, m: jt.Var, bias: jt.Var, residual: jt.Var, mask: jt.Var | None = None) -> jt.Var:
        self.shape, self.mask = tuple(m.shape), mask
        inputs = [m, bias, residual] + ([] if mask is None else [mask])
        return jt.code(residual.shape, m.dtype, inputs, cpu_header=_HEADER,
                       cpu_src=self._source(_bias_residual_forward(mask is not None, self.transpose)))

    def grad(self, g: jt.Var) -> tuple[jt.Var | None, ...]:
        src = self._source(_bias_residual_backward(self.mask is not None, self.transpose))
        inputs, c = [g] + ([] if self.mask is None else [self.mask]), [self.shape[-1]]
        if self.mask is None and not self.transpose:
            return g, jt.code(c, g.dtype, inputs, cpu_header=_HEADER, cpu_src=src), g
        dm, dbias = jt.code([self.shape, c], [g.dtype] * 2, inputs, cpu_header=_HEADER, cpu_src=src)
        return (dm, dbias, g) + (() if self.mask is None else (None,))


def _sgd_source(weight_decay: bool, momentum: bool, first: bool, nesterov: bool) -> str:
    """torch.optim.SGD's update of one parameter; ``in*`` = p, g, [buf], hyper = (lr, wd, momentum, 1 - damp)."""
    hyper = "in3_p" if momentum and not first else "in2_p"
    lines = [f"const float lr = {hyper}[0], wd = {hyper}[1], mom = {hyper}[2], undamped = {hyper}[3];",
             "const float* p = in0_p; const float* g = in1_p; float* new_p = out0_p;",
             "const int64 n = in0->num;"]
    if momentum:
        lines.append("float* new_buf = out1_p;" + ("" if first else " const float* buf = in2_p;"))
    lines += ["#pragma omp parallel for simd schedule(static) if(n > 32768)",
              "for (int64 i = 0; i < n; i++) {",
              "    float d = g[i]" + (" + wd * p[i]" if weight_decay else "") + ";"]
    if momentum:
        lines.append("    const float b = " + ("d" if first else "mom * buf[i] + undamped * d") + ";")
        lines.append("    new_buf[i] = b;")
        lines.append("    d = " + ("d + mom * b" if nesterov else "b") + ";")
    lines += ["    new_p[i] = p[i] - lr * d;", "}"]
    return "\n".join(lines)


def sgd_update(p: jt.Var, g: jt.Var, buf: jt.Var | None, lr: float, weight_decay: float, momentum: float,
               dampening: float, nesterov: bool) -> tuple[jt.Var, jt.Var | None]:
    """One torch.optim.SGD step of parameter ``p``: (its new value, the new momentum buffer or None)."""
    hyper = jt.array([lr, weight_decay, momentum, 1 - dampening], dtype="float32")
    src = _sgd_source(bool(weight_decay), bool(momentum), buf is None, nesterov)
    if not momentum:
        return jt.code(p.shape, p.dtype, [p, g, hyper], cpu_header=_HEADER, cpu_src=src), None
    inputs = [p, g, hyper] if buf is None else [p, g, buf, hyper]
    new_p, new_buf = jt.code([p.shape, p.shape], [p.dtype, p.dtype], inputs, cpu_header=_HEADER, cpu_src=src)
    return new_p, new_buf


def _strides(shape: tuple[int, ...]) -> list[int]:
    strides = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        strides[i] = strides[i + 1] * shape[i + 1]
    return strides


def _transpose_source(shape: tuple[int, ...], order: tuple[int, ...], backward: bool, tile: int = _TILE) -> str:
    """``_permute_source`` where the last axis moves: a tiled transpose between the output's last axis and the
    output axis that holds the input's last (contiguous) axis, for every index of the other axes, so that both
    sides of a tile stay in cache (one element per cache line otherwise: 10x slower)."""
    strides, out_shape = _strides(shape), [shape[i] for i in order]
    out_strides = _strides(tuple(out_shape))
    inner = order.index(len(shape) - 1)  # the output axis that is contiguous in the input
    last, rows = out_shape[-1], out_shape[inner]
    others = [a for a in range(len(order) - 1) if a != inner]
    lines = ["const float* x = in0_p; float* y = out0_p;",
             f"const int64 outer = {math.prod(out_shape[a] for a in others)}, rows = {rows}, last = {last};",
             f"const int64 row_tiles = {-(-rows // tile)}, last_tiles = {-(-last // tile)};",
             "#pragma omp parallel for collapse(2) schedule(static)",
             "for (int64 o = 0; o < outer; o++)",
             "for (int64 t = 0; t < row_tiles * last_tiles; t++) {",
             "    int64 rem = o, src = 0, dst = 0;"]
    for axis in reversed(others):
        lines.append(f"    {{ const int64 i = rem % {out_shape[axis]}; rem /= {out_shape[axis]}; "
                     f"src += i * {strides[order[axis]]}; dst += i * {out_strides[axis]}; }}")
    lines += [f"    const int64 r0 = (t / last_tiles) * {tile}, j0 = (t % last_tiles) * {tile};",
              f"    const int64 r1 = r0 + {tile} < rows ? r0 + {tile} : rows, j1 = j0 + {tile} < last ? j0 + {tile} : last;",
              "    for (int64 r = r0; r < r1; r++)",
              "        for (int64 j = j0; j < j1; j++)"]
    at_in, at_out = f"src + r + j * {strides[order[-1]]}", f"dst + r * {out_strides[inner]} + j"
    lines.append(f"            y[{at_in}] = x[{at_out}];" if backward else f"            y[{at_out}] = x[{at_in}];")
    lines.append("}")
    return "\n".join(lines)


def _permute_source(shape: tuple[int, ...], order: tuple[int, ...], bias_axis: int | None, backward: bool) -> str:
    """The kernel of ``y = x.permute(order) (+ bias along output axis bias_axis, not the last)`` for ``x`` of
    ``shape``: one output row per iteration where the last axis stays (a row is a contiguous copy), tiles of a
    transpose where it moves. With ``backward`` it maps the gradient back instead: ``in0`` is the output
    gradient (permuted layout), ``out0`` the input gradient, ``out1`` the bias gradient (the sum over all but
    ``bias_axis``)."""
    strides = _strides(shape)
    out_shape = [shape[i] for i in order]
    step, bias_size = strides[order[-1]], None if bias_axis is None else out_shape[bias_axis]
    if step != 1:
        if bias_size:
            raise ValueError("a Permute that moves the last axis takes no bias")
        return _transpose_source(shape, order, backward)
    lines = ["const float* x = in0_p; float* y = out0_p;",
             f"const int64 outer = {math.prod(out_shape[:-1])}, last = {out_shape[-1]};"]
    if bias_size and backward:
        lines += ["const int threads = omp_get_max_threads();", f"std::vector<double> part(threads * {bias_size}, 0.0);"]
    elif bias_size:
        lines.append("const float* b = in1_p;")
    lines += ["#pragma omp parallel num_threads(omp_get_max_threads())", "{"]
    if bias_size and backward:
        lines.append(f"double* acc = part.data() + omp_get_thread_num() * {bias_size};")
    lines += ["#pragma omp for schedule(static)", "for (int64 o = 0; o < outer; o++) {",
              "    int64 rem = o, src = 0;"]
    for axis in range(len(order) - 2, -1, -1):
        lines.append(f"    const int64 i{axis} = rem % {out_shape[axis]}; rem /= {out_shape[axis]}; "
                     f"src += i{axis} * {strides[order[axis]]};")
    if backward:
        lines += ["    const float* xs = x + o * last; float* yd = y + src;",
                  f"    for (int64 j = 0; j < last; j++) yd[j * {step}] = xs[j];"]
        if bias_size:
            lines += ["    double s = 0.0;", "    for (int64 j = 0; j < last; j++) s += xs[j];",
                      f"    acc[i{bias_axis}] += s;"]
    else:
        add = "" if bias_size is None else f" + b[i{bias_axis}]"
        lines += ["    const float* xs = x + src; float* yd = y + o * last;",
                  f"    for (int64 j = 0; j < last; j++) yd[j] = xs[j * {step}]{add};"]
    lines += ["}", "}"]
    if bias_size and backward:
        lines.append(f"mlpzoo_column_sums(part, threads, {bias_size}, out1_p);")
    return "\n".join(lines)


class Permute(jt.Function):
    """``x.permute(order)``, plus ``bias`` along output axis ``bias_axis`` (not the last) if given: one pass over
    memory on all threads (Jittor's transpose runs on one)."""

    def __init__(self, order: tuple[int, ...], bias_axis: int | None = None) -> None:
        self.order, self.bias_axis = tuple(order), bias_axis
        if bias_axis is not None and bias_axis == len(order) - 1:
            raise ValueError("the bias axis of a Permute cannot be the last")

    def execute(self, x: jt.Var, bias: jt.Var | None = None) -> jt.Var:
        self.shape = tuple(x.shape)
        out_shape = [self.shape[i] for i in self.order]
        src = _permute_source(self.shape, self.order, self.bias_axis if bias is not None else None, backward=False)
        return jt.code(out_shape, x.dtype, [x] if bias is None else [x, bias], cpu_header=_HEADER, cpu_src=src)

    def grad(self, g: jt.Var) -> jt.Var | tuple[jt.Var, jt.Var]:
        src = _permute_source(self.shape, self.order, self.bias_axis, backward=True)
        if self.bias_axis is None:
            return jt.code(self.shape, g.dtype, [g], cpu_header=_HEADER, cpu_src=src)
        bias_size = self.shape[self.order[self.bias_axis]]
        dx, dbias = jt.code([self.shape, [bias_size]], [g.dtype, g.dtype], [g], cpu_header=_HEADER, cpu_src=src)
        return dx, dbias


def permute(x: jt.Var, order: tuple[int, ...], bias: jt.Var | None = None, bias_axis: int | None = None) -> jt.Var:
    """``x.permute(order)`` (+ ``bias`` along output axis ``bias_axis``): the kernel on the CPU, Jittor's ops on
    CUDA."""
    if enabled(x) if bias is None else enabled(x, bias):
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


# Vision Permutator's branch work on (B, H, W, G, S) positions. The channel branch c is (B, H, W, G, S), the H
# branch h comes as the H-mixing product's (B, W, G, H, S) and the W branch w as (B, H, G, W, S), so that no
# permute is ever materialised. A task is a tile of PERMUTATOR_TILE rows i of one sample b: c and w are read in
# contiguous runs and h in runs of PERMUTATOR_TILE * S floats (S is 6 in ViP-S/7's first stage: one (b, g) per task
# read 24 bytes of every 64-byte cache line and took 2.5x as long). Sums over (i, j) are taken per task in float64
# and added in task order, so they do not depend on the thread count.
PERMUTATOR_TILE = 4


def _permutator_source(body: str, sums: int = 0, setup: str = "", finish: str = "") -> str:
    """A loop over every (b, i, j, g) running ``body`` with offsets ``ct``, ``ht``, ``wt`` of the S-run in the c, h
    and w layouts; with ``sums`` > 0 the body adds into ``acc[(g * S + s) * sums + k]`` and ``finish`` reads the
    per-sample totals from ``total`` (G * S * sums doubles)."""
    acc = f"""
    double* acc = part.data() + bt * G * S * {sums};
    for (int64 k = 0; k < G * S * {sums}; k++) acc[k] = 0.0;""" if sums else ""
    reduce = f"""
for (int64 b = 0; b < B; b++) {{
    std::vector<double> total(G * S * {sums}, 0.0);
    for (int64 t = 0; t < tiles; t++) {{
        const double* p = part.data() + (b * tiles + t) * G * S * {sums};
        for (int64 k = 0; k < G * S * {sums}; k++) total[k] += p[k];
    }}
    {finish}
}}""" if sums else ""
    return f"""
const int64 B = in0->shape[0], H = in0->shape[1], W = in0->shape[2], G = in0->shape[3], S = in0->shape[4];
const int64 tiles = (H + {PERMUTATOR_TILE} - 1) / {PERMUTATOR_TILE};
{setup}
{f"std::vector<double> part(B * tiles * G * S * {sums});" if sums else ""}
#pragma omp parallel for schedule(static)
for (int64 bt = 0; bt < B * tiles; bt++) {{
    const int64 b = bt / tiles, i0 = (bt % tiles) * {PERMUTATOR_TILE};
    const int64 i1 = i0 + {PERMUTATOR_TILE} < H ? i0 + {PERMUTATOR_TILE} : H;{acc}
    for (int64 i = i0; i < i1; i++)
        for (int64 j = 0; j < W; j++)
            for (int64 g = 0; g < G; g++) {{
                const int64 ct = (((b * H + i) * W + j) * G + g) * S;
                const int64 ht = (((b * W + j) * G + g) * H + i) * S;
                const int64 wt = (((b * H + i) * G + g) * W + j) * S;
                {body}
            }}
}}{reduce}
"""


_PERMUTATOR_SPLIT_FORWARD = _permutator_source("""
                const float* xr = x + ct;
                for (int64 s = 0; s < S; s++) { yh[ht + s] = xr[s]; yw[wt + s] = xr[s]; }""",
                                               setup="const float* x = in0_p; float* yh = out0_p; float* yw = out1_p;")

_PERMUTATOR_SPLIT_BACKWARD = _permutator_source("""
                for (int64 s = 0; s < S; s++) dx[ct + s] = (gx[ct + s] + gh[ht + s]) + gw[wt + s];""",
                                                setup="const float* gx = in1_p; const float* gh = in2_p; "
                                                      "const float* gw = in3_p; float* dx = out0_p;")

_PERMUTATOR_POOL_FORWARD = _permutator_source(
    "for (int64 s = 0; s < S; s++) acc[g * S + s] += (c[ct + s] + h[ht + s]) + w[wt + s];", sums=1,
    setup="const float* c = in0_p; const float* h = in1_p; const float* w = in2_p; float* pooled = out0_p;",
    finish="for (int64 k = 0; k < G * S; k++) pooled[b * G * S + k] = (float)(total[k] / (H * W));")

# the pooled gradient spread over H and W, added to the gradients c, h and w get from the branch fusion
_PERMUTATOR_POOL_BACKWARD = _permutator_source("""
                const float* d = dp + (b * G + g) * S;
                for (int64 s = 0; s < S; s++) {
                    const float v = d[s] * inv;
                    dc[ct + s] = gc[ct + s] + v; dh[ht + s] = gh[ht + s] + v; dw[wt + s] = gw[wt + s] + v;
                }""", setup="""const float* dp = in3_p; const float* gc = in4_p; const float* gh = in5_p; const float* gw = in6_p;
float* dc = out0_p; float* dh = out1_p; float* dw = out2_p; const float inv = 1.0f / (H * W);""")

_PERMUTATOR_MIX_FORWARD = _permutator_source("""
                const float* ag = a + (b * G + g) * S * 3;
                for (int64 s = 0; s < S; s++)
                    y[ct + s] = (c[ct + s] * ag[3 * s + 2] + h[ht + s] * ag[3 * s]) + w[wt + s] * ag[3 * s + 1];""",
                                             setup="const float* c = in0_p; const float* h = in1_p; "
                                                   "const float* w = in2_p; const float* a = in3_p; float* y = out0_p;")

_PERMUTATOR_MIX_BACKWARD = _permutator_source("""
                const float* ag = a + (b * G + g) * S * 3; double* ac = acc + g * S * 3;
                for (int64 s = 0; s < S; s++) {
                    const float d = dy[ct + s];
                    dc[ct + s] = d * ag[3 * s + 2]; dh[ht + s] = d * ag[3 * s]; dw[wt + s] = d * ag[3 * s + 1];
                    ac[3 * s] += (double)d * h[ht + s];
                    ac[3 * s + 1] += (double)d * w[wt + s];
                    ac[3 * s + 2] += (double)d * c[ct + s];
                }""", sums=3, setup="""const float* c = in0_p; const float* h = in1_p; const float* w = in2_p; const float* a = in3_p;
const float* dy = in4_p; float* dc = out0_p; float* dh = out1_p; float* dw = out2_p; float* da = out3_p;""",
                                              finish="for (int64 k = 0; k < G * S * 3; k++) "
                                                     "da[b * G * S * 3 + k] = (float)total[k];")


class PermutatorSplit(jt.Function):
    """ViP: (B, H, W, G, S) segments ``x`` to ``(x, the H branch's input (B, W, G, H, S), the W branch's
    (B, H, G, W, S))`` in one pass, x passed through untouched, so that the three branches' gradients of x are
    added in this backward kernel."""

    def execute(self, x: jt.Var) -> tuple[jt.Var, jt.Var, jt.Var]:
        self.x = x
        b, h, w, g, s = x.shape
        to_h, to_w = jt.code([[b, w, g, h, s], [b, h, g, w, s]], [x.dtype] * 2, [x], cpu_header=_HEADER,
                             cpu_src=_PERMUTATOR_SPLIT_FORWARD)
        return x, to_h, to_w

    def grad(self, *grads: jt.Var | None) -> jt.Var:
        b, h, w, g, s = self.x.shape
        shapes = (self.x.shape, [b, w, g, h, s], [b, h, g, w, s])
        grads = [jt.zeros(shape, self.x.dtype) if d is None else d for shape, d in zip(shapes, grads)]
        return jt.code(self.x.shape, self.x.dtype, [self.x, *grads], cpu_header=_HEADER,
                       cpu_src=_PERMUTATOR_SPLIT_BACKWARD)


class PermutatorPool(jt.Function):
    """ViP: the mean over H and W of ``c + h + w`` (h, w in their mixing products' layouts), as (B, G * S); c, h
    and w come back untouched beside it, for the branch fusion, so that their gradients from the fusion and from
    the pool are added in this backward kernel (not in three single-threaded adds of Jittor's autograd)."""

    def execute(self, c: jt.Var, h: jt.Var, w: jt.Var) -> tuple[jt.Var, jt.Var, jt.Var, jt.Var]:
        self.inputs = (c, h, w)
        b, _, _, g, s = c.shape
        pooled = jt.code([b, g * s], c.dtype, [c, h, w], cpu_header=_HEADER, cpu_src=_PERMUTATOR_POOL_FORWARD)
        return pooled, c, h, w

    def grad(self, d: jt.Var | None, *fused: jt.Var | None) -> tuple[jt.Var | None, ...]:
        if d is None:
            return fused
        fused = [jt.zeros_like(v) if g is None else g for v, g in zip(self.inputs, fused)]
        c, h, w = self.inputs
        return tuple(jt.code([c.shape, h.shape, w.shape], [c.dtype] * 3, [c, h, w, d, *fused], cpu_header=_HEADER,
                             cpu_src=_PERMUTATOR_POOL_BACKWARD))


class PermutatorMix(jt.Function):
    """ViP: ``c * a[..., 2] + h * a[..., 0] + w * a[..., 1]`` on (B, H, W, G, S) positions, with ``a`` the
    (B, G, S, 3) branch weights and h, w in their mixing products' layouts."""

    def execute(self, c: jt.Var, h: jt.Var, w: jt.Var, a: jt.Var) -> jt.Var:
        self.inputs = (c, h, w, a)
        return jt.code(c.shape, c.dtype, [c, h, w, a], cpu_header=_HEADER, cpu_src=_PERMUTATOR_MIX_FORWARD)

    def grad(self, d: jt.Var) -> tuple[jt.Var, jt.Var, jt.Var, jt.Var]:
        c, h, w, a = self.inputs
        return tuple(jt.code([c.shape, h.shape, w.shape, a.shape], [c.dtype] * 4, [c, h, w, a, d],
                             cpu_header=_HEADER, cpu_src=_PERMUTATOR_MIX_BACKWARD))
