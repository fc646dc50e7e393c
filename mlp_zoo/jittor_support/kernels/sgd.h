// torch.optim.SGD's update of one parameter p with gradient g: weight decay, momentum (the first step takes the
// gradient as the buffer), dampening and Nesterov as PyTorch applies them. hyper = (lr, weight decay, momentum,
// 1 - dampening), read from memory so that a changed learning rate compiles nothing.
#include "common.h"

namespace mlpzoo {

template <bool kWeightDecay, bool kMomentum, bool kFirst, bool kNesterov>
void sgd_update(const float* p, const float* g, const float* buf, const float* hyper, float* new_p, float* new_buf,
                int64_t n) {
    const float lr = hyper[0], wd = hyper[1], mom = hyper[2], undamped = hyper[3];
    #pragma omp parallel for simd schedule(static) if(n > 32768)
    for (int64_t i = 0; i < n; i++) {
        float d = kWeightDecay ? g[i] + wd * p[i] : g[i];
        if (kMomentum) {
            const float b = kFirst ? d : mom * buf[i] + undamped * d;
            new_buf[i] = b;
            d = kNesterov ? d + mom * b : b;
        }
        new_p[i] = p[i] - lr * d;
    }
}

}  // namespace mlpzoo
