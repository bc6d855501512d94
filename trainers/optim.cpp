#include "trainers/optim.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "trainers/fused_adam.h"
#include "trainers/registry.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NLPKIT_ADAM_AVX2 1
#endif

namespace nlpkit {
namespace {

/// One Adam(W) update of n floats, with float coefficients computed as LibTorch computes them.
struct AdamUpdate {
  float* param;
  const float* grad;
  float* exp_avg;
  float* exp_avg_sq;
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float sqrt_bias_correction2, eps, neg_step_size;
  float l2;     // Adam: grad + l2 * p (0 = none)
  float decay;  // AdamW: p * decay first (1 = none)
};

/// Elements [begin, end), in LibTorch's order of operations: grad.add(p, wd);
/// exp_avg.mul_(beta1).add_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad,
/// 1 - beta2); denom = (exp_avg_sq.sqrt() / sqrt(bc2)).add_(eps); p.addcdiv_(exp_avg, denom,
/// -step_size).
inline void adam_scalar(const AdamUpdate& u, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float p = u.param[i] * u.decay;
    const float g = u.grad[i] + u.l2 * p;
    const float m = u.exp_avg[i] * u.beta1 + g * u.one_minus_beta1;
    const float v = u.exp_avg_sq[i] * u.beta2 + u.one_minus_beta2 * (g * g);
    u.exp_avg[i] = m;
    u.exp_avg_sq[i] = v;
    u.param[i] = p + u.neg_step_size * (m / (std::sqrt(v) / u.sqrt_bias_correction2 + u.eps));
  }
}

#ifdef NLPKIT_ADAM_AVX2
__attribute__((target("avx2,fma"))) void adam_avx2(const AdamUpdate& u, int64_t begin,
                                                   int64_t end) {
  const __m256 beta1 = _mm256_set1_ps(u.beta1), one_minus_beta1 = _mm256_set1_ps(u.one_minus_beta1);
  const __m256 beta2 = _mm256_set1_ps(u.beta2), one_minus_beta2 = _mm256_set1_ps(u.one_minus_beta2);
  const __m256 sqrt_bc2 = _mm256_set1_ps(u.sqrt_bias_correction2), eps = _mm256_set1_ps(u.eps);
  const __m256 neg_step = _mm256_set1_ps(u.neg_step_size), l2 = _mm256_set1_ps(u.l2);
  const __m256 decay = _mm256_set1_ps(u.decay);
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(u.param + i), decay);
    const __m256 g = _mm256_fmadd_ps(l2, p, _mm256_loadu_ps(u.grad + i));
    const __m256 m =
        _mm256_fmadd_ps(g, one_minus_beta1, _mm256_mul_ps(_mm256_loadu_ps(u.exp_avg + i), beta1));
    const __m256 v = _mm256_fmadd_ps(one_minus_beta2, _mm256_mul_ps(g, g),
                                     _mm256_mul_ps(_mm256_loadu_ps(u.exp_avg_sq + i), beta2));
    _mm256_storeu_ps(u.exp_avg + i, m);
    _mm256_storeu_ps(u.exp_avg_sq + i, v);
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(v), sqrt_bc2), eps);
    _mm256_storeu_ps(u.param + i, _mm256_fmadd_ps(neg_step, _mm256_div_ps(m, denom), p));
  }
  adam_scalar(u, i, end);
}
#endif

void run_adam(const AdamUpdate& u, int64_t n) {
#ifdef NLPKIT_ADAM_AVX2
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  constexpr bool avx2 = false;
#endif
  at::parallel_for(0, n, 1 << 15, [&](int64_t begin, int64_t end) {
#ifdef NLPKIT_ADAM_AVX2
    if (avx2) return adam_avx2(u, begin, end);
#endif
    adam_scalar(u, begin, end);
  });
}

