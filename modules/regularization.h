// Regularization and normalization layers written with tensor ops: Dropout (inverted dropout,
// Srivastava et al. 2014), LayerNorm (Ba et al. 2016), BatchNorm (Ioffe & Szegedy 2015),
// InstanceNorm (Ulyanov et al. 2016), GroupNorm (Wu & He 2018) and weight normalization
// (Salimans & Kingma 2016). Numerics, parameter and buffer names match PyTorch's modules
// (torch::nn::LayerNorm, BatchNorm{1,2}d, InstanceNorm{1,2,3}d, GroupNorm, weight_norm), so
// checkpoints interchange with PyTorch's. Dropout's masks come from a faster generator
// (below).
//
// Below them, the maths of the regularizers that change a training step (the step itself is
// trainers/regularizers.h):
// - R-Drop (Liang et al. 2021): the symmetric KL between two dropout passes and the three
//   reference weightings of dropreg/R-Drop (its README recipe, its fairseq criterion, its
//   HuggingFace BERT `bert_kl`).
// - SiFT (He et al. 2021, DeBERTa's scale-invariant fine-tuning; microsoft/DeBERTa sift.py): the
//   perturbation of the normalised embedding, its one ascent step and the symmetric-KL loss.
// - Mixup (Zhang et al. 2018; for text Guo et al. 2019): lambda ~ Beta(alpha, alpha) and the
//   mixed-label cross-entropy.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
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

/// Inverted dropout as a function: in training each element is zeroed with probability `p` and
/// the survivors are scaled by 1/(1-p), so that the expectation is unchanged; outside training
/// (or with p == 0) it returns `input` itself.
///
/// On CPU the keep/drop decisions come from a counter-based generator (SplitMix64 of a 64-bit
/// seed plus the element's index, 32 bits per element) instead of ATen's `bernoulli_`, which
/// draws one double per element serially under a lock (10% of a BERT training step on CPU).
/// The seed is drawn from torch's default CPU generator, so `torch::manual_seed` reproduces a
/// run and the masks do not depend on the number of threads. The mask is kept as bytes (a
/// quarter of ATen's float mask) and the backward is twice differentiable.
/// On CUDA, and on CPU when `torch_dropout_masks()` is on, this is `torch::dropout` itself:
/// the same masks as PyTorch for the same seed (for bitwise comparisons with a PyTorch run).
torch::Tensor dropout(const torch::Tensor& input, double p, bool training);

/// Whether `dropout` draws ATen's masks on CPU; initially whether the environment sets
/// NLPKIT_TORCH_DROPOUT=1.
bool torch_dropout_masks();
/// Switches ATen's masks on or off for the whole process.
void set_torch_dropout_masks(bool on);

/// Module form of `dropout` (same numerics; torch::nn::Dropout's printout without `inplace`).
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

// ---------------------------------------------------------------------------------------------
// InstanceNorm, GroupNorm, weight normalization

/// Options for `InstanceNorm`.
///
/// Example:
/// ```
/// nlpkit::InstanceNorm norm(nlpkit::InstanceNormOptions(64).affine(true));
/// ```
struct InstanceNormOptions {
  /* implicit */ InstanceNormOptions(int64_t num_features) : num_features_(num_features) {}
  /// C, the size of dimension 1 of the input.
  TORCH_ARG(int64_t, num_features);
  /// Added to the variance for numerical stability.
  TORCH_ARG(double, eps) = 1e-5;
  /// Weight of the new batch in the running estimates (with track_running_stats).
  TORCH_ARG(double, momentum) = 0.1;
  /// Learn a per-channel scale `weight` (ones) and shift `bias` (zeros). PyTorch's default: off.
  TORCH_ARG(bool, affine) = false;
  /// Keep running estimates (the batch's average of the instances' statistics) and use them in
  /// eval. PyTorch's default: off, so eval normalizes each instance too.
  TORCH_ARG(bool, track_running_stats) = false;
};

