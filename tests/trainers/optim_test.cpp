#include "trainers/optim.h"

#include <gtest/gtest.h>

#include <sstream>

#include "tests/test_util.h"
#include "trainers/fused_adam.h"
#include "trainers/registry.h"

namespace nlpkit {
namespace {

double lr(const std::string& type, int64_t step, int64_t warmup = 0, double min_ratio = 0.0) {
  OptimizerConfig o;
  o.lr = 1.0;
  SchedulerConfig s;
  s.type = type;
  s.warmup_steps = warmup;
  s.min_lr_ratio = min_ratio;
  s.step_size = 10;
  s.gamma = 0.5;
  return lr_at(o, s, step, /*total_steps=*/110);
}

TEST(LrAt, Warmup) {
  // Linear warmup from lr/warmup to lr over warmup steps, for every schedule.
  for (const auto& entry : scheduler_registry()) {
    EXPECT_DOUBLE_EQ(lr(entry.name, 0, 10), 0.1) << entry.name;
    EXPECT_DOUBLE_EQ(lr(entry.name, 4, 10), 0.5) << entry.name;
  }
  EXPECT_DOUBLE_EQ(lr("constant", 9, 10), 1.0);
  EXPECT_DOUBLE_EQ(lr("constant", 100, 10), 1.0);
}

TEST(LrAt, LinearAndCosineDecay) {
  EXPECT_DOUBLE_EQ(lr("linear", 10, 10), 1.0);
  EXPECT_DOUBLE_EQ(lr("linear", 60, 10), 0.5);
  EXPECT_DOUBLE_EQ(lr("linear", 110, 10), 0.0);
  EXPECT_DOUBLE_EQ(lr("linear", 110, 10, 0.1), 0.1);
  EXPECT_DOUBLE_EQ(lr("cosine", 10, 10), 1.0);
  EXPECT_NEAR(lr("cosine", 60, 10), 0.5, 1e-12);
  EXPECT_NEAR(lr("cosine", 35, 10), 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-12);
  EXPECT_NEAR(lr("cosine", 110, 10, 0.2), 0.2, 1e-12);
}

TEST(LrAt, InverseSqrtAndStep) {
  EXPECT_DOUBLE_EQ(lr("inverse_sqrt", 9, 10), 1.0);
  EXPECT_DOUBLE_EQ(lr("inverse_sqrt", 39, 10), 0.5);  // sqrt(10 / 40)
  EXPECT_DOUBLE_EQ(lr("step", 9), 1.0);
  EXPECT_DOUBLE_EQ(lr("step", 10), 0.5);
  EXPECT_DOUBLE_EQ(lr("step", 25), 0.25);
}

TEST(LrAt, WarmupLongerThanTheRunStillWarmsUp) {
  OptimizerConfig o;
  o.lr = 1.0;
  SchedulerConfig s;
  s.warmup_steps = 20;
  for (const char* type : {"linear", "cosine"}) {
    s.type = type;
    EXPECT_DOUBLE_EQ(lr_at(o, s, 0, /*total_steps=*/6), 0.05) << type;
    EXPECT_DOUBLE_EQ(lr_at(o, s, 5, /*total_steps=*/6), 0.3) << type;
  }
}

TEST(LrAt, IsPure) {
  for (const auto& entry : scheduler_registry()) {
    EXPECT_EQ(lr(entry.name, 37, 5, 0.1), lr(entry.name, 37, 5, 0.1));
  }
}

TEST(Optimizer, NoDecayOnBiasesAndNormWeights) {
  torch::nn::Sequential model(torch::nn::Linear(3, 4),
                              torch::nn::LayerNorm(std::vector<int64_t>{4}));
  std::vector<ParameterGroup> g = parameter_groups(*model);
  ASSERT_EQ(g.size(), 2u);
  EXPECT_TRUE(g[0].decay);
  EXPECT_EQ(g[0].params.size(), 1u);  // the Linear weight
  EXPECT_FALSE(g[1].decay);
  EXPECT_EQ(g[1].params.size(), 3u);  // Linear bias, LayerNorm weight and bias
  OptimizerConfig c;
  c.weight_decay = 0.01;
  for (const auto& entry : optimizer_registry()) {
    c.type = entry.name;
    auto opt = make_optimizer(*model, c);
    ASSERT_EQ(opt->param_groups().size(), 2u) << entry.name;
    set_lr(*opt, 0.125);
    EXPECT_DOUBLE_EQ(opt->param_groups()[1].options().get_lr(), 0.125);
  }
  c.type = "adamw";
  auto opt = make_optimizer(*model, c);
  auto& decayed = static_cast<torch::optim::AdamWOptions&>(opt->param_groups()[0].options());
  auto& plain = static_cast<torch::optim::AdamWOptions&>(opt->param_groups()[1].options());
  EXPECT_DOUBLE_EQ(decayed.weight_decay(), 0.01);
  EXPECT_DOUBLE_EQ(plain.weight_decay(), 0.0);
}

TEST(Optimizer, LrScalesMakeGroupsAndScaleEveryScheduledLr) {
  torch::nn::Sequential model(torch::nn::Linear(3, 4), torch::nn::Linear(4, 2));
  model[1]->as<torch::nn::Linear>()->weight.set_requires_grad(false);  // frozen: left out
  auto groups = parameter_groups(
      *model, [](const std::string& name) { return name.rfind("0.", 0) == 0 ? 0.5 : 2.0; });
  ASSERT_EQ(groups.size(), 3u);  // 0.weight (decay, 0.5), 0.bias (0.5), 1.bias (2.0)
  EXPECT_EQ(groups[0].lr_scale, 0.5);
  EXPECT_TRUE(groups[0].decay);
  EXPECT_FALSE(groups[1].decay);
  EXPECT_EQ(groups[2].lr_scale, 2.0);
  EXPECT_EQ(groups[2].params.size(), 1u);
  OptimizerConfig c;
  c.lr = 0.1;
  auto opt = make_optimizer(groups, c);
  EXPECT_DOUBLE_EQ(opt->param_groups()[0].options().get_lr(), 0.05);
  set_lr(*opt, 0.01, groups);
  EXPECT_DOUBLE_EQ(opt->param_groups()[0].options().get_lr(), 0.005);
  EXPECT_DOUBLE_EQ(opt->param_groups()[2].options().get_lr(), 0.02);
}

TEST(Optimizer, NesterovNeedsMomentum) {
  torch::nn::Linear model(2, 2);
  OptimizerConfig c;
  c.type = "sgd";
  c.nesterov = true;
  EXPECT_THROW(make_optimizer(*model, c), ConfigError);
  c.momentum = 0.9;
  EXPECT_NO_THROW(make_optimizer(*model, c));
}

TEST(Optimizer, ReleasedGradientsAreReplacedNotAddedTo) {
  torch::manual_seed(4);
  torch::nn::Linear model(3, 2);
  OptimizerConfig c;
  c.type = "adam";
  c.lr = 0.1;
  auto optimizer = make_optimizer(*model, c);
  const torch::Tensor x = torch::randn({4, 3});
  model(x).sum().backward();
  const torch::Tensor first = model->weight.grad().clone();
  release_gradients(*optimizer);
  for (const auto& p : model->parameters()) EXPECT_FALSE(p.grad().defined());
  // Only the weight takes part: it gets this backward's gradient alone, the bias none, and
  // the step leaves the bias (and its optimizer state) alone.
  const torch::Tensor bias = model->bias.detach().clone();
  torch::mm(x, model->weight.t()).sum().backward();
  EXPECT_TRUE(torch::allclose(model->weight.grad(), first));
  EXPECT_TRUE(model->weight.grad().is_contiguous());
  EXPECT_FALSE(model->bias.grad().defined());
  optimizer->step();
  EXPECT_TRUE(torch::equal(model->bias.detach(), bias));
  EXPECT_EQ(dynamic_cast<FusedAdam&>(*optimizer).fused_steps(), 1);
}

// Parameters of sizes that exercise the 8-wide loop, its scalar tail, a 1-element tensor and
// several threads' chunks (1 << 15 elements each).
std::vector<torch::Tensor> adam_params(uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<torch::Tensor> params;
  for (int64_t n : {1, 13, 256, 70001}) params.push_back(torch::randn({n}).requires_grad_());
  params.push_back(torch::randn({37, 29}).requires_grad_());
  return params;
}

std::vector<torch::Tensor> clones(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach().clone().requires_grad_());
  return out;
}

/// `steps` steps of both optimizers on the same gradients (some steps leave a parameter without
/// one); the largest relative difference of the parameters and of the moments.
template <class Fused, class Reference, class Options, class State>
double adam_difference(const Options& options, int steps, int64_t threads) {
  const std::vector<torch::Tensor> a = adam_params(5), b = clones(a);
  // Two groups, the second with its own lr and no decay, as make_optimizer builds them.
  auto groups = [&](const std::vector<torch::Tensor>& p) {
    auto second = std::make_unique<Options>(options);
    second->lr(options.lr() * 0.3).weight_decay(0.0);
    std::vector<torch::optim::OptimizerParamGroup> g;
    g.emplace_back(std::vector<torch::Tensor>(p.begin(), p.begin() + 3),
                   std::make_unique<Options>(options));
    g.emplace_back(std::vector<torch::Tensor>(p.begin() + 3, p.end()), std::move(second));
    return g;
  };
  Fused fused(groups(a), options);
  Reference reference(groups(b), options);
  const int previous = torch::get_num_threads();
  torch::set_num_threads(threads);
  torch::manual_seed(11);
  for (int step = 0; step < steps; ++step) {
    for (size_t i = 0; i < a.size(); ++i) {
      if (step % 4 == 3 && i == 1) {  // no gradient: skipped by both
        a[i].mutable_grad() = torch::Tensor();
        b[i].mutable_grad() = torch::Tensor();
        continue;
      }
      const torch::Tensor g = torch::randn_like(a[i]) * (step % 2 == 0 ? 1.0 : 1e-3);
      a[i].mutable_grad() = g.clone();
      b[i].mutable_grad() = g.clone();
    }
    fused.step();
    reference.step();
  }
  torch::set_num_threads(previous);
  EXPECT_EQ(fused.fused_steps(), options.amsgrad() ? 0 : steps);
  double worst = 0;
  auto rel = [&](const torch::Tensor& x, const torch::Tensor& y) {
    return ((x - y).abs() / (y.abs() + 1e-6)).max().item<double>();
  };
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, rel(a[i], b[i]));
    const auto key_a = c10::guts::to_string(a[i].unsafeGetTensorImpl());
    const auto key_b = c10::guts::to_string(b[i].unsafeGetTensorImpl());
    const auto& sa = static_cast<const State&>(*fused.state().at(key_a));
    const auto& sb = static_cast<const State&>(*reference.state().at(key_b));
    EXPECT_EQ(sa.step(), sb.step());
    worst =
        std::max({worst, rel(sa.exp_avg(), sb.exp_avg()), rel(sa.exp_avg_sq(), sb.exp_avg_sq())});
  }
  return worst;
}

