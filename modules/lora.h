// LoRA: low-rank adapters on linear layers (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large
// Language Models"). Numerics, initialisation and parameter names match Microsoft's loralib
// (github.com/microsoft/LoRA, loralib/layers.py `Linear` and loralib/utils.py):
//   y = x W^T + b + (dropout(x) A^T B^T) * alpha / r,   A: (r, in), B: (out, r),
// A ~ kaiming_uniform_(a = sqrt(5)), B = 0 (the adapter starts as a no-op), and the frozen
// pre-trained weight keeps its name, so `encoder.layer.0.attention.self.query.lora_A` sits beside
// `...query.weight` exactly as in a loralib state dict.
//
// LoRALinear without an adapter is a drop-in for torch::nn::Linear: same constructor, the same
// parameters `weight`, `bias` in the same order, the same default initialisation and the same
// forward. Adapters are added afterwards (`add_adapter`, or `add_lora` on a whole model by module
// name), so a model is built and its pre-trained checkpoint loaded before the adapters exist.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace nlpkit {

/// Options of one adapter: rank r, alpha (the update is scaled by alpha / r, loralib's
/// `lora_alpha`) and the dropout applied to the adapter's input only (loralib's `lora_dropout`).
///
/// Example:
/// ```
/// nlpkit::add_lora(*model, "attention\\.self\\.(query|value)$",
///                  nlpkit::LoRAOptions().rank(8).alpha(16).dropout(0.1));
/// ```
struct LoRAOptions {
  /// r, the rank of the update B A; must be positive.
  TORCH_ARG(int64_t, rank) = 8;
  /// The update is scaled by alpha / rank.
  TORCH_ARG(double, alpha) = 16;
  /// Dropout probability on the adapter's input, in [0, 1); the frozen path sees no dropout.
  TORCH_ARG(double, dropout) = 0.0;
};

/// A linear layer that can carry one LoRA adapter.
///
/// Without an adapter it is torch::nn::Linear. `add_adapter` registers `lora_A` (r, in),
/// initialised like a Linear weight, and `lora_B` (out, r) = 0, and freezes `weight` (as loralib
/// does; `bias` stays as it was). `merge` folds the update into `weight` and removes the adapter
/// parameters, leaving a plain linear layer whose state dict loads into torch::nn::Linear.
///
/// Example:
/// ```
/// nlpkit::LoRALinear layer(torch::nn::LinearOptions(768, 768));
/// layer->add_adapter(nlpkit::LoRAOptions().rank(4));
/// torch::Tensor y = layer(x);  // (B, T, 768)
/// layer->merge();              // same outputs, no adapter parameters
/// ```
class LoRALinearImpl : public torch::nn::Cloneable<LoRALinearImpl> {
 public:
  LoRALinearImpl(int64_t in_features, int64_t out_features, bool bias = true);
  explicit LoRALinearImpl(const torch::nn::LinearOptions& options_);

  /// Registers `weight`, `bias` (as torch::nn::Linear) and, when an adapter is present,
  /// `lora_A`, `lora_B`; then calls reset_parameters().
  void reset() override;
  /// torch::nn::Linear's initialisation of weight and bias; a present adapter is initialised
  /// afresh (A kaiming-uniform, B zero).
  void reset_parameters();

  /// x: (*, in_features) -> (*, out_features).
  torch::Tensor forward(const torch::Tensor& x);

  /// Registers a fresh adapter (`lora_A`, `lora_B` with weight's dtype and device) and freezes
  /// `weight`. The outputs are unchanged until B is trained. Throws if an adapter is already
  /// present or the options are out of range.
  void add_adapter(const LoRAOptions& adapter_options);

  /// W += B A * alpha / r, then removes `lora_A` and `lora_B`: the module is a plain linear layer
  /// again (with `weight` still frozen). Throws without an adapter.
  void merge();

  bool has_adapter() const { return adapter_.has_value(); }
  /// The adapter's options; throws without an adapter.
  const LoRAOptions& adapter_options() const;
  /// alpha / rank of the adapter; throws without an adapter.
  double scaling() const;

  /// Prints `LoRALinear(in_features=4, out_features=3, bias=true)`, followed by
  /// `, rank=8, alpha=16, dropout=0` inside the parentheses when an adapter is present.
  void pretty_print(std::ostream& stream) const override;

  torch::nn::LinearOptions options;
  /// (out_features, in_features)
  torch::Tensor weight;
  /// (out_features), undefined with bias(false).
  torch::Tensor bias;
  /// (rank, in_features), undefined without an adapter.
  torch::Tensor lora_A;
  /// (out_features, rank), undefined without an adapter.
  torch::Tensor lora_B;

 private:
  void register_adapter();
  void reset_adapter_parameters();

  std::optional<LoRAOptions> adapter_;
};

TORCH_MODULE(LoRALinear);

/// Adds an adapter to every LoRALinear below (and including) `root` whose dotted module name, as
/// `named_modules` spells it ("encoder.layer.0.attention.self.query"; the root itself is ""),
/// matches `pattern` (std::regex_search, ECMAScript). Returns the names in module order.
/// Throws if the pattern is not a valid regex or matches no LoRALinear (the message lists the
/// LoRALinear names there are), or if a matched layer already has an adapter.
std::vector<std::string> add_lora(torch::nn::Module& root, const std::string& pattern,
                                  const LoRAOptions& options);

/// Sets requires_grad to false on every parameter below `root` except the adapters (`lora_A`,
/// `lora_B`) and the parameters whose dotted name matches `also_train` (regex_search; empty =
/// none), which get requires_grad true: "^classifier\\." trains a new head with the adapters.
/// loralib's mark_only_lora_as_trainable. Throws if `also_train` is given but matches no
/// parameter, or if nothing would be left to train.
void mark_only_lora_trainable(torch::nn::Module& root, const std::string& also_train = "");

/// Merges every adapter below (and including) `root` (see LoRALinearImpl::merge): the model then
/// has the parameter names of the model without LoRA, ready for export. No-op without adapters.
void merge_lora(torch::nn::Module& root);

/// An adapter-only checkpoint: the parameters named `...lora_A` / `...lora_B`, plus the
/// parameters and buffers whose dotted name matches `also_save` (regex_search; empty = none),
/// in named_parameters then named_buffers order. loralib's lora_state_dict. Merged adapters no
/// longer exist, so they are not included. Throws if `also_save` is given but matches nothing.
std::vector<std::pair<std::string, torch::Tensor>> lora_state(const torch::nn::Module& root,
                                                              const std::string& also_save = "");

}  // namespace nlpkit
