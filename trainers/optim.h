// Optimizers with parameter groups, and learning-rate schedules as pure functions of the step.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "trainers/config.h"

namespace nlpkit {

/// Trainable parameters split into weights (decayed) and biases / norm weights / other 1-D
/// parameters (never decayed), as BERT, GPT and nanoGPT do. Frozen parameters are left out.
struct ParameterGroups {
  std::vector<torch::Tensor> decay;
  std::vector<torch::Tensor> no_decay;
};
ParameterGroups parameter_groups(const torch::nn::Module& model);

/// Builds the optimizer named by `config.type` over `model`'s parameter groups.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const torch::nn::Module& model,
                                                        const OptimizerConfig& config);

/// The learning rate at optimizer step `step` (0-based) of `total_steps`:
/// `lr * warmup(step) * decay(step)`. Pure: the same arguments always give the same value.
double lr_at(const OptimizerConfig& optimizer, const SchedulerConfig& scheduler, int64_t step,
             int64_t total_steps);

/// Sets every parameter group's learning rate.
void set_lr(torch::optim::Optimizer& optimizer, double lr);

}  // namespace nlpkit
