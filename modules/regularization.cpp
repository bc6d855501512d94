#include "modules/regularization.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <numeric>
#include <string>

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

namespace detail {
namespace {

// SplitMix64's output function (Steele et al. 2014): a bijective mix of a 64-bit counter; as
// a counter-based generator it passes BigCrush.
inline uint64_t splitmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// A (numel) uint8 tensor, 1 = keep with probability 1 - p: element i uses 32 bits of
// splitmix64(seed + (i / 2) * golden gamma), the same bits whatever the threads' chunks.
torch::Tensor keep_mask(const torch::Tensor& like, double p, uint64_t seed) {
  torch::Tensor mask = torch::empty(like.sizes(), like.options().dtype(torch::kUInt8));
  uint8_t* out = mask.data_ptr<uint8_t>();
  const int64_t n = mask.numel();
  // Drop when the 32-bit draw is below p * 2^32 (p < 1, so the threshold fits).
  const auto threshold = static_cast<uint32_t>(p * 4294967296.0);
  at::parallel_for(0, (n + 1) / 2, 16384, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const uint64_t bits = splitmix64(seed + static_cast<uint64_t>(k) * 0x9E3779B97F4A7C15ULL);
      const int64_t i = 2 * k;
      out[i] = static_cast<uint32_t>(bits) >= threshold;
      if (i + 1 < n) out[i + 1] = static_cast<uint32_t>(bits >> 32) >= threshold;
    }
  });
  return mask;
}

// x * mask * scale elementwise (contiguous x, uint8 mask), in x's dtype.
torch::Tensor masked_scale(const torch::Tensor& input, const torch::Tensor& mask, double scale) {
  const torch::Tensor x = input.contiguous();
  torch::Tensor y = torch::empty_like(x);
  const uint8_t* m = mask.data_ptr<uint8_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "masked_scale", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* in = x.data_ptr<scalar_t>();
    scalar_t* out = y.data_ptr<scalar_t>();
    const auto s = static_cast<acc_t>(scale);
    at::parallel_for(0, x.numel(), 32768, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        out[i] = m[i] ? static_cast<scalar_t>(static_cast<acc_t>(in[i]) * s) : scalar_t(0);
      }
    });
  });
  return y;
}

// y = x * mask * scale; its backward is itself applied to the gradient, so it differentiates
// any number of times.
class MaskedScale : public torch::autograd::Function<MaskedScale> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& mask, double scale) {
    ctx->save_for_backward({mask});
    ctx->saved_data["scale"] = scale;
    return masked_scale(x, mask, scale);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const torch::Tensor mask = ctx->get_saved_variables()[0];
    return {MaskedScale::apply(grads[0], mask, ctx->saved_data["scale"].toDouble()),
            torch::Tensor(), torch::Tensor()};
  }
};

// -1 = not decided yet (the environment decides on first use), else 0 or 1.
std::atomic<int> torch_masks{-1};

}  // namespace
}  // namespace detail

bool torch_dropout_masks() {
  int value = detail::torch_masks.load();
  if (value < 0) {
    const char* env = std::getenv("NLPKIT_TORCH_DROPOUT");
    const int from_env = env != nullptr && std::string(env) == "1" ? 1 : 0;
    detail::torch_masks.compare_exchange_strong(value, from_env);
    value = detail::torch_masks.load();
  }
  return value == 1;
}

void set_torch_dropout_masks(bool on) { detail::torch_masks.store(on ? 1 : 0); }

torch::Tensor dropout(const torch::Tensor& input, double p, bool training) {
  TORCH_CHECK(p >= 0 && p < 1, "dropout: p must be in [0, 1), got ", p);
  if (!training || p == 0) return input;
  if (!input.device().is_cpu() || torch_dropout_masks()) {
    return torch::dropout(input, p, /*train=*/true);
  }
  uint64_t seed = 0;
  {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    seed = at::check_generator<at::CPUGeneratorImpl>(generator)->random64();
  }
  const torch::Tensor mask = detail::keep_mask(input, p, seed);
  // The float value of 1/(1-p), as ATen's dropout scales its survivors.
  const double scale = static_cast<float>(1.0 / (1.0 - p));
  return detail::MaskedScale::apply(input, mask, scale);
}

DropoutImpl::DropoutImpl(const DropoutOptions& options_) : options(options_) { reset(); }

