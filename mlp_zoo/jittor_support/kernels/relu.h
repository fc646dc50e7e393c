// ReLU, max(x, 0); the backward passes the gradient where the output is positive, as PyTorch's does.
#include "common.h"

namespace mlpzoo {

inline void relu_forward(const float* x, float* y, int64_t n) {
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

// (output y of the forward, output gradient g) -> dx
inline void relu_backward(const float* y, const float* g, float* dx, int64_t n) {
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? g[i] : 0.0f;
}

}  // namespace mlpzoo