bool fusable(const std::vector<torch::optim::OptimizerParamGroup>& groups, bool amsgrad) {
  if (amsgrad) return false;
  for (const auto& group : groups) {
    for (const auto& p : group.params()) {
      const torch::Tensor& g = p.grad();
      if (!g.defined()) continue;
      if (!p.device().is_cpu() || p.scalar_type() != torch::kFloat || !p.is_contiguous() ||
          g.layout() != torch::kStrided || g.scalar_type() != torch::kFloat || !g.is_contiguous()) {
        return false;
      }
    }
  }
  return true;
}

/// The fused step over every parameter with a gradient; `decoupled` = AdamW.
template <class Options, class State>
void fused_adam_step(
    std::vector<torch::optim::OptimizerParamGroup>& groups,
    ska::flat_hash_map<std::string, std::unique_ptr<torch::optim::OptimizerParamState>>& state,
    bool decoupled) {
  torch::NoGradGuard no_grad;
  for (auto& group : groups) {
    const auto& o = static_cast<const Options&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const std::string key = c10::guts::to_string(p.unsafeGetTensorImpl());
      auto it = state.find(key);
      if (it == state.end()) {
        auto fresh = std::make_unique<State>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        it = state.emplace(key, std::move(fresh)).first;
      }
      auto& s = static_cast<State&>(*it->second);
      s.step(s.step() + 1);
      const double beta1 = std::get<0>(o.betas());
      const double beta2 = std::get<1>(o.betas());
      const double bias_correction1 = 1 - std::pow(beta1, s.step());
      const double bias_correction2 = 1 - std::pow(beta2, s.step());
      AdamUpdate u{};
      u.param = p.data_ptr<float>();
      u.grad = p.grad().data_ptr<float>();
      u.exp_avg = s.exp_avg().template data_ptr<float>();
      u.exp_avg_sq = s.exp_avg_sq().template data_ptr<float>();
      u.beta1 = static_cast<float>(beta1);
      u.one_minus_beta1 = static_cast<float>(1 - beta1);
      u.beta2 = static_cast<float>(beta2);
      u.one_minus_beta2 = static_cast<float>(1 - beta2);
      u.sqrt_bias_correction2 = static_cast<float>(std::sqrt(bias_correction2));
      u.eps = static_cast<float>(o.eps());
      u.neg_step_size = static_cast<float>(-(o.lr() / bias_correction1));
      u.l2 = decoupled ? 0.0f : static_cast<float>(o.weight_decay());
      u.decay = decoupled ? static_cast<float>(1 - o.lr() * o.weight_decay()) : 1.0f;
      run_adam(u, p.numel());
    }
  }
}

}  // namespace

template <class Base, class Options, class State, bool kDecoupled>
torch::Tensor FusedAdamOf<Base, Options, State, kDecoupled>::step(
    torch::optim::Optimizer::LossClosure closure) {
  bool amsgrad = false;
  for (const auto& g : this->param_groups_) {
    amsgrad = amsgrad || static_cast<const Options&>(g.options()).amsgrad();
  }
  if (closure != nullptr || !fusable(this->param_groups_, amsgrad)) return Base::step(closure);
  fused_adam_step<Options, State>(this->param_groups_, this->state_, kDecoupled);
  ++fused_steps_;
  return {};
}

template class FusedAdamOf<torch::optim::Adam, torch::optim::AdamOptions,
                           torch::optim::AdamParamState, false>;
template class FusedAdamOf<torch::optim::AdamW, torch::optim::AdamWOptions,
                           torch::optim::AdamWParamState, true>;

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

void release_gradients(torch::optim::Optimizer& optimizer) {
  for (auto& group : optimizer.param_groups()) {
    for (auto& p : group.params()) p.mutable_grad() = torch::Tensor();
  }
}

void set_lr(torch::optim::Optimizer& optimizer, double lr,
            const std::vector<ParameterGroup>& groups) {
  auto& params = optimizer.param_groups();
  for (size_t i = 0; i < params.size(); ++i) {
    params[i].options().set_lr(i < groups.size() ? lr * groups[i].lr_scale : lr);
  }
}

}  // namespace nlpkit