/// Instance normalization (Ulyanov et al. 2016): each (example, channel) is normalized over its
/// own spatial positions, for (N, C, L), (N, C, H, W) and (N, C, D, H, W) inputs: one module for
/// PyTorch's InstanceNorm1d/2d/3d, with their names and numerics (biased variance to normalize,
/// unbiased in the running estimate).
class InstanceNormImpl : public torch::nn::Cloneable<InstanceNormImpl> {
 public:
  explicit InstanceNormImpl(InstanceNormOptions options_);
  InstanceNormImpl(int64_t num_features) : InstanceNormImpl(InstanceNormOptions(num_features)) {}

  void reset() override;
  void reset_parameters();

  /// input: (N, C, *spatial) with 1 to 3 spatial dimensions -> the same shape.
  torch::Tensor forward(const torch::Tensor& input);

  /// Prints `InstanceNorm(num_features=4, eps=1e-05, momentum=0.1, affine=false,
  /// track_running_stats=false)`.
  void pretty_print(std::ostream& stream) const override;

  InstanceNormOptions options;
  /// (C), undefined without affine.
  torch::Tensor weight, bias;
  /// (C) and an int64 scalar, undefined without track_running_stats.
  torch::Tensor running_mean, running_var, num_batches_tracked;
};

TORCH_MODULE(InstanceNorm);

/// Options for `GroupNorm`.
///
/// Example:
/// ```
/// nlpkit::GroupNorm norm(nlpkit::GroupNormOptions(/*num_groups=*/8, /*num_channels=*/64));
/// ```
struct GroupNormOptions {
  GroupNormOptions(int64_t num_groups, int64_t num_channels)
      : num_groups_(num_groups), num_channels_(num_channels) {}
  /// G; num_channels must be divisible by it. G = 1 is LayerNorm over (C, *), G = C is
  /// InstanceNorm with an affine transform.
  TORCH_ARG(int64_t, num_groups);
  /// C, the size of dimension 1 of the input.
  TORCH_ARG(int64_t, num_channels);
  /// Added to the variance for numerical stability.
  TORCH_ARG(double, eps) = 1e-5;
  /// Learn a per-channel scale `weight` (ones) and shift `bias` (zeros).
  TORCH_ARG(bool, affine) = true;
};

/// Group normalization (Wu & He 2018): the channels of each example are split into G groups,
/// each normalized over its channels and positions with the biased variance; then the
/// per-channel affine transform. No running statistics: train and eval compute the same.
/// Names and numerics of torch::nn::GroupNorm.
class GroupNormImpl : public torch::nn::Cloneable<GroupNormImpl> {
 public:
  explicit GroupNormImpl(GroupNormOptions options_);

  void reset() override;
  void reset_parameters();

  /// input: (N, C, *) -> the same shape.
  torch::Tensor forward(const torch::Tensor& input);

  /// Prints `GroupNorm(num_groups=2, num_channels=4, eps=1e-05, affine=true)`.
  void pretty_print(std::ostream& stream) const override;

  GroupNormOptions options;
  /// (C), undefined without affine.
  torch::Tensor weight, bias;
};

TORCH_MODULE(GroupNorm);

/// Weight normalization (Salimans & Kingma 2016): w = g * v / ||v||, the norm taken over every
/// dimension but `dim` (g has v's size along `dim` and 1 elsewhere); dim = -1 takes one norm
/// over the whole tensor. The same value as torch::_weight_norm(v, g, dim) and PyTorch's
/// torch.nn.utils.weight_norm.
torch::Tensor weight_norm(const torch::Tensor& v, const torch::Tensor& g, int64_t dim = 0);

/// Options for `WeightNormLinear`.
struct WeightNormLinearOptions {
  WeightNormLinearOptions(int64_t in_features, int64_t out_features)
      : in_features_(in_features), out_features_(out_features) {}
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, out_features);
  TORCH_ARG(bool, bias) = true;
};

