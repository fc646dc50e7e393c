// Exact (erf) GELU over rows of C values, optionally after a bias add along the rows (a linear's bias, fused):
// y = gelu(x + b); the backward uses GELU's derivative cdf + x * pdf, as PyTorch does, and with the bias also
// sums the bias gradient over the rows.
#include "common.h"

namespace mlpzoo {

template <bool kBias>
void gelu_forward(const float* x, const float* b, float* y, int64_t rows, int64_t C) {
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float* xr = x + r * C; float* yr = y + r * C;
        #pragma omp simd
        for (int64_t c = 0; c < C; c++) {
            const float h = kBias ? xr[c] + b[c] : xr[c];
            yr[c] = 0.5f * h * (1.0f + rational_erf(h * 0.70710678118654752f));
        }
    }
}

// x (and b) from the forward, output gradient g -> dx (and the bias gradient db, summed in float64)
template <bool kBias>
void gelu_backward(const float* x, const float* b, const float* g, float* dx, float* db, int64_t rows, int64_t C) {
    const int threads = omp_get_max_threads();
    std::vector<double> part(kBias ? threads * C : 0, 0.0);
    #pragma omp parallel num_threads(threads)
    {
        double* acc = part.data() + omp_get_thread_num() * C;
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const float* xr = x + r * C; const float* gr = g + r * C; float* dr = dx + r * C;
            #pragma omp simd
            for (int64_t c = 0; c < C; c++) {
                const float h = kBias ? xr[c] + b[c] : xr[c];
                const float cdf = 0.5f * (1.0f + rational_erf(h * 0.70710678118654752f));
                const float pdf = 0.3989422804014327f * expf(-0.5f * h * h);
                const float d = gr[c] * (cdf + h * pdf);
                dr[c] = d;
                if (kBias) acc[c] += d;
            }
        }
    }
    if (kBias) column_sums(part, threads, C, db);
}

}  // namespace mlpzoo
