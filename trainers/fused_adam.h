// Adam and AdamW with a one-pass update (what optimizer.type adam/adamw builds).
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace nlpkit {

/// torch::optim::Adam (and AdamW) with a one-pass update: each float32 CPU parameter's moments,
/// weight decay and step are computed in a single loop over its elements (AVX2 + FMA when the
/// CPU has them, split over LibTorch's threads), where LibTorch runs about eight tensor kernels
/// per parameter, each a full pass over memory. The arithmetic is LibTorch's, operation for
/// operation (bias corrections in double, `denom = sqrt(v) / sqrt(1 - beta2^t) + eps`,
/// `p -= lr / (1 - beta1^t) * m / denom`; AdamW first scales p by 1 - lr * weight_decay), so the
/// two agree to float rounding; the state (AdamParamState) and checkpoints are LibTorch's too.
/// Anything else (CUDA, other dtypes, sparse or non-contiguous gradients, amsgrad, a closure)
/// takes LibTorch's own step.
template <class Base, class Options, class State, bool kDecoupled>
class FusedAdamOf : public Base {
 public:
  using Base::Base;
  torch::Tensor step(torch::optim::Optimizer::LossClosure closure = nullptr) override;
  /// Steps that took the one-pass path.
  int64_t fused_steps() const { return fused_steps_; }

 private:
  int64_t fused_steps_ = 0;
};

using FusedAdam = FusedAdamOf<torch::optim::Adam, torch::optim::AdamOptions,
                              torch::optim::AdamParamState, /*kDecoupled=*/false>;
using FusedAdamW = FusedAdamOf<torch::optim::AdamW, torch::optim::AdamWOptions,
                               torch::optim::AdamWParamState, /*kDecoupled=*/true>;

}  // namespace nlpkit
