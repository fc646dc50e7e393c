// The end of a residual block's last linear in one pass: y = residual + drop_path(m + bias), the bias along m's
// last axis. Drop path as PyTorch computes it, (value * mask) / keep, with a 0-or-1 mask per sample.
//
// Rows (kTranspose false): m, residual and y are (rows, Q), rows / B consecutive rows per sample.
// kTranspose (Mixer's token MLP): m is (B, P, Q) and residual and y are (B, Q, P), walked in kTile x kTile tiles so
// that both sides of a tile stay in cache.
// The backward takes the gradient of y (and the mask) to the gradient of m (where it is not the gradient itself:
// with kMask or kTranspose) and the bias gradient, summed in float64 per thread and added in thread order.
#include "common.h"

namespace mlpzoo {

// runs body(bb, p0, p1, q, mk) for every (sample bb, tile of (p, q)) of (B, P, Q) on the threads of the enclosing
// parallel region; mk is the sample's drop-path mask (1 without one)
template <bool kMask, class Body>
void bias_residual_tiles(const float* mask, int64_t B, int64_t P, int64_t Q, Body body) {
    const int64_t pt = (P + kTile - 1) / kTile, qt = (Q + kTile - 1) / kTile;
    #pragma omp for collapse(2) schedule(static)
    for (int64_t bb = 0; bb < B; bb++)
    for (int64_t t = 0; t < pt * qt; t++) {
        const int64_t p0 = (t / qt) * kTile, q0 = (t % qt) * kTile;
        const int64_t p1 = p0 + kTile < P ? p0 + kTile : P, q1 = q0 + kTile < Q ? q0 + kTile : Q;
        const float mk = kMask ? mask[bb] : 1.0f;
        for (int64_t q = q0; q < q1; q++) body(bb * P * Q, p0, p1, q, mk);
    }
}

template <bool kMask, bool kTranspose>
void bias_residual_forward(const float* m, const float* b, const float* r, const float* mask, float* y, int64_t B,
                           int64_t P, int64_t Q, float keep) {
    if (kTranspose) {
        #pragma omp parallel
        bias_residual_tiles<kMask>(mask, B, P, Q, [&](int64_t base, int64_t p0, int64_t p1, int64_t q, float mk) {
            const float bq = b[q];
            for (int64_t p = p0; p < p1; p++) {
                const float v = m[base + p * Q + q] + bq;
                y[base + q * P + p] = r[base + q * P + p] + (kMask ? (v * mk) / keep : v);
            }
        });
        return;
    }
    const int64_t rows = B * P, per = P;
    #pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < rows; o++) {
        const float mk = kMask ? mask[o / per] : 1.0f;
        const float* mo = m + o * Q; const float* ro = r + o * Q; float* yo = y + o * Q;
        #pragma omp simd
        for (int64_t c = 0; c < Q; c++) {
            const float v = mo[c] + b[c];
            yo[c] = ro[c] + (kMask ? (v * mk) / keep : v);
        }
    }
}

// gradient g of y (and the mask) -> dm (written only with kMask or kTranspose) and the bias gradient db
template <bool kMask, bool kTranspose>
void bias_residual_backward(const float* g, const float* mask, float* dm, float* db, int64_t B, int64_t P,
                            int64_t Q, float keep) {
    const int threads = omp_get_max_threads();
    std::vector<double> part(threads * Q, 0.0);
    #pragma omp parallel num_threads(threads)
    {
        double* acc = part.data() + omp_get_thread_num() * Q;
        if (kTranspose) {
            bias_residual_tiles<kMask>(mask, B, P, Q, [&](int64_t base, int64_t p0, int64_t p1, int64_t q, float mk) {
                double s = 0.0;
                for (int64_t p = p0; p < p1; p++) {
                    const float v = g[base + q * P + p], d = kMask ? (v * mk) / keep : v;
                    dm[base + p * Q + q] = d; s += d;
                }
                acc[q] += s;
            });
        } else {
            const int64_t rows = B * P, per = P;
            #pragma omp for schedule(static)
            for (int64_t o = 0; o < rows; o++) {
                const float mk = kMask ? mask[o / per] : 1.0f;
                const float* go = g + o * Q; float* dmo = kMask ? dm + o * Q : nullptr;
                #pragma omp simd
                for (int64_t c = 0; c < Q; c++) {
                    const float d = kMask ? (go[c] * mk) / keep : go[c];
                    acc[c] += d;
                    if (kMask) dmo[c] = d;
                }
            }
        }
    }
    column_sums(part, threads, Q, db);
}

}  // namespace mlpzoo
