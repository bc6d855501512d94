// Regularization and normalization layers written with tensor ops: Dropout (inverted dropout,
// Srivastava et al. 2014), LayerNorm (Ba et al. 2016) and BatchNorm (Ioffe & Szegedy 2015).
// Numerics, parameter and buffer names match torch::nn::Dropout, torch::nn::LayerNorm and
// torch::nn::BatchNorm{1,2}d, so checkpoints interchange with PyTorch's modules.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <vector>

namespace nlpkit {

// ---------------------------------------------------------------------------------------------
// Dropout

/// Options for `Dropout`.
///
/// Example:
/// ```
/// nlpkit::Dropout dropout(nlpkit::DropoutOptions(0.1));
/// ```
struct DropoutOptions {
  /* implicit */ DropoutOptions(double p = 0.5) : p_(p) {}
  /// Probability of zeroing an element, in [0, 1).
  TORCH_ARG(double, p);
};

/// Inverted dropout: in training each element is zeroed with probability `p` and the survivors
/// are scaled by 1/(1-p), so that the expectation is unchanged and eval is the identity.
/// The mask comes from torch's default generator, so `torch::manual_seed` reproduces a run
/// (on CPU the mask is the same as torch::nn::Dropout's for the same seed).
class DropoutImpl : public torch::nn::Cloneable<DropoutImpl> {
 public:
  explicit DropoutImpl(const DropoutOptions& options_ = {});

  void reset() override;
  void reset_parameters() {}

  /// input: any shape -> the same shape.
  torch::Tensor forward(const torch::Tensor& input);

  /// Prints `Dropout(p=0.5)`.
  void pretty_print(std::ostream& stream) const override;

  DropoutOptions options;
};

TORCH_MODULE(Dropout);

// ---------------------------------------------------------------------------------------------
// LayerNorm

/// Options for `LayerNorm`.
///
/// Example:
/// ```
/// nlpkit::LayerNorm norm(nlpkit::LayerNormOptions({768}).eps(1e-12));
/// ```
struct LayerNormOptions {
  /* implicit */ LayerNormOptions(std::vector<int64_t> normalized_shape)
      : normalized_shape_(std::move(normalized_shape)) {}
  /// The trailing dimensions that are normalized together.
  TORCH_ARG(std::vector<int64_t>, normalized_shape);
  /// Added to the variance for numerical stability.
  TORCH_ARG(double, eps) = 1e-5;
  /// Learn a per-element scale `weight` (ones) and shift `bias` (zeros).
  TORCH_ARG(bool, elementwise_affine) = true;
};

/// Layer normalization over the trailing `normalized_shape` dimensions with the biased variance,
/// exactly as torch::nn::LayerNorm: y = (x - mean) / sqrt(var + eps) * weight + bias.
class LayerNormImpl : public torch::nn::Cloneable<LayerNormImpl> {
 public:
  explicit LayerNormImpl(LayerNormOptions options_);
  LayerNormImpl(std::vector<int64_t> normalized_shape)
      : LayerNormImpl(LayerNormOptions(std::move(normalized_shape))) {}

  void reset() override;
  void reset_parameters();

  /// input: (*, normalized_shape...) -> the same shape.
  torch::Tensor forward(const torch::Tensor& input);

  /// Prints `LayerNorm(normalized_shape=[4], eps=1e-05, elementwise_affine=true)`.
  void pretty_print(std::ostream& stream) const override;

  LayerNormOptions options;
  /// (normalized_shape), undefined without elementwise_affine.
  torch::Tensor weight;
  /// (normalized_shape), undefined without elementwise_affine.
  torch::Tensor bias;
};

TORCH_MODULE(LayerNorm);

// ---------------------------------------------------------------------------------------------
// BatchNorm

/// Options for `BatchNorm`.
///
/// Example:
/// ```
/// nlpkit::BatchNorm norm(nlpkit::BatchNormOptions(64).momentum(0.01));
/// ```
struct BatchNormOptions {
  /* implicit */ BatchNormOptions(int64_t num_features) : num_features_(num_features) {}
  /// C, the size of dimension 1 of the input.
  TORCH_ARG(int64_t, num_features);
  /// Added to the variance for numerical stability.
  TORCH_ARG(double, eps) = 1e-5;
  /// Weight of the new batch in the running estimates; nullopt = cumulative average
  /// (factor 1/num_batches_tracked), as in PyTorch.
  TORCH_ARG(std::optional<double>, momentum) = 0.1;
  /// Learn a per-channel scale `weight` (ones) and shift `bias` (zeros).
  TORCH_ARG(bool, affine) = true;
  /// Keep running_mean/running_var/num_batches_tracked and use them in eval; without them
  /// eval normalizes with the batch statistics too.
  TORCH_ARG(bool, track_running_stats) = true;
};

/// Batch normalization over every dimension but the channel dimension 1, for (N, C), (N, C, L)
/// and (N, C, H, W) inputs: one module covers PyTorch's BatchNorm1d and BatchNorm2d, with their
/// parameter and buffer names (weight, bias, running_mean, running_var, num_batches_tracked).
/// Training normalizes with the batch mean and biased variance and moves the running estimates
/// toward the batch mean and the unbiased variance; eval uses the running estimates.
class BatchNormImpl : public torch::nn::Cloneable<BatchNormImpl> {
 public:
  explicit BatchNormImpl(BatchNormOptions options_);
  BatchNormImpl(int64_t num_features) : BatchNormImpl(BatchNormOptions(num_features)) {}

  void reset() override;
  void reset_parameters();
  /// Running mean 0, running variance 1, num_batches_tracked 0.
  void reset_running_stats();

  /// input: (N, C), (N, C, L) or (N, C, H, W) -> the same shape.
  torch::Tensor forward(const torch::Tensor& input);

  /// Prints `BatchNorm(num_features=4, eps=1e-05, momentum=0.1, affine=true,
  /// track_running_stats=true)`.
  void pretty_print(std::ostream& stream) const override;

  BatchNormOptions options;
  /// (C), undefined without affine.
  torch::Tensor weight;
  /// (C), undefined without affine.
  torch::Tensor bias;
  /// (C), undefined without track_running_stats.
  torch::Tensor running_mean;
  /// (C), undefined without track_running_stats.
  torch::Tensor running_var;
  /// int64 scalar, undefined without track_running_stats.
  torch::Tensor num_batches_tracked;
};

TORCH_MODULE(BatchNorm);

}  // namespace nlpkit
