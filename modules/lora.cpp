#include "modules/lora.h"

#include <cmath>
#include <memory>
#include <regex>
#include <sstream>

#include "modules/regularization.h"

namespace nlpkit {

namespace detail {
namespace {

/// std::regex throws std::regex_error with a message that does not name the pattern.
std::regex compile_pattern(const char* caller, const char* what, const std::string& pattern) {
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    C10_THROW_ERROR(
        Error, c10::str(caller, ": ", what, " '", pattern, "' is not a valid regex: ", e.what()));
  }
}

/// "a, b, c (and 7 more)": enough names to spot a typo without flooding the message.
std::string some_names(const std::vector<std::string>& names, size_t shown = 8) {
  if (names.empty()) return "none";
  std::ostringstream out;
  for (size_t i = 0; i < names.size() && i < shown; ++i) {
    out << (i ? ", " : "") << (names[i].empty() ? "<root>" : names[i]);
  }
  if (names.size() > shown) out << " (and " << names.size() - shown << " more)";
  return out.str();
}

bool is_adapter_name(const std::string& name) {
  const size_t dot = name.rfind('.');
  const std::string last = dot == std::string::npos ? name : name.substr(dot + 1);
  return last == "lora_A" || last == "lora_B";
}

/// The LoRALinear layers below and including `root`, with their dotted names. `named_modules`
/// with include_self needs `root` to be owned by a shared_ptr, so the root is checked by hand.
std::vector<std::pair<std::string, LoRALinearImpl*>> lora_layers(torch::nn::Module& root) {
  std::vector<std::pair<std::string, LoRALinearImpl*>> layers;
  if (auto* self = dynamic_cast<LoRALinearImpl*>(&root)) layers.emplace_back("", self);
  for (const auto& item : root.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    if (auto* layer = dynamic_cast<LoRALinearImpl*>(item.value().get())) {
      layers.emplace_back(item.key(), layer);
    }
  }
  return layers;
}

}  // namespace
}  // namespace detail

LoRALinearImpl::LoRALinearImpl(int64_t in_features, int64_t out_features, bool bias)
    : LoRALinearImpl(torch::nn::LinearOptions(in_features, out_features).bias(bias)) {}

LoRALinearImpl::LoRALinearImpl(const torch::nn::LinearOptions& options_) : options(options_) {
  reset();
}

void LoRALinearImpl::reset() {
  // Same registration as torch::nn::LinearImpl::reset, so the key order is weight, bias.
  weight =
      register_parameter("weight", torch::empty({options.out_features(), options.in_features()}));
  if (options.bias()) {
    bias = register_parameter("bias", torch::empty(options.out_features()));
  } else {
    bias = register_parameter("bias", {}, /*requires_grad=*/false);
  }
  // Cloneable::clone calls reset() on the copy and then copies every parameter by name, so an
  // adapter has to be registered here too.
  if (adapter_) register_adapter();
  reset_parameters();
}

void LoRALinearImpl::reset_parameters() {
  // torch::nn::LinearImpl::reset_parameters: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const int64_t fan_in = std::get<0>(torch::nn::init::_calculate_fan_in_and_fan_out(weight));
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    torch::nn::init::uniform_(bias, -bound, bound);
  }
  if (adapter_) reset_adapter_parameters();
}

torch::Tensor LoRALinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = torch::linear(x, weight, bias);  // (*, out)
  if (!adapter_) return y;
  torch::Tensor h = x;
  if (adapter_->dropout() > 0) h = nlpkit::dropout(h, adapter_->dropout(), is_training());
  // (x A^T) B^T costs r (in + out) per row instead of in * out for (B A) materialised.
  return y + torch::linear(torch::linear(h, lora_A), lora_B) * scaling();  // (*, r) -> (*, out)
}

void LoRALinearImpl::add_adapter(const LoRAOptions& adapter_options) {
  TORCH_CHECK(!adapter_, "LoRALinear: an adapter is already present (rank ", adapter_->rank(),
              "); merge() it before adding another");
  TORCH_CHECK(adapter_options.rank() > 0, "LoRALinear: rank must be positive, got ",
              adapter_options.rank());
  TORCH_CHECK(adapter_options.dropout() >= 0 && adapter_options.dropout() < 1,
              "LoRALinear: dropout must be in [0, 1), got ", adapter_options.dropout());
  adapter_ = adapter_options;
  register_adapter();
  reset_adapter_parameters();
}

void LoRALinearImpl::register_adapter() {
  const int64_t r = adapter_->rank();
  // Created like the weight (dtype, device): adapters are usually added after the model has been
  // moved and loaded.
  lora_A = register_parameter("lora_A", weight.new_empty({r, options.in_features()}));
  lora_B = register_parameter("lora_B", weight.new_empty({options.out_features(), r}));
  // loralib freezes the pre-trained weight as soon as the layer has an adapter.
  weight.set_requires_grad(false);
}

void LoRALinearImpl::reset_adapter_parameters() {
  torch::NoGradGuard no_grad;
  // loralib: A like a Linear weight, B zero, so B A = 0 and training starts from the base model.
  torch::nn::init::kaiming_uniform_(lora_A, std::sqrt(5.0));
  lora_B.zero_();
}

