// Vision Permutator's branch work on (B, H, W, G, S) positions: the split of x into the H and W branches' inputs,
// the pool of the three branches for their weights, and their weighted sum, each forward and backward.
//
// The channel branch c is (B, H, W, G, S), the H branch h comes as the H-mixing product's (B, W, G, H, S) and the
// W branch w as (B, H, G, W, S), so that no permute is ever materialised. A task is a tile of kPermutatorTile rows
// i of one sample b: c and w are read in contiguous runs and h in runs of kPermutatorTile * S floats (S is 6 in
// ViP-S/7's first stage: one (b, g) per task read 24 bytes of every 64-byte cache line and took 2.5x as long).
// Sums over (i, j) are taken per task in float64 and added in task order, so they do not depend on the thread
// count.
#include "common.h"

namespace mlpzoo {

constexpr int64_t kPermutatorTile = 4;

struct Positions {
    int64_t B, H, W, G, S;
    int64_t tiles() const { return (H + kPermutatorTile - 1) / kPermutatorTile; }
};

// runs body(b, g, ct, ht, wt, acc) for every (b, i, j, g), with ct, ht, wt the offsets of the S-run in the c, h
// and w layouts; with kSums > 0, acc holds the task's G * S * kSums float64 sums (zeroed), and finish(b, total)
// then reads each sample's totals
template <int64_t kSums, class Body, class Finish>
void permutator_tasks(const Positions& x, Body body, Finish finish) {
    const int64_t B = x.B, H = x.H, W = x.W, G = x.G, S = x.S, tiles = x.tiles(), sums = G * S * kSums;
    std::vector<double> part(B * tiles * sums);
    #pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < B * tiles; bt++) {
        const int64_t b = bt / tiles, i0 = (bt % tiles) * kPermutatorTile;
        const int64_t i1 = i0 + kPermutatorTile < H ? i0 + kPermutatorTile : H;
        double* acc = part.data() + bt * sums;
        for (int64_t k = 0; k < sums; k++) acc[k] = 0.0;
        for (int64_t i = i0; i < i1; i++)
            for (int64_t j = 0; j < W; j++)
                for (int64_t g = 0; g < G; g++) {
                    const int64_t ct = (((b * H + i) * W + j) * G + g) * S;
                    const int64_t ht = (((b * W + j) * G + g) * H + i) * S;
                    const int64_t wt = (((b * H + i) * G + g) * W + j) * S;
                    body(b, g, ct, ht, wt, acc);
                }
    }
    if (kSums == 0) return;
    for (int64_t b = 0; b < B; b++) {
        std::vector<double> total(sums, 0.0);
        for (int64_t t = 0; t < tiles; t++) {
            const double* p = part.data() + (b * tiles + t) * sums;
            for (int64_t k = 0; k < sums; k++) total[k] += p[k];
        }
        finish(b, total.data());
    }
}

inline void permutator_no_finish(int64_t, const double*) {}

// x -> (the H branch's input yh, the W branch's yw)
inline void permutator_split_forward(const Positions& d, const float* x, float* yh, float* yw) {
    const int64_t S = d.S;
    permutator_tasks<0>(d, [&](int64_t, int64_t, int64_t ct, int64_t ht, int64_t wt, double*) {
        const float* xr = x + ct;
        for (int64_t s = 0; s < S; s++) { yh[ht + s] = xr[s]; yw[wt + s] = xr[s]; }
    }, permutator_no_finish);
}

// the gradients of x passed through (gx), of the H branch's input (gh) and the W branch's (gw) -> dx
inline void permutator_split_backward(const Positions& d, const float* gx, const float* gh, const float* gw,
                                      float* dx) {
    const int64_t S = d.S;
    permutator_tasks<0>(d, [&](int64_t, int64_t, int64_t ct, int64_t ht, int64_t wt, double*) {
        for (int64_t s = 0; s < S; s++) dx[ct + s] = (gx[ct + s] + gh[ht + s]) + gw[wt + s];
    }, permutator_no_finish);
}

// the mean over H and W of c + h + w, as (B, G * S)
inline void permutator_pool_forward(const Positions& d, const float* c, const float* h, const float* w,
                                    float* pooled) {
    const int64_t S = d.S, GS = d.G * d.S, HW = d.H * d.W;
    permutator_tasks<1>(d, [&](int64_t, int64_t g, int64_t ct, int64_t ht, int64_t wt, double* acc) {
        for (int64_t s = 0; s < S; s++) acc[g * S + s] += (c[ct + s] + h[ht + s]) + w[wt + s];
    }, [&](int64_t b, const double* total) {
        for (int64_t k = 0; k < GS; k++) pooled[b * GS + k] = (float)(total[k] / HW);
    });
}

// the pooled gradient dp spread over H and W, added to the gradients c, h and w get from the branch fusion
inline void permutator_pool_backward(const Positions& d, const float* dp, const float* gc, const float* gh,
                                     const float* gw, float* dc, float* dh, float* dw) {
    const int64_t S = d.S, G = d.G;
    const float inv = 1.0f / (d.H * d.W);
    permutator_tasks<0>(d, [&](int64_t b, int64_t g, int64_t ct, int64_t ht, int64_t wt, double*) {
        const float* dpr = dp + (b * G + g) * S;
        for (int64_t s = 0; s < S; s++) {
            const float v = dpr[s] * inv;
            dc[ct + s] = gc[ct + s] + v; dh[ht + s] = gh[ht + s] + v; dw[wt + s] = gw[wt + s] + v;
        }
    }, permutator_no_finish);
}

// c * a[..., 2] + h * a[..., 0] + w * a[..., 1], with a the (B, G, S, 3) branch weights
inline void permutator_mix_forward(const Positions& d, const float* c, const float* h, const float* w,
                                   const float* a, float* y) {
    const int64_t S = d.S, G = d.G;
    permutator_tasks<0>(d, [&](int64_t b, int64_t g, int64_t ct, int64_t ht, int64_t wt, double*) {
        const float* ag = a + (b * G + g) * S * 3;
        for (int64_t s = 0; s < S; s++)
            y[ct + s] = (c[ct + s] * ag[3 * s + 2] + h[ht + s] * ag[3 * s]) + w[wt + s] * ag[3 * s + 1];
    }, permutator_no_finish);
}

// output gradient dy -> (dc, dh, dw, the branch weights' gradient da)
inline void permutator_mix_backward(const Positions& d, const float* c, const float* h, const float* w,
                                    const float* a, const float* dy, float* dc, float* dh, float* dw, float* da) {
    const int64_t S = d.S, G = d.G, GS3 = d.G * d.S * 3;
    permutator_tasks<3>(d, [&](int64_t b, int64_t g, int64_t ct, int64_t ht, int64_t wt, double* acc) {
        const float* ag = a + (b * G + g) * S * 3; double* ac = acc + g * S * 3;
        for (int64_t s = 0; s < S; s++) {
            const float v = dy[ct + s];
            dc[ct + s] = v * ag[3 * s + 2]; dh[ht + s] = v * ag[3 * s]; dw[wt + s] = v * ag[3 * s + 1];
            ac[3 * s] += (double)v * h[ht + s];
            ac[3 * s + 1] += (double)v * w[wt + s];
            ac[3 * s + 2] += (double)v * c[ct + s];
        }
    }, [&](int64_t b, const double* total) {
        for (int64_t k = 0; k < GS3; k++) da[b * GS3 + k] = (float)total[k];
    });
}

}  // namespace mlpzoo
