// LayerNorm over the last axis: per-row mean and variance in two float64 passes, PyTorch's backward formula, the
// weight and bias gradients summed over the rows in float64 per thread, then in thread order.
//
// kResidual: the backward adds a second gradient of x (a residual's: the LayerNorm passed x through) in the same
// pass. The *_transposed forms take (B, N, C) input and write the output as (B, C, N) (Mixer's token MLP takes it
// so), and take the output gradient as (B, C, N), in tasks of kTile tokens of one sample, whose rows of x stay in
// cache while the output or gradient is walked along N.
#include "common.h"

namespace mlpzoo {

inline void layer_norm_forward(const float* x, const float* w, const float* b, float* y, float* mean_out,
                        float* invstd_out, int64_t rows, int64_t C, double eps) {
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float* xr = x + r * C; float* yr = y + r * C;
        double s = 0.0;
        #pragma omp simd reduction(+:s)
        for (int64_t c = 0; c < C; c++) s += xr[c];
        const double mean = s / C;
        double v = 0.0;
        #pragma omp simd reduction(+:v)
        for (int64_t c = 0; c < C; c++) { const double d = xr[c] - mean; v += d * d; }
        const float m = (float)mean, invstd = (float)(1.0 / std::sqrt(v / C + eps));
        mean_out[r] = m; invstd_out[r] = invstd;
        #pragma omp simd
        for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - m) * invstd * w[c] + b[c];
    }
}

// (x, weight, mean, invstd, output gradient g[, gradient gx of x from elsewhere]) -> (dx, dweight, dbias)
template <bool kResidual>
inline void layer_norm_backward(const float* x, const float* w, const float* mean, const float* invstd, const float* g,
                         const float* gx, float* dx, float* dw, float* db, int64_t rows, int64_t C) {
    const int threads = omp_get_max_threads();
    std::vector<double> part_w(threads * C, 0.0), part_b(threads * C, 0.0);
    #pragma omp parallel num_threads(threads)
    {
        double* acc_w = part_w.data() + omp_get_thread_num() * C;
        double* acc_b = part_b.data() + omp_get_thread_num() * C;
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const float* xr = x + r * C; const float* gr = g + r * C; float* dr = dx + r * C;
            const float m = mean[r], is = invstd[r];
            double sum_gn = 0.0, sum_gn_xhat = 0.0;
            #pragma omp simd reduction(+:sum_gn, sum_gn_xhat)
            for (int64_t c = 0; c < C; c++) {
                const float xhat = (xr[c] - m) * is, gn = gr[c] * w[c];
                sum_gn += gn; sum_gn_xhat += gn * xhat;
                acc_w[c] += gr[c] * xhat;
                acc_b[c] += gr[c];
            }
            const float a = (float)(sum_gn / C), bb = (float)(sum_gn_xhat / C);
            const float* gxr = kResidual ? gx + r * C : nullptr;
            #pragma omp simd
            for (int64_t c = 0; c < C; c++) {
                const float xhat = (xr[c] - m) * is;
                const float d = is * (gr[c] * w[c] - a - xhat * bb);
                dr[c] = kResidual ? d + gxr[c] : d;
            }
        }
    }
    column_sums(part_w, threads, C, dw);
    column_sums(part_b, threads, C, db);
}

// x (B, N, C) -> y (B, C, N); mean and invstd per (b, n)
inline void layer_norm_forward_transposed(const float* x, const float* w, const float* b, float* y, float* mean_out,
                                   float* invstd_out, int64_t B, int64_t N, int64_t C, double eps) {
    const int64_t tiles = (N + kTile - 1) / kTile;
    #pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < B * tiles; bt++) {
        const int64_t bb = bt / tiles, n0 = (bt % tiles) * kTile, n1 = n0 + kTile < N ? n0 + kTile : N;
        for (int64_t n = n0; n < n1; n++) {
            const float* xr = x + (bb * N + n) * C;
            double s = 0.0;
            #pragma omp simd reduction(+:s)
            for (int64_t c = 0; c < C; c++) s += xr[c];
            const double mean = s / C;
            double v = 0.0;
            #pragma omp simd reduction(+:v)
            for (int64_t c = 0; c < C; c++) { const double d = xr[c] - mean; v += d * d; }
            mean_out[bb * N + n] = (float)mean; invstd_out[bb * N + n] = (float)(1.0 / std::sqrt(v / C + eps));
        }
        const float* m = mean_out + bb * N; const float* is = invstd_out + bb * N;
        for (int64_t c = 0; c < C; c++) {
            const float wc = w[c], bc = b[c]; float* yr = y + (bb * C + c) * N;
            for (int64_t n = n0; n < n1; n++) yr[n] = (x[(bb * N + n) * C + c] - m[n]) * is[n] * wc + bc;
        }
    }
}

// (x (B, N, C), weight, mean, invstd, output gradient g (B, C, N), x's residual gradient gx (B, N, C))
// -> (dx, dweight, dbias)
inline void layer_norm_backward_transposed(const float* x, const float* w, const float* mean, const float* invstd,
                                    const float* g, const float* gx, float* dx, float* dw, float* db, int64_t B,
                                    int64_t N, int64_t C) {
    const int64_t tiles = (N + kTile - 1) / kTile;
    const int threads = omp_get_max_threads();
    std::vector<double> part_w(threads * C, 0.0), part_b(threads * C, 0.0);
    #pragma omp parallel num_threads(threads)
    {
        double* acc_w = part_w.data() + omp_get_thread_num() * C;
        double* acc_b = part_b.data() + omp_get_thread_num() * C;
        #pragma omp for schedule(static)
        for (int64_t bt = 0; bt < B * tiles; bt++) {
            const int64_t bb = bt / tiles, n0 = (bt % tiles) * kTile, n1 = n0 + kTile < N ? n0 + kTile : N;
            const float* m = mean + bb * N; const float* is = invstd + bb * N;
            double sum_gn[kTile] = {0.0}, sum_gn_xhat[kTile] = {0.0};
            for (int64_t c = 0; c < C; c++) {
                const float* gr = g + (bb * C + c) * N; const float wc = w[c];
                double aw = 0.0, ab = 0.0;
                for (int64_t n = n0; n < n1; n++) {
                    const float xhat = (x[(bb * N + n) * C + c] - m[n]) * is[n], gn = gr[n] * wc;
                    sum_gn[n - n0] += gn; sum_gn_xhat[n - n0] += gn * xhat;
                    aw += gr[n] * xhat; ab += gr[n];
                }
                acc_w[c] += aw; acc_b[c] += ab;
            }
            for (int64_t n = n0; n < n1; n++) {
                const float* xr = x + (bb * N + n) * C; const float* gxr = gx + (bb * N + n) * C;
                float* dr = dx + (bb * N + n) * C;
                const float a = (float)(sum_gn[n - n0] / C), b2 = (float)(sum_gn_xhat[n - n0] / C);
                const float mn = m[n], isn = is[n];
                for (int64_t c = 0; c < C; c++) {
                    const float xhat = (xr[c] - mn) * isn;
                    dr[c] = isn * (g[(bb * C + c) * N + n] * w[c] - a - xhat * b2) + gxr[c];
                }
            }
        }
    }
    column_sums(part_w, threads, C, dw);
    column_sums(part_b, threads, C, db);
}

}  // namespace mlpzoo
