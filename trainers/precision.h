// Mixed precision: autocast regions for the forward pass and dynamic loss scaling with the
// semantics of PyTorch's GradScaler (torch/amp/grad_scaler.py). Weights, gradients and the
// optimizer state stay fp32 (the "master weights"); autocast runs the matmuls in bf16 or fp16.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace nlpkit {

enum class Precision { kFp32, kBf16, kFp16 };

/// "fp32", "bf16" or "fp16"; throws ConfigError otherwise.
Precision parse_precision(const std::string& name);

/// Whether `precision` has an autocast region on `device` in this LibTorch: CUDA bf16 and
/// fp16; CPU bf16 only (LibTorch 1.13's CPU autocast has no fp16).
bool autocast_supported(Precision precision, torch::Device device);

/// Turns autocast on for its scope (the forward pass and loss), restoring what was there before;
/// does nothing for fp32 or where autocast_supported is false.
///   { AutocastScope autocast(Precision::kBf16, device); loss = task.train_step(...).loss; }
///   loss.backward();  // outside: gradients land in the fp32 weights' dtype
class AutocastScope {
 public:
  AutocastScope(Precision precision, torch::Device device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool was_enabled_ = false;
  at::ScalarType old_dtype_ = at::kFloat;
};

/// GradScaler's knobs and defaults.
struct LossScalerOptions {
  TORCH_ARG(double, init_scale) = 65536.0;  // 2^16
  TORCH_ARG(double, growth_factor) = 2.0;
  TORCH_ARG(double, backoff_factor) = 0.5;
  TORCH_ARG(int64_t, growth_interval) = 2000;
};

/// Dynamic loss scaling for fp16: the loss is multiplied by `scale` before backward so that small
/// gradients survive fp16; the gradients are divided by it before clipping and the step. A step
/// whose gradients hold inf or NaN is skipped and the scale halved; after growth_interval clean
/// steps in a row the scale doubles. Disabled (fp32, bf16) it passes everything through.
///   torch::Tensor scaled = scaler.scale_loss(loss); scaled.backward();
///   const bool finite = scaler.unscale(params);
///   if (finite) optimizer.step();
///   scaler.update(finite);
class LossScaler {
 public:
  explicit LossScaler(bool enabled, LossScalerOptions options = {});
  bool enabled() const { return enabled_; }
  double scale() const { return enabled_ ? scale_ : 1.0; }
  /// Clean steps since the last change of the scale.
  int64_t growth_tracker() const { return growth_tracker_; }
  torch::Tensor scale_loss(const torch::Tensor& loss) const;
  /// Divides every defined gradient of `params` by the scale, in place. Returns false when any
  /// gradient holds inf or NaN.
  bool unscale(const std::vector<torch::Tensor>& params) const;
  /// Records a step: backoff when it was not finite, growth after growth_interval clean ones.
  void update(bool finite);
  /// {"scale", "growth_tracker"}, saved in trainer_state.json.
  nlohmann::json state() const;
  void load_state(const nlohmann::json& state, const std::string& source);

 private:
  bool enabled_;
  LossScalerOptions options_;
  double scale_;
  int64_t growth_tracker_ = 0;
};

}  // namespace nlpkit
