// y = concat(parts, last axis) @ weight.T without the concat (a 1x1 conv over a channel concat, as sMLPNet's fuse):
// part i, (rows, C), meets the weight's column block i, (Cout, C), read in place with leading dimension k * C, in
// one sgemm, the k products accumulated into y in order (beta = 1), as PyTorch's addmm_ accumulates them. The
// backward writes each part's gradient and each column block of the weight's gradient, in place, by one sgemm each.
//
// The sgemm is oneDNN's, the one Jittor's own matmul calls (extern/mkl). It is declared here rather than included:
// Jittor's include scanner does not resolve oneDNN's include paths, and the symbol is in the process already
// (Jittor loads libdnnl for its mkl ops). oneDNN's C API: row-major, dnnl_dim_t is int64_t, the status an enum.
#include "common.h"

extern "C" int dnnl_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

namespace mlpzoo {

// parts: k pointers to (rows, C); weight (Cout, k * C); y (rows, Cout)
inline void concat_linear_forward(const float* const* parts, int k, const float* weight, float* y, int64_t rows,
                                  int64_t C, int64_t Cout) {
    for (int i = 0; i < k; i++)
        dnnl_sgemm('N', 'T', rows, Cout, C, 1.0f, parts[i], C, weight + i * C, k * C, i ? 1.0f : 0.0f, y, Cout);
}

// g: y's gradient (rows, Cout) -> dparts[i] = g @ weight block i, dweight block i = g.T @ parts[i]
inline void concat_linear_backward(const float* const* parts, int k, const float* weight, const float* g,
                                   float* const* dparts, float* dweight, int64_t rows, int64_t C, int64_t Cout) {
    for (int i = 0; i < k; i++) {
        dnnl_sgemm('N', 'N', rows, C, Cout, 1.0f, g, Cout, weight + i * C, k * C, 0.0f, dparts[i], C);
        dnnl_sgemm('T', 'N', Cout, C, rows, 1.0f, g, Cout, parts[i], C, 0.0f, dweight + i * C, k * C);
    }
}

}  // namespace mlpzoo