void DropoutImpl::reset() {
  TORCH_CHECK(options.p() >= 0 && options.p() < 1, "Dropout: p must be in [0, 1), got ",
              options.p());
}

torch::Tensor DropoutImpl::forward(const torch::Tensor& input) {
  return nlpkit::dropout(input, options.p(), is_training());
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

// ---------------------------------------------------------------------------------------------
// InstanceNorm

InstanceNormImpl::InstanceNormImpl(InstanceNormOptions options_) : options(options_) { reset(); }

void InstanceNormImpl::reset() {
  const int64_t c = options.num_features();
  TORCH_CHECK(c > 0, "InstanceNorm: num_features must be positive, got ", c);
  TORCH_CHECK(options.eps() >= 0, "InstanceNorm: eps must be non-negative, got ", options.eps());
  if (options.affine()) {
    weight = register_parameter("weight", torch::empty({c}));
    bias = register_parameter("bias", torch::empty({c}));
  }
  if (options.track_running_stats()) {
    running_mean = register_buffer("running_mean", torch::zeros({c}));
    running_var = register_buffer("running_var", torch::ones({c}));
    num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
  }
  reset_parameters();
}

void InstanceNormImpl::reset_parameters() {
  if (!options.affine()) return;
  torch::NoGradGuard no_grad;
  weight.fill_(1);
  bias.zero_();
}

torch::Tensor InstanceNormImpl::forward(const torch::Tensor& input) {
  const int64_t c = options.num_features();
  TORCH_CHECK(input.dim() >= 3 && input.dim() <= 5,
              "InstanceNorm: expected a 3-D (N, C, L), 4-D (N, C, H, W) or 5-D (N, C, D, H, W) "
              "input, got ",
              input.dim(), "-D input of shape ", input.sizes());
  TORCH_CHECK(input.size(1) == c, "InstanceNorm: expected ", c,
              " channels (num_features) in dimension 1, got input of shape ", input.sizes());
  std::vector<int64_t> channel_shape(input.dim(), 1);
  channel_shape[1] = c;
  std::vector<int64_t> spatial;
  for (int64_t d = 2; d < input.dim(); ++d) spatial.push_back(d);

  torch::Tensor mean, var;
  if (is_training() || !options.track_running_stats()) {
    const int64_t n = input.numel() / (input.size(0) * c);  // positions per instance
    TORCH_CHECK(n > 1 || !is_training(),
                "InstanceNorm: expected more than 1 spatial position when training, got input "
                "of shape ",
                input.sizes());
    mean = input.mean(spatial, /*keepdim=*/true);                    // (N, C, 1, ...)
    var = (input - mean).pow(2).mean(spatial, /*keepdim=*/true);     // biased: normalizes
    if (is_training() && options.track_running_stats()) {
      torch::NoGradGuard no_grad;
      num_batches_tracked.add_(1);
      const double factor = options.momentum();
      // PyTorch runs batch norm on the (1, N*C, ...) view: the running estimates move toward
      // the instances' statistics averaged over the batch, the variance unbiased.
      const torch::Tensor batch_mean = mean.detach().reshape({input.size(0), c}).mean(0);
      const torch::Tensor batch_var =
          (var.detach().reshape({input.size(0), c}) * (static_cast<double>(n) / (n - 1))).mean(0);
      running_mean.mul_(1 - factor).add_(batch_mean, factor);
      running_var.mul_(1 - factor).add_(batch_var, factor);
    }
  } else {
    mean = running_mean.view(channel_shape);
    var = running_var.view(channel_shape);
  }
  torch::Tensor output = (input - mean) * torch::rsqrt(var + options.eps());
  if (options.affine()) output = output * weight.view(channel_shape) + bias.view(channel_shape);
  return output;
}

void InstanceNormImpl::pretty_print(std::ostream& stream) const {
  stream << "InstanceNorm(num_features=" << options.num_features() << ", eps=" << options.eps()
         << ", momentum=" << options.momentum() << ", affine=" << std::boolalpha
         << options.affine() << ", track_running_stats=" << options.track_running_stats() << ")";
}

// ---------------------------------------------------------------------------------------------
// GroupNorm

GroupNormImpl::GroupNormImpl(GroupNormOptions options_) : options(options_) { reset(); }

void GroupNormImpl::reset() {
  const int64_t g = options.num_groups(), c = options.num_channels();
  TORCH_CHECK(g > 0 && c > 0, "GroupNorm: num_groups and num_channels must be positive, got ", g,
              " and ", c);
  TORCH_CHECK(c % g == 0, "GroupNorm: num_channels (", c, ") must be divisible by num_groups (",
              g, ")");
  TORCH_CHECK(options.eps() >= 0, "GroupNorm: eps must be non-negative, got ", options.eps());
  if (options.affine()) {
    weight = register_parameter("weight", torch::empty({c}));
    bias = register_parameter("bias", torch::empty({c}));
  }
  reset_parameters();
}

void GroupNormImpl::reset_parameters() {
  if (!options.affine()) return;
  torch::NoGradGuard no_grad;
  weight.fill_(1);
  bias.zero_();
}

torch::Tensor GroupNormImpl::forward(const torch::Tensor& input) {
  const int64_t g = options.num_groups(), c = options.num_channels();
  TORCH_CHECK(input.dim() >= 2 && input.size(1) == c, "GroupNorm: expected an (N, ", c,
              ", *) input (num_channels in dimension 1), got input of shape ", input.sizes());
  const int64_t n = input.size(0);
  const torch::Tensor grouped = input.reshape({n, g, -1});  // (N, G, C/G * positions)
  const torch::Tensor mean = grouped.mean(-1, /*keepdim=*/true);
  const torch::Tensor var = (grouped - mean).pow(2).mean(-1, /*keepdim=*/true);  // biased
  torch::Tensor output = ((grouped - mean) * torch::rsqrt(var + options.eps())).view(input.sizes());
  if (options.affine()) {
    std::vector<int64_t> channel_shape(input.dim(), 1);
    channel_shape[1] = c;
    output = output * weight.view(channel_shape) + bias.view(channel_shape);
  }
  return output;
}

void GroupNormImpl::pretty_print(std::ostream& stream) const {
  stream << "GroupNorm(num_groups=" << options.num_groups()
         << ", num_channels=" << options.num_channels() << ", eps=" << options.eps()
         << ", affine=" << std::boolalpha << options.affine() << ")";
}

// ---------------------------------------------------------------------------------------------
// Weight normalization

torch::Tensor weight_norm(const torch::Tensor& v, const torch::Tensor& g, int64_t dim) {
  if (dim == -1) return v * (g / v.norm());
  TORCH_CHECK(dim >= 0 && dim < v.dim(), "weight_norm: dim ", dim, " out of range for a ",
              v.dim(), "-D tensor");
  std::vector<int64_t> others;
  for (int64_t d = 0; d < v.dim(); ++d) {
    if (d != dim) others.push_back(d);
  }
  // The L2 norm over every other dimension, kept as size-1 dimensions so that it broadcasts.
  const torch::Tensor norm = others.empty() ? v.abs() : v.norm(2, others, /*keepdim=*/true);
  return v * (g / norm);
}

WeightNormLinearImpl::WeightNormLinearImpl(WeightNormLinearOptions options_)
    : options(options_) {
  reset();
}

void WeightNormLinearImpl::reset() {
  const int64_t in = options.in_features(), out = options.out_features();
  TORCH_CHECK(in > 0 && out > 0, "WeightNormLinear: in_features and out_features must be positive");
  weight_g = register_parameter("weight_g", torch::empty({out, 1}));
  weight_v = register_parameter("weight_v", torch::empty({out, in}));
  if (options.bias()) bias = register_parameter("bias", torch::empty({out}));
  reset_parameters();
}

void WeightNormLinearImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  // torch::nn::Linear's initialisation, then g = ||v|| per row (weight_norm's own init).
  torch::nn::init::kaiming_uniform_(weight_v, std::sqrt(5));
  weight_g.copy_(weight_v.norm(2, {1}, /*keepdim=*/true));
  if (options.bias()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(options.in_features()));
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

torch::Tensor WeightNormLinearImpl::weight() const { return weight_norm(weight_v, weight_g, 0); }

torch::Tensor WeightNormLinearImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() >= 1 && input.size(-1) == options.in_features(),
              "WeightNormLinear: expected an input whose last dimension is ",
              options.in_features(), ", got input of shape ", input.sizes());
  return torch::linear(input, weight(), options.bias() ? bias : torch::Tensor());
}

