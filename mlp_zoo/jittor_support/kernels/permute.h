// y = x.permute(order), plus a bias along output axis bias_axis (not the last) if kBias, on all threads (Jittor's
// transpose runs on one). Where the last axis stays last, one output row per iteration is a contiguous copy.
// Where it moves, a tiled transpose between the output's last axis and the output axis that holds the input's
// last (contiguous) axis, for every index of the other axes, so that both sides of a tile stay in cache (one
// element per cache line otherwise: 10x slower); it takes no bias.
//
// kBackward maps the gradient back instead: x is then the output gradient (permuted layout), y the input gradient
// and db the bias gradient (the sum over all axes but bias_axis, in float64 per thread, added in thread order).
#include "common.h"

namespace mlpzoo {

constexpr int kMaxDims = 8;

// shape: the input's; order: the permutation (output axis a is input axis order[a])
template <bool kBias, bool kBackward>
void permute(const float* x, const float* b, float* y, float* db, int dims, const int64_t* shape,
             const int* order, int bias_axis) {
    int64_t strides[kMaxDims] = {}, out_shape[kMaxDims] = {}, out_strides[kMaxDims] = {};
    for (int a = dims - 1; a >= 0; a--) {
        strides[a] = a == dims - 1 ? 1 : strides[a + 1] * shape[a + 1];
        out_shape[a] = shape[order[a]];
    }
    for (int a = dims - 1; a >= 0; a--) out_strides[a] = a == dims - 1 ? 1 : out_strides[a + 1] * out_shape[a + 1];
    const int64_t last = out_shape[dims - 1];

    if (order[dims - 1] != dims - 1) {  // the last axis moves: tiled transpose
        int inner = 0;  // the output axis that is contiguous in the input
        while (order[inner] != dims - 1) inner++;
        int64_t outer = 1;
        for (int a = 0; a < dims - 1; a++) if (a != inner) outer *= out_shape[a];
        const int64_t rows = out_shape[inner], step = strides[order[dims - 1]], out_step = out_strides[inner];
        const int64_t row_tiles = (rows + kTile - 1) / kTile, last_tiles = (last + kTile - 1) / kTile;
        #pragma omp parallel for collapse(2) schedule(static)
        for (int64_t o = 0; o < outer; o++)
        for (int64_t t = 0; t < row_tiles * last_tiles; t++) {
            int64_t rem = o, src = 0, dst = 0;
            for (int a = dims - 2; a >= 0; a--) {
                if (a == inner) continue;
                const int64_t i = rem % out_shape[a]; rem /= out_shape[a];
                src += i * strides[order[a]]; dst += i * out_strides[a];
            }
            const int64_t r0 = (t / last_tiles) * kTile, j0 = (t % last_tiles) * kTile;
            const int64_t r1 = r0 + kTile < rows ? r0 + kTile : rows, j1 = j0 + kTile < last ? j0 + kTile : last;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t j = j0; j < j1; j++)
                    if (kBackward) y[src + r + j * step] = x[dst + r * out_step + j];
                    else y[dst + r * out_step + j] = x[src + r + j * step];
        }
        return;
    }

    int64_t outer = 1;
    for (int a = 0; a < dims - 1; a++) outer *= out_shape[a];
    const int threads = omp_get_max_threads();
    const int64_t bias_size = kBias ? out_shape[bias_axis] : 0;
    std::vector<double> part(kBias && kBackward ? threads * bias_size : 0, 0.0);
    #pragma omp parallel num_threads(threads)
    {
        double* acc = part.data() + omp_get_thread_num() * bias_size;
        #pragma omp for schedule(static)
        for (int64_t o = 0; o < outer; o++) {
            int64_t rem = o, src = 0, bias_index = 0;
            for (int a = dims - 2; a >= 0; a--) {
                const int64_t i = rem % out_shape[a]; rem /= out_shape[a];
                src += i * strides[order[a]];
                if (a == bias_axis) bias_index = i;
            }
            if (kBackward) {
                const float* xs = x + o * last; float* yd = y + src;
                for (int64_t j = 0; j < last; j++) yd[j] = xs[j];
                if (kBias) {
                    double s = 0.0;
                    for (int64_t j = 0; j < last; j++) s += xs[j];
                    acc[bias_index] += s;
                }
            } else {
                const float* xs = x + src; float* yd = y + o * last;
                const float add = kBias ? b[bias_index] : 0.0f;
                for (int64_t j = 0; j < last; j++) yd[j] = kBias ? xs[j] + add : xs[j];
            }
        }
    }
    if (kBias && kBackward) column_sums(part, threads, bias_size, db);
}

}  // namespace mlpzoo
