// BatchNorm in training: normalisation by the batch's statistics over axis 1 of (outer, C, inner) memory
// ((N, C, H*W) for NCHW input, (rows, C, 1) for channels-last rows). Mean and variance in two passes, every sum
// over the batch (forward and backward) in float64 per thread, then in thread order; PyTorch's backward formula.
// The forward also writes the biased variance in float64, for the running statistics. In eval, BatchNorm is the
// per-channel affine map channel_affine (scale and shift from the running statistics).
#include "common.h"

namespace mlpzoo {

inline void batch_norm_forward(const float* x, const float* w, const float* b, float* y, float* mean_out,
                               double* var_out, float* invstd_out, int64_t outer, int64_t C, int64_t inner,
                               double eps) {
    const double n = (double)(outer * inner);
    const int threads = omp_get_max_threads();
    std::vector<double> part(threads * C);
    std::vector<float> scale(C);
    #pragma omp parallel num_threads(threads)
    {
        double* acc = part.data() + omp_get_thread_num() * C;
        for (int64_t c = 0; c < C; c++) acc[c] = 0.0;
        #pragma omp for schedule(static)
        for (int64_t o = 0; o < outer; o++)
            if (inner == 1) {
                const float* xr = x + o * C;
                #pragma omp simd
                for (int64_t c = 0; c < C; c++) acc[c] += xr[c];
            } else for (int64_t c = 0; c < C; c++) {
                const float* xr = x + (o * C + c) * inner;
                double s = 0.0;
                #pragma omp simd reduction(+:s)
                for (int64_t i = 0; i < inner; i++) s += xr[i];
                acc[c] += s;
            }
        #pragma omp single
        for (int64_t c = 0; c < C; c++) {
            double s = 0.0;
            for (int t = 0; t < threads; t++) { s += part[t * C + c]; part[t * C + c] = 0.0; }
            mean_out[c] = (float)(s / n);
        }
        #pragma omp for schedule(static)
        for (int64_t o = 0; o < outer; o++)
            if (inner == 1) {
                const float* xr = x + o * C;
                #pragma omp simd
                for (int64_t c = 0; c < C; c++) { const float d = xr[c] - mean_out[c]; acc[c] += (double)d * d; }
            } else for (int64_t c = 0; c < C; c++) {
                const float* xr = x + (o * C + c) * inner; const float m = mean_out[c];
                double s = 0.0;
                #pragma omp simd reduction(+:s)
                for (int64_t i = 0; i < inner; i++) { const float d = xr[i] - m; s += (double)d * d; }
                acc[c] += s;
            }
        #pragma omp single
        for (int64_t c = 0; c < C; c++) {
            double s = 0.0;
            for (int t = 0; t < threads; t++) s += part[t * C + c];
            var_out[c] = s / n;
            invstd_out[c] = (float)(1.0 / std::sqrt(s / n + eps));
            scale[c] = invstd_out[c] * w[c];
        }
        #pragma omp for schedule(static)
        for (int64_t o = 0; o < outer; o++)
            if (inner == 1) {
                const float* xr = x + o * C; float* yr = y + o * C;
                #pragma omp simd
                for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - mean_out[c]) * scale[c] + b[c];
            } else for (int64_t c = 0; c < C; c++) {
                const float* xr = x + (o * C + c) * inner; float* yr = y + (o * C + c) * inner;
                const float m = mean_out[c], sc = scale[c], shift = b[c];
                #pragma omp simd
                for (int64_t i = 0; i < inner; i++) yr[i] = (xr[i] - m) * sc + shift;
            }
    }
}

// (x, weight, mean, invstd, output gradient g) -> (dx, dweight, dbias)
inline void batch_norm_backward(const float* x, const float* w, const float* mean, const float* invstd,
                                const float* g, float* dx, float* dw, float* db, int64_t outer, int64_t C,
                                int64_t inner) {
    const double n = (double)(outer * inner);
    const int threads = omp_get_max_threads();
    std::vector<double> part_g(threads * C, 0.0), part_gc(threads * C, 0.0);
    std::vector<float> mean_g(C), slope(C), scale(C);
    #pragma omp parallel num_threads(threads)
    {
        double* acc_g = part_g.data() + omp_get_thread_num() * C;
        double* acc_gc = part_gc.data() + omp_get_thread_num() * C;
        #pragma omp for schedule(static)
        for (int64_t o = 0; o < outer; o++)
            if (inner == 1) {
                const float* xr = x + o * C; const float* gr = g + o * C;
                #pragma omp simd
                for (int64_t c = 0; c < C; c++) { acc_g[c] += gr[c]; acc_gc[c] += (double)gr[c] * (xr[c] - mean[c]); }
            } else for (int64_t c = 0; c < C; c++) {
                const float* xr = x + (o * C + c) * inner; const float* gr = g + (o * C + c) * inner;
                const float m = mean[c];
                double s = 0.0, sc = 0.0;
                #pragma omp simd reduction(+:s, sc)
                for (int64_t i = 0; i < inner; i++) { s += gr[i]; sc += (double)gr[i] * (xr[i] - m); }
                acc_g[c] += s; acc_gc[c] += sc;
            }
        #pragma omp single
        for (int64_t c = 0; c < C; c++) {
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
        for (int64_t o = 0; o < outer; o++)
            if (inner == 1) {
                const float* xr = x + o * C; const float* gr = g + o * C; float* dr = dx + o * C;
                #pragma omp simd
                for (int64_t c = 0; c < C; c++) dr[c] = scale[c] * (gr[c] - mean_g[c] - (xr[c] - mean[c]) * slope[c]);
            } else for (int64_t c = 0; c < C; c++) {
                const float* xr = x + (o * C + c) * inner; const float* gr = g + (o * C + c) * inner;
                float* dr = dx + (o * C + c) * inner;
                const float m = mean[c], mg = mean_g[c], sl = slope[c], sc = scale[c];
                #pragma omp simd
                for (int64_t i = 0; i < inner; i++) dr[i] = sc * (gr[i] - mg - (xr[i] - m) * sl);
            }
    }
}

// y = x * scale[c] + shift[c] over (outer, C, inner) memory: BatchNorm in eval
inline void channel_affine(const float* x, const float* scale, const float* shift, float* y, int64_t outer,
                           int64_t C, int64_t inner) {
    if (inner == 1) {
        #pragma omp parallel for schedule(static)
        for (int64_t o = 0; o < outer; o++) {
            const float* xr = x + o * C; float* yr = y + o * C;
            #pragma omp simd
            for (int64_t c = 0; c < C; c++) yr[c] = xr[c] * scale[c] + shift[c];
        }
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < outer * C; r++) {
        const float* xr = x + r * inner; float* yr = y + r * inner;
        const float sc = scale[r % C], sh = shift[r % C];
        #pragma omp simd
        for (int64_t i = 0; i < inner; i++) yr[i] = xr[i] * sc + sh;
    }
}

}  // namespace mlpzoo