void WeightNormLinearImpl::pretty_print(std::ostream& stream) const {
  stream << "WeightNormLinear(in_features=" << options.in_features()
         << ", out_features=" << options.out_features() << ", bias=" << std::boolalpha
         << options.bias() << ")";
}

// ---------------------------------------------------------------------------------------------
// R-Drop

namespace {

/// F.kl_div(log_softmax(a), softmax(b), reduction none) = KL(b||a) per element, in float32.
/// xlogy(t, t) is how ATen writes t * log t, so the terms match the reference's rounding.
torch::Tensor kl_terms(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor log_a = torch::log_softmax(a.to(torch::kFloat), -1);
  const torch::Tensor t = torch::softmax(b.to(torch::kFloat), -1);
  return torch::xlogy(t, t) - t * log_a;
}

}  // namespace

torch::Tensor rdrop_kl(const torch::Tensor& p, const torch::Tensor& q,
                       const torch::Tensor& pad_mask) {
  TORCH_CHECK(p.sizes() == q.sizes(),
              "rdrop_kl: the two passes' logits differ in shape: ", p.sizes(), " and ", q.sizes());
  torch::Tensor p_loss = kl_terms(p, q);  // KL(q||p)
  torch::Tensor q_loss = kl_terms(q, p);  // KL(p||q)
  if (pad_mask.defined()) {
    TORCH_CHECK(pad_mask.scalar_type() == torch::kBool, "rdrop_kl: pad_mask must be bool, got ",
                pad_mask.scalar_type());
    p_loss = p_loss.masked_fill(pad_mask, 0.0);
    q_loss = q_loss.masked_fill(pad_mask, 0.0);
  }
  return (p_loss.sum() + q_loss.sum()) / 2;
}

