// Optimizers with parameter groups, and learning-rate schedules as pure functions of the step.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "trainers/config.h"

namespace nlpkit {

/// Parameters that share a weight-decay setting and a learning-rate multiplier.
struct ParameterGroup {
  std::vector<torch::Tensor> params;
  /// Weights are decayed; biases, norm weights and other 1-D parameters never are (as BERT,
  /// GPT and nanoGPT do).
  bool decay = true;
  /// The group's lr is the schedule's lr times this (layer-wise decay, a faster new head).
  double lr_scale = 1.0;
};

/// A parameter's lr multiplier from its dotted name (Task::lr_scale).
using LrScaleFn = std::function<double(const std::string& name)>;

/// The trainable parameters of `model` (frozen ones are left out) grouped by (decay, lr_scale),
/// groups in order of first appearance. Without `lr_scale`, at most two groups: decay, no decay.
std::vector<ParameterGroup> parameter_groups(const torch::nn::Module& model,
                                             const LrScaleFn& lr_scale = {});

/// Builds the optimizer named by `config.type` over `groups` (same order): lr * lr_scale, and
/// weight_decay only where `decay`.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<ParameterGroup>& groups,
                                                        const OptimizerConfig& config);
/// The same over parameter_groups(model).
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const torch::nn::Module& model,
                                                        const OptimizerConfig& config);

/// Drops every parameter's gradient, as PyTorch's `zero_grad(set_to_none=True)` (its default
/// since 2.0). The next backward then hands its gradients over instead of adding them into
/// zeroed buffers: per step, one zero-fill and one read-add-write of every gradient less. A
/// parameter that takes no part in a step keeps no gradient, and the optimizers skip it.
void release_gradients(torch::optim::Optimizer& optimizer);

/// The learning rate at optimizer step `step` (0-based) of `total_steps`:
/// `lr * warmup(step) * decay(step)`. Pure: the same arguments always give the same value.
double lr_at(const OptimizerConfig& optimizer, const SchedulerConfig& scheduler, int64_t step,
             int64_t total_steps);

/// Sets every parameter group's learning rate: lr * groups[i].lr_scale when `groups` is given
/// (the groups the optimizer was built from), else lr.
void set_lr(torch::optim::Optimizer& optimizer, double lr,
            const std::vector<ParameterGroup>& groups = {});

}  // namespace nlpkit
