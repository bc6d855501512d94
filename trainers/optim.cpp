#include "trainers/optim.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "trainers/registry.h"

namespace nlpkit {

std::vector<ParameterGroup> parameter_groups(const torch::nn::Module& model,
                                             const LrScaleFn& lr_scale) {
  std::vector<ParameterGroup> groups;
  // A tensor shared under two names (DeBERTa RTD's es sharing) is optimised once.
  std::unordered_set<const void*> seen;
  for (const auto& item : model.named_parameters()) {
    const torch::Tensor& p = item.value();
    if (!p.requires_grad() || !seen.insert(p.unsafeGetTensorImpl()).second) continue;
    const bool decay = p.dim() >= 2;
    const double scale = lr_scale ? lr_scale(item.key()) : 1.0;
    auto it = std::find_if(groups.begin(), groups.end(), [&](const ParameterGroup& g) {
      return g.decay == decay && g.lr_scale == scale;
    });
    if (it == groups.end()) {
      groups.push_back({{}, decay, scale});
      it = groups.end() - 1;
    }
    it->params.push_back(p);
  }
  return groups;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<ParameterGroup>& groups,
                                                        const OptimizerConfig& config) {
  return find_entry(optimizer_registry(), config.type, "optimizer type").build(groups, config);
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const torch::nn::Module& model,
                                                        const OptimizerConfig& config) {
  return make_optimizer(parameter_groups(model), config);
}

double lr_at(const OptimizerConfig& optimizer, const SchedulerConfig& s, int64_t step,
             int64_t total_steps) {
  const double warmup =
      s.warmup_steps > 0 && step < s.warmup_steps ? double(step + 1) / s.warmup_steps : 1.0;
  const double decay =
      find_entry(scheduler_registry(), s.type, "scheduler type").factor(s, step, total_steps);
  return optimizer.lr * warmup * decay;
}

void set_lr(torch::optim::Optimizer& optimizer, double lr,
            const std::vector<ParameterGroup>& groups) {
  auto& params = optimizer.param_groups();
  for (size_t i = 0; i < params.size(); ++i) {
    params[i].options().set_lr(i < groups.size() ? lr * groups[i].lr_scale : lr);
  }
}

}  // namespace nlpkit