torch::Tensor rdrop_loss(const torch::Tensor& logits1, const torch::Tensor& logits2,
                         const torch::Tensor& labels, double alpha, RDropVariant variant,
                         const torch::Tensor& pad_mask) {
  TORCH_CHECK(alpha >= 0, "rdrop_loss: alpha must be >= 0, got ", alpha);
  TORCH_CHECK(logits1.dim() == labels.dim() + 1,
              "rdrop_loss: expected logits (B, C) with labels (B) or (B, T, C) with (B, T), got ",
              logits1.sizes(), " and ", labels.sizes());
  const int64_t c = logits1.size(-1);
  torch::Tensor l1 = logits1.reshape({-1, c});
  torch::Tensor l2 = logits2.reshape({-1, c});
  torch::Tensor y = labels.reshape({-1});
  if (pad_mask.defined()) {
    TORCH_CHECK(labels.dim() == 2, "rdrop_loss: pad_mask is for token-level logits (B, T, C)");
    const torch::Tensor keep = ~pad_mask.reshape({-1});  // (B*T)
    TORCH_CHECK(keep.size(0) == y.size(0), "rdrop_loss: pad_mask of shape ", pad_mask.sizes(),
                " does not match labels of shape ", labels.sizes());
    const torch::Tensor idx = keep.nonzero().squeeze(1);
    l1 = l1.index_select(0, idx);
    l2 = l2.index_select(0, idx);
    y = y.index_select(0, idx);
  }
  namespace F = torch::nn::functional;
  const auto reduction = variant == RDropVariant::kFairseq
                             ? F::CrossEntropyFuncOptions().reduction(torch::kSum)
                             : F::CrossEntropyFuncOptions().reduction(torch::kMean);
  const torch::Tensor ce1 = F::cross_entropy(l1, y, reduction);
  const torch::Tensor ce2 = F::cross_entropy(l2, y, reduction);
  // The KL sums over the kept rows only, which is the same as zeroing the padded terms.
  const torch::Tensor kl = rdrop_kl(l1, l2);
  const torch::Tensor ce = variant == RDropVariant::kReadme ? 0.5 * (ce1 + ce2) : ce1 + ce2;
  return ce + alpha * kl;
}

// ---------------------------------------------------------------------------------------------
// SiFT

torch::Tensor sift_normalize(const torch::Tensor& x, double eps) {
  return torch::layer_norm(x, {x.size(-1)}, /*weight=*/{}, /*bias=*/{}, eps);
}