TEST(FusedAdam, MatchesLibTorchAdamToFloatRounding) {
  for (int64_t threads : {1, 2}) {
    const auto plain = torch::optim::AdamOptions(1e-2);
    const auto decayed =
        torch::optim::AdamOptions(3e-3).betas({0.8, 0.98}).eps(1e-6).weight_decay(0.1);
    EXPECT_LT((adam_difference<FusedAdam, torch::optim::Adam, torch::optim::AdamOptions,
                               torch::optim::AdamParamState>(plain, 12, threads)),
              2e-5);
    EXPECT_LT((adam_difference<FusedAdam, torch::optim::Adam, torch::optim::AdamOptions,
                               torch::optim::AdamParamState>(decayed, 12, threads)),
              2e-5);
    const auto w = torch::optim::AdamWOptions(1e-2).weight_decay(0.05);
    EXPECT_LT((adam_difference<FusedAdamW, torch::optim::AdamW, torch::optim::AdamWOptions,
                               torch::optim::AdamWParamState>(w, 12, threads)),
              2e-5);
    // amsgrad is LibTorch's own step: the same numbers exactly.
    const auto ams = torch::optim::AdamOptions(1e-2).amsgrad(true);
    EXPECT_EQ((adam_difference<FusedAdam, torch::optim::Adam, torch::optim::AdamOptions,
                               torch::optim::AdamParamState>(ams, 5, threads)),
              0.0);
  }
}