void LoRALinearImpl::merge() {
  TORCH_CHECK(adapter_, "LoRALinear: merge() needs an adapter; this layer has none");
  {
    torch::NoGradGuard no_grad;
    weight.add_(torch::mm(lora_B, lora_A), scaling());  // (out, r) (r, in)
  }
  // parameters_ is protected in torch::nn::Module, which has no unregister_parameter; erasing
  // the entries leaves exactly the parameters of a plain linear layer (no `merged` flag to honour
  // in state dicts, exports or optimizers).
  parameters_.erase("lora_A");
  parameters_.erase("lora_B");
  lora_A = torch::Tensor();
  lora_B = torch::Tensor();
  adapter_.reset();
}

const LoRAOptions& LoRALinearImpl::adapter_options() const {
  TORCH_CHECK(adapter_, "LoRALinear: this layer has no adapter");
  return *adapter_;
}

double LoRALinearImpl::scaling() const {
  const LoRAOptions& adapter = adapter_options();
  return adapter.alpha() / static_cast<double>(adapter.rank());
}

void LoRALinearImpl::pretty_print(std::ostream& stream) const {
  stream << "LoRALinear(in_features=" << options.in_features()
         << ", out_features=" << options.out_features()
         << ", bias=" << (options.bias() ? "true" : "false");
  if (adapter_) {
    stream << ", rank=" << adapter_->rank() << ", alpha=" << adapter_->alpha()
           << ", dropout=" << adapter_->dropout();
  }
  stream << ")";
}

std::vector<std::string> add_lora(torch::nn::Module& root, const std::string& pattern,
                                  const LoRAOptions& options) {
  const std::regex re = detail::compile_pattern("add_lora", "pattern", pattern);
  const auto layers = detail::lora_layers(root);
  std::vector<std::string> matched;
  std::vector<std::string> all;
  for (const auto& [name, layer] : layers) {
    all.push_back(name);
    if (std::regex_search(name, re)) matched.push_back(name);
  }
  TORCH_CHECK(!matched.empty(), "add_lora: pattern '", pattern, "' matches none of the ",
              all.size(), " LoRALinear layers: ", detail::some_names(all));
  // Check every match before changing any, so a failure leaves the model as it was.
  for (const auto& [name, layer] : layers) {
    TORCH_CHECK(!std::regex_search(name, re) || !layer->has_adapter(), "add_lora: '",
                name.empty() ? "<root>" : name, "' already has an adapter");
  }
  for (const auto& [name, layer] : layers) {
    if (std::regex_search(name, re)) layer->add_adapter(options);
  }
  return matched;
}

void mark_only_lora_trainable(torch::nn::Module& root, const std::string& also_train) {
  std::optional<std::regex> re;
  if (!also_train.empty()) {
    re = detail::compile_pattern("mark_only_lora_trainable", "also_train", also_train);
  }
  std::vector<std::string> names;
  int64_t adapters = 0, extra = 0;
  for (auto& item : root.named_parameters()) {
    names.push_back(item.key());
    bool train = false;
    if (detail::is_adapter_name(item.key())) {
      train = true;
      ++adapters;
    } else if (re && std::regex_search(item.key(), *re)) {
      train = true;
      ++extra;
    }
    item.value().set_requires_grad(train);
  }
  // A typo in also_train would otherwise silently freeze the new head.
  TORCH_CHECK(!re || extra > 0, "mark_only_lora_trainable: also_train '", also_train,
              "' matches none of the ", names.size(), " parameters: ", detail::some_names(names));
  TORCH_CHECK(adapters + extra > 0,
              "mark_only_lora_trainable: no adapters (add_lora first) and no also_train pattern: "
              "every parameter would be frozen");
}

void merge_lora(torch::nn::Module& root) {
  for (const auto& [name, layer] : detail::lora_layers(root)) {
    if (layer->has_adapter()) layer->merge();
  }
}

std::vector<std::pair<std::string, torch::Tensor>> lora_state(const torch::nn::Module& root,
                                                              const std::string& also_save) {
  std::optional<std::regex> re;
  if (!also_save.empty()) re = detail::compile_pattern("lora_state", "also_save", also_save);
  std::vector<std::pair<std::string, torch::Tensor>> state;
  std::vector<std::string> names;
  int64_t extra = 0;
  for (const auto& item : root.named_parameters()) {
    names.push_back(item.key());
    const bool also = re && std::regex_search(item.key(), *re);
    extra += also;
    if (detail::is_adapter_name(item.key()) || also) state.emplace_back(item.key(), item.value());
  }
  if (re) {
    for (const auto& item : root.named_buffers()) {
      names.push_back(item.key());
      if (std::regex_search(item.key(), *re)) {
        ++extra;
        state.emplace_back(item.key(), item.value());
      }
    }
  }
  TORCH_CHECK(!re || extra > 0, "lora_state: also_save '", also_save, "' matches none of the ",
              names.size(), " parameters and buffers: ", detail::some_names(names));
  return state;
}

}  // namespace nlpkit
