// What every kernel here shares: the erf that GELU needs, the thread-ordered float64 column sums, the tile side.
// Jittor's jt.code compiles each kernel file as text in front of a few lines of glue (jittor_support/cpu_kernels.py
// pastes this file where a kernel includes it); the files also compile on their own, for an editor or a compiler.
#ifndef MLPZOO_COMMON_H
#define MLPZOO_COMMON_H

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace mlpzoo {

// side of the square tiles in which the transposing kernels walk memory, so that both sides of a tile stay in cache
constexpr int64_t kTile = 32;

// erf(x) ~ x * P(x^2) / Q(x^2) on [-4, 4] (beyond, erf is +-1 in float32): the rational form vectorised erf
// kernels use (Eigen's coefficients); max error 4e-7, about Jittor's own erf (2e-7). The Jittor-op form of the
// models' GELU reads these two lists from this file.
constexpr float kErfP[7] = {-1.60960333262415e-02f, -2.95459980854025e-03f, -7.34990630326855e-04f,
                            -5.69250639462346e-05f, -2.10102402082508e-06f, 2.77068142495902e-08f,
                            -2.72614225801306e-10f};
constexpr float kErfQ[5] = {-1.42647390514189e-02f, -7.37332916720468e-03f, -1.68282697438203e-03f,
                            -2.13374055278905e-04f, -1.45660718464996e-05f};

static inline float rational_erf(float x) {
    const float t = fminf(fmaxf(x, -4.0f), 4.0f), t2 = t * t;
    const float p = ((((((kErfP[6] * t2 + kErfP[5]) * t2 + kErfP[4]) * t2 + kErfP[3]) * t2 + kErfP[2]) * t2
                      + kErfP[1]) * t2 + kErfP[0]);
    const float q = ((((kErfQ[4] * t2 + kErfQ[3]) * t2 + kErfQ[2]) * t2 + kErfQ[1]) * t2 + kErfQ[0]);
    return t * p / q;
}

// per-thread float64 column sums (threads x C), added in thread order, so that a sum does not depend on the
// scheduling (only, in its last bit at most, on the thread count)
static inline void column_sums(const std::vector<double>& part, int threads, int64_t C, float* sums) {
    for (int64_t c = 0; c < C; c++) {
        double s = 0.0;
        for (int t = 0; t < threads; t++) s += part[t * C + c];
        sums[c] = (float)s;
    }
}

}  // namespace mlpzoo

#endif  // MLPZOO_COMMON_H