/// A Linear layer whose weight is reparameterised by `weight_norm` along the output dimension:
/// y = x (g * v / ||v||_row)^T + b. Parameters are named as PyTorch names them after
/// torch.nn.utils.weight_norm(nn.Linear(...)): weight_g (out, 1), weight_v (out, in), bias.
/// Initialised like torch::nn::Linear, with g = ||v|| so that the first weight is v.
class WeightNormLinearImpl : public torch::nn::Cloneable<WeightNormLinearImpl> {
 public:
  explicit WeightNormLinearImpl(WeightNormLinearOptions options_);

  void reset() override;
  void reset_parameters();

  /// The effective (out, in) weight.
  torch::Tensor weight() const;
  /// input: (*, in) -> (*, out).
  torch::Tensor forward(const torch::Tensor& input);

  /// Prints `WeightNormLinear(in_features=3, out_features=2, bias=true)`.
  void pretty_print(std::ostream& stream) const override;

  WeightNormLinearOptions options;
  torch::Tensor weight_g, weight_v, bias;
};

TORCH_MODULE(WeightNormLinear);

/// A function a model applies to one of its intermediate tensors (a forward hook): given the
/// tensor, returns the tensor the model continues with. Empty = identity.
using TensorHook = std::function<torch::Tensor(const torch::Tensor&)>;

// ---------------------------------------------------------------------------------------------
// R-Drop

/// Which reference weighting of the R-Drop loss (dropreg/R-Drop):
/// - kReadme: 0.5 * (CE1 + CE2) + alpha * kl, CE the mean over examples (or real tokens);
/// - kFairseq: NLL1 + NLL2 summed over examples (or real tokens) + alpha * kl (the fairseq
///   RoBERTa criterion, reg_alpha = alpha);
/// - kBert: CE1 + CE2 (means) + alpha * kl (the modified BertForSequenceClassification's
///   `bert_kl`, which hard-codes alpha = 0.5).
enum class RDropVariant { kReadme, kFairseq, kBert };

/// R-Drop's KL term: (sum KL(q||p) + sum KL(p||q)) / 2 with the sums over every element and
/// KL computed on float32 softmaxes, as F.kl_div(log_softmax(a), softmax(b), 'none').
/// p, q: logits (..., C) of the two passes; pad_mask (optional): bool, broadcastable to the
/// logits, true at padded positions, whose terms are set to 0 before the sums. Returns a scalar.
torch::Tensor rdrop_kl(const torch::Tensor& p, const torch::Tensor& q,
                       const torch::Tensor& pad_mask = {});

/// The R-Drop training loss of two passes' logits (B, C) or token-level (B, T, C) with labels
/// (B) or (B, T): both cross-entropies, weighted as `variant` says, plus alpha * rdrop_kl.
/// pad_mask: bool (B, T) or (B, T, 1), true at padding, only for token-level logits (padded
/// positions count in neither the cross-entropies nor the KL).
///
/// Example:
/// ```
/// torch::Tensor loss = nlpkit::rdrop_loss(model(x), model(x), y, /*alpha=*/4.0,
///                                         nlpkit::RDropVariant::kReadme);
/// ```
torch::Tensor rdrop_loss(const torch::Tensor& logits1, const torch::Tensor& logits2,
                         const torch::Tensor& labels, double alpha, RDropVariant variant,
                         const torch::Tensor& pad_mask = {});

// ---------------------------------------------------------------------------------------------
// SiFT

