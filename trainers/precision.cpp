#include "trainers/precision.h"

#include "trainers/compat.h"
#include "trainers/config.h"

namespace nlpkit {

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "bf16") return Precision::kBf16;
  if (name == "fp16") return Precision::kFp16;
  throw ConfigError("precision: unknown value '" + name + "'; expected one of: fp32, bf16, fp16");
}

bool autocast_supported(Precision precision, torch::Device device) {
  if (precision == Precision::kFp32) return false;
  if (device.is_cuda()) return true;
  return device.is_cpu() && precision == Precision::kBf16;
}

AutocastScope::AutocastScope(Precision precision, torch::Device device) {
  if (!autocast_supported(precision, device)) return;
  active_ = true;
  cuda_ = device.is_cuda();
  was_enabled_ = compat::autocast_enabled(cuda_);
  old_dtype_ = compat::autocast_dtype(cuda_);
  compat::set_autocast_enabled(cuda_, true);
  compat::set_autocast_dtype(cuda_, precision == Precision::kBf16 ? at::kBFloat16 : at::kHalf);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // The cache of casted weights lives as long as the outermost region (as in torch.autocast).
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  compat::set_autocast_enabled(cuda_, was_enabled_);
  compat::set_autocast_dtype(cuda_, old_dtype_);
}

LossScaler::LossScaler(bool enabled, LossScalerOptions options)
    : enabled_(enabled), options_(options), scale_(options.init_scale()) {
  TORCH_CHECK(options.init_scale() > 0 && options.growth_factor() > 1 &&
                  options.backoff_factor() > 0 && options.backoff_factor() < 1 &&
                  options.growth_interval() > 0,
              "LossScaler: need init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1 and "
              "growth_interval > 0");
}

torch::Tensor LossScaler::scale_loss(const torch::Tensor& loss) const {
  return enabled_ ? loss * scale_ : loss;
}

bool LossScaler::unscale(const std::vector<torch::Tensor>& params) const {
  if (!enabled_) return true;
  torch::NoGradGuard no_grad;
  const double inverse = 1.0 / scale_;
  bool finite = true;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    torch::Tensor g = p.grad();
    g.mul_(inverse);
    // All-finite test in one reduction; inf * 0 is NaN, so the sum catches inf too.
    if (finite && !std::isfinite(g.sum().item<double>())) finite = false;
  }
  return finite;
}

void LossScaler::update(bool finite) {
  if (!enabled_) return;
  if (!finite) {
    scale_ *= options_.backoff_factor();
    growth_tracker_ = 0;
  } else if (++growth_tracker_ == options_.growth_interval()) {
    scale_ *= options_.growth_factor();
    growth_tracker_ = 0;
  }
}

nlohmann::json LossScaler::state() const {
  return {{"scale", scale_}, {"growth_tracker", growth_tracker_}};
}

void LossScaler::load_state(const nlohmann::json& state, const std::string& source) {
  try {
    scale_ = state.at("scale").get<double>();
    growth_tracker_ = state.at("growth_tracker").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw InputError(source + ": bad loss_scaler state: " + e.what());
  }
}

}  // namespace nlpkit