TEST(FusedAdam, CheckpointsAreLibTorchAdamsBothWays) {
  // Three fused steps, saved; LibTorch's Adam loads them and takes step 4, as does the fused one.
  const std::vector<torch::Tensor> a = adam_params(2);
  const std::vector<torch::Tensor> b = clones(a);
  FusedAdam fused(a, torch::optim::AdamOptions(1e-2));
  torch::manual_seed(3);
  for (int step = 0; step < 3; ++step) {
    for (const auto& p : a) p.mutable_grad() = torch::randn_like(p);
    fused.step();
  }
  std::ostringstream saved;
  {
    torch::serialize::OutputArchive archive;
    fused.save(archive);
    archive.save_to(saved);
  }
  for (size_t i = 0; i < a.size(); ++i) b[i].detach().copy_(a[i].detach());
  torch::optim::Adam reference(b, torch::optim::AdamOptions(1e-2));
  std::istringstream in(saved.str());
  torch::serialize::InputArchive archive;
  archive.load_from(in);
  reference.load(archive);
  for (size_t i = 0; i < a.size(); ++i) {
    const torch::Tensor g = torch::randn_like(a[i]);
    a[i].mutable_grad() = g.clone();
    b[i].mutable_grad() = g.clone();
  }
  fused.step();
  reference.step();
  EXPECT_EQ(fused.fused_steps(), 4);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-5, 1e-7)) << i;
  // The registry builds the fused optimizers.
  OptimizerConfig config;
  for (const std::string type : {"adam", "adamw"}) {
    config.type = type;
    auto built = make_optimizer(std::vector<ParameterGroup>{{a, true, 1.0}}, config);
    EXPECT_TRUE(dynamic_cast<FusedAdam*>(built.get()) != nullptr ||
                dynamic_cast<FusedAdamW*>(built.get()) != nullptr)
        << type;
  }
}

