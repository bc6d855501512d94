#include "modules/regularization.h"

#include <numeric>

namespace nlpkit {

namespace {

// Prints [a, b, c] like PyTorch prints shapes.
void print_shape(std::ostream& stream, const std::vector<int64_t>& shape) {
  stream << "[";
  for (size_t i = 0; i < shape.size(); ++i) stream << (i ? ", " : "") << shape[i];
  stream << "]";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Dropout

DropoutImpl::DropoutImpl(const DropoutOptions& options_) : options(options_) { reset(); }

void DropoutImpl::reset() {
  TORCH_CHECK(options.p() >= 0 && options.p() < 1, "Dropout: p must be in [0, 1), got ",
              options.p());
}

torch::Tensor DropoutImpl::forward(const torch::Tensor& input) {
  const double p = options.p();
  if (!is_training() || p == 0) return input;
  // Same draw order and arithmetic as ATen's CPU dropout: bernoulli_(1 - p), then divide the mask
  // so that survivors are scaled by exactly the float value of 1/(1-p).
  torch::Tensor mask = torch::empty_like(input, torch::MemoryFormat::Contiguous).bernoulli_(1 - p);
  mask.div_(1 - p);
  return input * mask;
}

void DropoutImpl::pretty_print(std::ostream& stream) const {
  stream << "Dropout(p=" << options.p() << ")";
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

LayerNormImpl::LayerNormImpl(LayerNormOptions options_) : options(std::move(options_)) { reset(); }

void LayerNormImpl::reset() {
  const auto& shape = options.normalized_shape();
  TORCH_CHECK(!shape.empty(), "LayerNorm: normalized_shape must not be empty");
  for (int64_t d : shape) {
    TORCH_CHECK(d > 0, "LayerNorm: normalized_shape entries must be positive, got ", d);
  }
  TORCH_CHECK(options.eps() >= 0, "LayerNorm: eps must be non-negative, got ", options.eps());
  if (options.elementwise_affine()) {
    weight = register_parameter("weight", torch::empty(shape));
    bias = register_parameter("bias", torch::empty(shape));
  } else {
    weight = torch::Tensor();
    bias = torch::Tensor();
  }
  reset_parameters();
}

void LayerNormImpl::reset_parameters() {
  if (!options.elementwise_affine()) return;
  torch::NoGradGuard no_grad;
  weight.fill_(1);
  bias.zero_();
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& input) {
  const auto& shape = options.normalized_shape();
  const int64_t k = static_cast<int64_t>(shape.size());
  const bool trailing_match =
      input.dim() >= k && input.sizes().slice(input.dim() - k).equals(torch::IntArrayRef(shape));
  TORCH_CHECK(trailing_match, "LayerNorm: expected an input whose last ", k,
              " dimension(s) are normalized_shape ", torch::IntArrayRef(shape),
              ", got input of shape ", input.sizes());
  std::vector<int64_t> dims(k);
  std::iota(dims.begin(), dims.end(), input.dim() - k);
  torch::Tensor mean = input.mean(dims, /*keepdim=*/true);
  torch::Tensor centered = input - mean;
  torch::Tensor var = centered.pow(2).mean(dims, /*keepdim=*/true);  // biased, as PyTorch
  torch::Tensor output = centered * torch::rsqrt(var + options.eps());
  if (options.elementwise_affine()) output = output * weight + bias;
  return output;
}

void LayerNormImpl::pretty_print(std::ostream& stream) const {
  stream << "LayerNorm(normalized_shape=";
  print_shape(stream, options.normalized_shape());
  stream << ", eps=" << options.eps()
         << ", elementwise_affine=" << (options.elementwise_affine() ? "true" : "false") << ")";
}

// ---------------------------------------------------------------------------------------------
// BatchNorm

BatchNormImpl::BatchNormImpl(BatchNormOptions options_) : options(std::move(options_)) { reset(); }

void BatchNormImpl::reset() {
  const int64_t c = options.num_features();
  TORCH_CHECK(c > 0, "BatchNorm: num_features must be positive, got ", c);
  TORCH_CHECK(options.eps() >= 0, "BatchNorm: eps must be non-negative, got ", options.eps());
  if (options.momentum()) {
    const double m = *options.momentum();
    TORCH_CHECK(m >= 0 && m <= 1, "BatchNorm: momentum must be in [0, 1], got ", m);
  }
  if (options.affine()) {
    weight = register_parameter("weight", torch::empty({c}));
    bias = register_parameter("bias", torch::empty({c}));
  } else {
    weight = torch::Tensor();
    bias = torch::Tensor();
  }
  if (options.track_running_stats()) {
    running_mean = register_buffer("running_mean", torch::zeros({c}));
    running_var = register_buffer("running_var", torch::ones({c}));
    num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
  } else {
    running_mean = torch::Tensor();
    running_var = torch::Tensor();
    num_batches_tracked = torch::Tensor();
  }
  reset_parameters();
}

void BatchNormImpl::reset_running_stats() {
  if (!options.track_running_stats()) return;
  torch::NoGradGuard no_grad;
  running_mean.zero_();
  running_var.fill_(1);
  num_batches_tracked.zero_();
}

void BatchNormImpl::reset_parameters() {
  reset_running_stats();
  if (!options.affine()) return;
  torch::NoGradGuard no_grad;
  weight.fill_(1);
  bias.zero_();
}

torch::Tensor BatchNormImpl::forward(const torch::Tensor& input) {
  const int64_t c = options.num_features();
  TORCH_CHECK(input.dim() >= 2 && input.dim() <= 4,
              "BatchNorm: expected a 2-D (N, C), 3-D (N, C, L) or 4-D (N, C, H, W) input, got ",
              input.dim(), "-D input of shape ", input.sizes());
  TORCH_CHECK(input.size(1) == c, "BatchNorm: expected ", c,
              " channels (num_features) in dimension 1, got input of shape ", input.sizes());

  // Per-channel tensors broadcast as (1, C, 1, ...).
  std::vector<int64_t> channel_shape(input.dim(), 1);
  channel_shape[1] = c;
  std::vector<int64_t> reduce_dims = {0};
  for (int64_t d = 2; d < input.dim(); ++d) reduce_dims.push_back(d);

  const bool use_batch_stats = is_training() || !options.track_running_stats();
  torch::Tensor mean, var;
  if (use_batch_stats) {
    const int64_t n = input.numel() / c;  // values per channel
    TORCH_CHECK(n > 1,
                "BatchNorm: expected more than 1 value per channel when training, got input "
                "of shape ",
                input.sizes());
    mean = input.mean(reduce_dims, /*keepdim=*/true);
    var = (input - mean).pow(2).mean(reduce_dims, /*keepdim=*/true);  // biased: normalizes
    if (is_training() && options.track_running_stats()) {
      torch::NoGradGuard no_grad;
      num_batches_tracked.add_(1);
      const double factor = options.momentum()
                                ? *options.momentum()
                                : 1.0 / static_cast<double>(num_batches_tracked.item<int64_t>());
      // The running variance estimates the population variance: unbiased, as PyTorch.
      const torch::Tensor unbiased = var.detach().reshape({c}) * (static_cast<double>(n) / (n - 1));
      running_mean.mul_(1 - factor).add_(mean.detach().reshape({c}), factor);
      running_var.mul_(1 - factor).add_(unbiased, factor);
    }
  } else {
    mean = running_mean.view(channel_shape);
    var = running_var.view(channel_shape);
  }
  torch::Tensor output = (input - mean) * torch::rsqrt(var + options.eps());
  if (options.affine()) output = output * weight.view(channel_shape) + bias.view(channel_shape);
  return output;
}

void BatchNormImpl::pretty_print(std::ostream& stream) const {
  stream << "BatchNorm(num_features=" << options.num_features() << ", eps=" << options.eps()
         << ", momentum=";
  if (options.momentum()) {
    stream << *options.momentum();
  } else {
    stream << "none";
  }
  stream << ", affine=" << (options.affine() ? "true" : "false")
         << ", track_running_stats=" << (options.track_running_stats() ? "true" : "false") << ")";
}

}  // namespace nlpkit