/// Options of the SiFT perturbation; defaults are microsoft/DeBERTa's.
struct SiftOptions {
  /// Standard deviation of the initial perturbation delta0 ~ N(0, sigma^2), clamped to
  /// [-2 sigma, 2 sigma] (DeBERTa: init_perturbation).
  TORCH_ARG(double, sigma) = 0.01;
  /// Size of the ascent step on delta (DeBERTa: learning_rate).
  TORCH_ARG(double, step_size) = 1e-4;
  /// eps of the affine-free LayerNorm that normalises the perturbed tensor.
  TORCH_ARG(double, layer_norm_eps) = 1e-7;
  /// false: the site feeds a LayerNorm (BERT and DeBERTa's embeddings.LayerNorm), which receives
  /// the normalised tensor plus delta, as the reference does. true: the site feeds no
  /// normalisation (the TextCNN classifier's word vectors), so the perturbed normalised vector is
  /// mapped back to the input's own per-vector mean and scale: mean + std * (xn + delta), and the
  /// clean pass stays the model's plain forward.
  TORCH_ARG(bool, restore_scale) = false;
};

/// layer_norm(x) over the last dimension without affine parameters.
torch::Tensor sift_normalize(const torch::Tensor& x, double eps);

/// delta0: N(0, sigma^2) clamped to [-2 sigma, 2 sigma], float32, the shape of `like`, drawn
/// from torch's default generator.
torch::Tensor sift_initial_delta(const torch::Tensor& like, double sigma);

/// One ascent step: delta + step_size * g / (1e-6 + max |g| over the last dimension), computed
/// without graph.
torch::Tensor sift_ascent_step(const torch::Tensor& delta, const torch::Tensor& grad,
                               double step_size);

/// DeBERTa's symmetric_kl per row of (..., C) logits, in float32: sum(p_t * -log p_s) +
/// sum(p_s * -log p_t) with p = softmax and the two probability factors detached. A sum of two
/// cross-entropies (so it includes the entropies); its gradient with respect to the student
/// logits is softmax(s) - p_t. Returns (N) for N rows.
torch::Tensor sift_symmetric_kl(const torch::Tensor& logits, const torch::Tensor& target);

/// The perturbation at one site of a model, used as its TensorHook (DeBERTa's
/// PerturbationLayer). Clean mode: returns the normalised input xn (kept for the adversarial
/// passes). Adversarial mode: returns xn (detached) + delta, drawing delta0 on the first call
/// (unless one was injected); `ascend` moves delta along its gradient.
class SiftPerturbation {
 public:
  explicit SiftPerturbation(SiftOptions options = {}) : options_(std::move(options)) {}

  torch::Tensor operator()(const torch::Tensor& x);

  /// Switches between clean and adversarial mode; leaving adversarial mode drops delta.
  void set_adversarial(bool adversarial);
  /// Injects delta0 (e.g. a reference run's draw) instead of drawing it.
  void set_delta(const torch::Tensor& delta);
  /// delta <- sift_ascent_step(delta, grad); returns false (and keeps delta) when the gradient
  /// is not finite, as the reference skips such a step.
  bool ascend(const torch::Tensor& grad);

  /// The current delta (float32, requires grad), undefined before the first adversarial pass.
  const torch::Tensor& delta() const { return delta_; }
  /// xn of the last clean pass.
  const torch::Tensor& normalized() const { return normalized_; }
  const SiftOptions& options() const { return options_; }

 private:
  SiftOptions options_;
  bool adversarial_ = false;
  torch::Tensor normalized_;  // xn, with graph to the input
  torch::Tensor mean_, std_;  // per-vector statistics of the clean input (restore_scale)
  torch::Tensor delta_;
};

// ---------------------------------------------------------------------------------------------
// Mixup

/// lambda ~ Beta(alpha, alpha) (alpha > 0) from torch's default generator, as the ratio of two
/// Gamma(alpha) draws.
double mixup_lambda(double alpha);

/// lambda * x + (1 - lambda) * x[perm] along dimension 0.
torch::Tensor mixup(const torch::Tensor& x, const torch::Tensor& perm, double lambda);

/// Cross-entropy against the mixed labels: lambda * CE(logits, y) + (1 - lambda) *
/// CE(logits, y[perm]), means over the batch (equal to CE with the mixed one-hot targets).
torch::Tensor mixup_cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels,
                                  const torch::Tensor& perm, double lambda);

}  // namespace nlpkit
