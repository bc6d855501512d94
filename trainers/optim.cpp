#include "trainers/optim.h"

#include <cmath>

#include "trainers/registry.h"

namespace nlpkit {

ParameterGroups parameter_groups(const torch::nn::Module& model) {
  ParameterGroups groups;
  for (const auto& p : model.parameters()) {
    if (!p.requires_grad()) continue;
    (p.dim() >= 2 ? groups.decay : groups.no_decay).push_back(p);
  }
  return groups;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const torch::nn::Module& model,
                                                        const OptimizerConfig& config) {
  ParameterGroups groups = parameter_groups(model);
  return find_entry(optimizer_registry(), config.type, "optimizer type")
      .build(groups.decay, groups.no_decay, config);
}

double lr_at(const OptimizerConfig& optimizer, const SchedulerConfig& s, int64_t step,
             int64_t total_steps) {
  const double warmup =
      s.warmup_steps > 0 && step < s.warmup_steps ? double(step + 1) / s.warmup_steps : 1.0;
  const double decay =
      find_entry(scheduler_registry(), s.type, "scheduler type").factor(s, step, total_steps);
  return optimizer.lr * warmup * decay;
}

void set_lr(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

}  // namespace nlpkit