torch::Tensor sift_initial_delta(const torch::Tensor& like, double sigma) {
  TORCH_CHECK(sigma > 0, "SiFT: sigma must be > 0, got ", sigma);
  return torch::empty(like.sizes(), like.options().dtype(torch::kFloat))
      .normal_(0, sigma)
      .clamp_(-2 * sigma, 2 * sigma);
}

torch::Tensor sift_ascent_step(const torch::Tensor& delta, const torch::Tensor& grad,
                               double step_size) {
  torch::NoGradGuard no_grad;
  const torch::Tensor scale = 1e-6 + std::get<0>(grad.abs().max(-1, /*keepdim=*/true));
  return delta + step_size * grad / scale;
}

torch::Tensor sift_symmetric_kl(const torch::Tensor& logits, const torch::Tensor& target) {
  TORCH_CHECK(logits.sizes() == target.sizes(), "sift_symmetric_kl: logits ", logits.sizes(),
              " and target ", target.sizes(), " differ in shape");
  const int64_t c = logits.size(-1);
  const torch::Tensor log_s = torch::log_softmax(logits.reshape({-1, c}).to(torch::kFloat), -1);
  const torch::Tensor log_t = torch::log_softmax(target.reshape({-1, c}).to(torch::kFloat), -1);
  const torch::Tensor p_t = log_t.exp().detach();
  const torch::Tensor p_s = log_s.exp().detach();
  return (p_t * -log_s).sum(-1) + (p_s * -log_t).sum(-1);  // (N)
}

torch::Tensor SiftPerturbation::operator()(const torch::Tensor& x) {
  const double eps = options_.layer_norm_eps();
  if (!adversarial_) {
    normalized_ = sift_normalize(x, eps);
    if (!options_.restore_scale()) return normalized_;
    // The statistics the normalisation divided out, to put back after perturbing.
    mean_ = x.mean(-1, /*keepdim=*/true).detach();
    std_ = torch::sqrt(x.var(-1, /*unbiased=*/false, /*keepdim=*/true) + eps).detach();
    return x;
  }
  TORCH_CHECK(normalized_.defined(),
              "SiftPerturbation: an adversarial pass needs a clean pass first");
  TORCH_CHECK(x.sizes() == normalized_.sizes(), "SiftPerturbation: the adversarial pass sees ",
              x.sizes(), ", the clean pass saw ", normalized_.sizes());
  if (!delta_.defined()) {
    delta_ = sift_initial_delta(normalized_, options_.sigma()).requires_grad_(true);
  }
  torch::Tensor perturbed = normalized_.detach().to(torch::kFloat) + delta_;
  if (options_.restore_scale()) perturbed = mean_ + std_ * perturbed;
  return perturbed.to(x.scalar_type());
}

void SiftPerturbation::set_adversarial(bool adversarial) {
  adversarial_ = adversarial;
  if (!adversarial) delta_ = torch::Tensor();
}

void SiftPerturbation::set_delta(const torch::Tensor& delta) {
  delta_ = delta.detach().to(torch::kFloat).clone().requires_grad_(true);
}

bool SiftPerturbation::ascend(const torch::Tensor& grad) {
  TORCH_CHECK(delta_.defined(), "SiftPerturbation: ascend before any adversarial pass");
  if (!torch::isfinite(grad.norm()).item<bool>()) return false;
  delta_ = sift_ascent_step(delta_.detach(), grad, options_.step_size()).requires_grad_(true);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Mixup

double mixup_lambda(double alpha) {
  TORCH_CHECK(alpha > 0, "mixup: alpha must be > 0, got ", alpha);
  const torch::Tensor g = at::_standard_gamma(torch::full({2}, alpha, torch::kDouble));
  const double a = g[0].item<double>(), b = g[1].item<double>();
  // Both draws can underflow to 0 for a tiny alpha (Beta then sits at 0 or 1); either is as
  // good as the other, and 0.5 avoids dividing by 0.
  return a + b > 0 ? a / (a + b) : 0.5;
}

torch::Tensor mixup(const torch::Tensor& x, const torch::Tensor& perm, double lambda) {
  return lambda * x + (1 - lambda) * x.index_select(0, perm);
}

torch::Tensor mixup_cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels,
                                  const torch::Tensor& perm, double lambda) {
  namespace F = torch::nn::functional;
  return lambda * F::cross_entropy(logits, labels) +
         (1 - lambda) * F::cross_entropy(logits, labels.index_select(0, perm));
}

}  // namespace nlpkit