TEST(Registry, TablesAreSortedAndListed) {
  auto sorted = [](std::vector<std::string> names) {
    return std::is_sorted(names.begin(), names.end());
  };
  EXPECT_TRUE(sorted(registry_names(model_registry())));
  EXPECT_TRUE(sorted(registry_names(task_registry())));
  EXPECT_TRUE(sorted(registry_names(optimizer_registry())));
  EXPECT_TRUE(sorted(registry_names(scheduler_registry())));
  EXPECT_TRUE(sorted(registry_names(tokenizer_registry())));
  const std::string listed = format_registries();
  for (const char* name : {"text_cnn_bilstm_attention", "classification", "adamw", "sgd", "cosine",
                           "inverse_sqrt", "whitespace", "char", "wordpiece"}) {
    EXPECT_NE(listed.find(name), std::string::npos) << name;
  }
  try {
    find_entry(optimizer_registry(), "lion", "optimizer type");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "unknown optimizer type 'lion'; registered: adam, adamw, sgd");
  }
}

TEST(Registry, WordpieceTokenizerFromConfig) {
  const std::string vocab =
      std::string(NLPKIT_SOURCE_DIR) + "/tests/data/golden/wordpiece_basic/vocab.txt";
  ExperimentConfig c =
      parse_config("tokenizer: {type: wordpiece, vocab: " + vocab + "}\n", "x.yaml");
  const auto& entry = find_entry(tokenizer_registry(), c.tokenizer.type, "tokenizer type");
  EXPECT_EQ(entry.build(c.tokenizer)->tokenize("Information, World"),
            (std::vector<std::string>{"information", ",", "world"}));
  c.tokenizer.lowercase = false;
  EXPECT_EQ(entry.build(c.tokenizer)->tokenize("Information"),
            (std::vector<std::string>{"Information"}));
  c.tokenizer.vocab = "";
  EXPECT_ERROR(entry.build(c.tokenizer),
               "tokenizer.vocab: tokenizer.type wordpiece needs a vocab.txt");
  c.tokenizer.vocab = "/nonexistent/vocab.txt";
  EXPECT_ERROR(entry.build(c.tokenizer), "vocab file not found: /nonexistent/vocab.txt");
}

}  // namespace
}  // namespace nlpkit
