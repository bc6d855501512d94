#include "modules/lora.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "modules/regularization.h"
#include "tests/test_util.h"

namespace nlpkit {
namespace {

void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, double atol = 1e-6) {
  ASSERT_EQ(actual.sizes(), expected.sizes());
  EXPECT_TRUE(torch::allclose(actual, expected, /*rtol=*/1e-5, atol))
      << "max abs difference " << (actual - expected).abs().max().item<double>();
}

/// Gives the adapter a non-zero B, as after some training, so that it changes the outputs.
void randomize_b(LoRALinearImpl& layer) {
  torch::NoGradGuard no_grad;
  layer.lora_B.normal_(0, 0.5);
}

/// Two residual blocks of Sequential(LoRALinear, ReLU, LoRALinear) in a ModuleList and a head:
/// module names blocks.0.0, blocks.0.2, blocks.1.0, blocks.1.2, head.
struct TinyNetImpl : torch::nn::Module {
  TinyNetImpl() {
    blocks = register_module("blocks", torch::nn::ModuleList());
    for (int i = 0; i < 2; ++i) {
      blocks->push_back(
          torch::nn::Sequential(LoRALinear(4, 8), torch::nn::ReLU(), LoRALinear(8, 4)));
    }
    head = register_module("head", LoRALinear(4, 2));
  }
  torch::Tensor forward(torch::Tensor x) {
    for (const auto& block : *blocks) x = x + block->as<torch::nn::Sequential>()->forward(x);
    return head(x);
  }
  torch::nn::ModuleList blocks{nullptr};
  LoRALinear head{nullptr};
};
TORCH_MODULE(TinyNet);

// ---------------------------------------------------------------------------------------------
// Without an adapter: torch::nn::Linear

TEST(LoRALinearTest, InitialisationIsTorchLinears) {
  for (const bool bias : {true, false}) {
    torch::manual_seed(7);
    torch::nn::Linear reference(torch::nn::LinearOptions(5, 3).bias(bias));
    torch::manual_seed(7);
    LoRALinear layer(torch::nn::LinearOptions(5, 3).bias(bias));
    EXPECT_TRUE(torch::equal(layer->weight, reference->weight));
    ASSERT_EQ(layer->bias.defined(), bias);
    if (bias) {
      EXPECT_TRUE(torch::equal(layer->bias, reference->bias));
    }
  }
}

TEST(LoRALinearTest, OutputAndGradientsEqualTorchLinear) {
  for (const bool bias : {true, false}) {
    torch::nn::Linear reference(torch::nn::LinearOptions(5, 3).bias(bias));
    LoRALinear layer(5, 3, bias);
    {
      torch::NoGradGuard no_grad;
      layer->weight.copy_(reference->weight);
      if (bias) layer->bias.copy_(reference->bias);
    }
    const torch::Tensor x = torch::randn({2, 4, 5});
    const torch::Tensor x_ref = x.clone().requires_grad_(true);
    const torch::Tensor x_ours = x.clone().requires_grad_(true);
    const torch::Tensor y_ref = reference(x_ref);
    const torch::Tensor y = layer(x_ours);
    EXPECT_TRUE(torch::equal(y, y_ref));
    const torch::Tensor g = torch::randn_like(y);
    y_ref.backward(g);
    y.backward(g);
    EXPECT_TRUE(torch::equal(x_ours.grad(), x_ref.grad()));
    EXPECT_TRUE(torch::equal(layer->weight.grad(), reference->weight.grad()));
    if (bias) {
      EXPECT_TRUE(torch::equal(layer->bias.grad(), reference->bias.grad()));
    }
  }
}

TEST(LoRALinearTest, StateDictKeysAndShapes) {
  LoRALinear layer(5, 3);
  EXPECT_EQ(parameter_keys(*layer), (std::vector<std::string>{"weight", "bias"}));
  layer->add_adapter(LoRAOptions().rank(2));
  EXPECT_EQ(parameter_keys(*layer),
            (std::vector<std::string>{"weight", "bias", "lora_A", "lora_B"}));
  EXPECT_EQ(layer->lora_A.sizes(), (std::vector<int64_t>{2, 5}));  // (r, in)
  EXPECT_EQ(layer->lora_B.sizes(), (std::vector<int64_t>{3, 2}));  // (out, r)
  // The members are the registered tensors, not copies.
  EXPECT_TRUE(layer->named_parameters()["lora_A"].is_same(layer->lora_A));

  LoRALinear no_bias(torch::nn::LinearOptions(5, 3).bias(false));
  no_bias->add_adapter(LoRAOptions());
  EXPECT_EQ(parameter_keys(*no_bias), (std::vector<std::string>{"weight", "lora_A", "lora_B"}));
}

TEST(LoRALinearTest, PrettyPrint) {
  LoRALinear layer(torch::nn::LinearOptions(4, 3).bias(false));
  EXPECT_EQ(printed(*layer), "LoRALinear(in_features=4, out_features=3, bias=false)");
  layer->add_adapter(LoRAOptions().rank(2).alpha(4).dropout(0.1));
  EXPECT_EQ(printed(*layer),
            "LoRALinear(in_features=4, out_features=3, bias=false, rank=2, alpha=4, dropout=0.1)");
  layer->merge();
  EXPECT_EQ(printed(*layer), "LoRALinear(in_features=4, out_features=3, bias=false)");
}

// ---------------------------------------------------------------------------------------------
// The adapter

TEST(LoRALinearTest, AdapterStartsAsNoOpLikeLoralib) {
  LoRALinear layer(16, 3);
  const torch::Tensor x = torch::randn({4, 16});
  const torch::Tensor before = layer(x);
  layer->add_adapter(LoRAOptions().rank(4));
  EXPECT_TRUE(torch::equal(layer(x), before));
  EXPECT_TRUE(torch::equal(layer->lora_B, torch::zeros({3, 4})));
  // kaiming_uniform_(a=sqrt(5)) on (r, in) is U(-1/sqrt(in), 1/sqrt(in)).
  EXPECT_LE(layer->lora_A.abs().max().item<double>(), 1.0 / std::sqrt(16.0));
  EXPECT_GT(layer->lora_A.abs().max().item<double>(), 0.5 / std::sqrt(16.0));
  // loralib freezes the pre-trained weight; the bias and adapters stay trainable.
  EXPECT_FALSE(layer->weight.requires_grad());
  EXPECT_TRUE(layer->bias.requires_grad());
  EXPECT_TRUE(layer->lora_A.requires_grad());
  EXPECT_TRUE(layer->lora_B.requires_grad());
  EXPECT_DOUBLE_EQ(layer->scaling(), 16.0 / 4);
}

TEST(LoRALinearTest, AdapterFollowsTheWeightsDtype) {
  LoRALinear layer(5, 3);
  layer->to(torch::kDouble);
  layer->add_adapter(LoRAOptions().rank(2));
  EXPECT_EQ(layer->lora_A.scalar_type(), torch::kDouble);
  EXPECT_EQ(layer->lora_B.scalar_type(), torch::kDouble);
  EXPECT_EQ(layer(torch::randn({2, 5}, torch::kDouble)).scalar_type(), torch::kDouble);
}

TEST(LoRALinearTest, ForwardIsLinearWithMergedWeightAndMergeKeepsIt) {
  LoRALinear layer(6, 5);
  layer->add_adapter(LoRAOptions().rank(3).alpha(6));
  randomize_b(*layer);
  const torch::Tensor x = torch::randn({2, 7, 6});
  const torch::Tensor y = layer(x);
  const torch::Tensor merged_weight =
      layer->weight + torch::mm(layer->lora_B, layer->lora_A) * (6.0 / 3.0);
  expect_close(y, torch::linear(x, merged_weight, layer->bias));
  EXPECT_FALSE(torch::allclose(y, torch::linear(x, layer->weight, layer->bias)));

  layer->merge();
  EXPECT_FALSE(layer->has_adapter());
  EXPECT_FALSE(layer->lora_A.defined());
  EXPECT_EQ(parameter_keys(*layer), (std::vector<std::string>{"weight", "bias"}));
  expect_close(layer->weight, merged_weight.detach());
  expect_close(layer(x), y);
  // A new adapter may be added after a merge (e.g. a second fine-tuning stage).
  layer->add_adapter(LoRAOptions().rank(1));
  expect_close(layer(x), y);
}

TEST(LoRALinearTest, DropoutOnlyOnTheAdapterPathAndOnlyInTraining) {
  LoRALinear layer(6, 5);
  layer->add_adapter(LoRAOptions().rank(2).alpha(2).dropout(0.5));
  randomize_b(*layer);
  const torch::Tensor x = torch::randn({8, 6});
  const torch::Tensor base = torch::linear(x, layer->weight, layer->bias);
  const torch::Tensor update = torch::linear(torch::linear(x, layer->lora_A), layer->lora_B);
  layer->eval();
  expect_close(layer(x), base + update);
  layer->train();
  torch::manual_seed(3);
  const torch::Tensor y = layer(x);
  EXPECT_FALSE(torch::allclose(y, base + update));
  // Same mask from the same seed: the frozen path is never dropped.
  torch::manual_seed(3);
  const torch::Tensor dropped = nlpkit::dropout(x, 0.5, /*train=*/true);
  expect_close(y, base + torch::linear(torch::linear(dropped, layer->lora_A), layer->lora_B));
}

TEST(LoRALinearTest, CloneKeepsTheAdapter) {
  LoRALinear layer(4, 3);
  layer->add_adapter(LoRAOptions().rank(2));
  randomize_b(*layer);
  auto copy = std::dynamic_pointer_cast<LoRALinearImpl>(layer->clone());
  ASSERT_TRUE(copy);
  EXPECT_TRUE(copy->has_adapter());
  EXPECT_EQ(parameter_keys(*copy), parameter_keys(*layer));
  const torch::Tensor x = torch::randn({2, 4});
  EXPECT_TRUE(torch::equal(copy->forward(x), layer(x)));
  EXPECT_FALSE(copy->lora_B.is_same(layer->lora_B));
  EXPECT_FALSE(copy->weight.requires_grad());
}

TEST(LoRALinearTest, OverfitsALowRankUpdateWithOnlyTheAdapterTraining) {
  torch::manual_seed(0);
  LoRALinear layer(8, 6);
  // The target differs from the layer by a rank-2 update of the weight.
  const torch::Tensor delta = torch::randn({6, 2}).mm(torch::randn({2, 8})) * 0.3;
  const torch::Tensor x = torch::randn({64, 8});
  const torch::Tensor target = torch::linear(x, layer->weight + delta, layer->bias).detach();
  const torch::Tensor weight_before = layer->weight.clone();
  const torch::Tensor bias_before = layer->bias.clone();

  layer->add_adapter(LoRAOptions().rank(2).alpha(2));
  mark_only_lora_trainable(*layer);
  std::vector<torch::Tensor> trainable;
  for (const auto& p : layer->parameters()) {
    if (p.requires_grad()) trainable.push_back(p);
  }
  ASSERT_EQ(trainable.size(), 2u);
  torch::optim::Adam optimizer(trainable, torch::optim::AdamOptions(3e-2));
  const double initial = torch::mse_loss(layer(x), target).item<double>();
  double loss = initial;
  for (int step = 0; step < 400; ++step) {
    optimizer.zero_grad();
    torch::Tensor l = torch::mse_loss(layer(x), target);
    l.backward();
    optimizer.step();
    loss = l.item<double>();
  }
  EXPECT_LT(loss, initial * 1e-3) << "initial " << initial;
  EXPECT_TRUE(torch::equal(layer->weight, weight_before));
  EXPECT_TRUE(torch::equal(layer->bias, bias_before));
}

// ---------------------------------------------------------------------------------------------
// Whole-model helpers

TEST(LoRAModelTest, AddLoraByPatternOnNestedModules) {
  TinyNet net;
  const std::vector<std::string> keys_before = parameter_keys(*net);
  const std::vector<std::string> added =
      add_lora(*net, "^blocks\\.\\d+\\.0$", LoRAOptions().rank(2));
  EXPECT_EQ(added, (std::vector<std::string>{"blocks.0.0", "blocks.1.0"}));
  EXPECT_TRUE(net->blocks[0]->as<torch::nn::Sequential>()->ptr<LoRALinearImpl>(0)->has_adapter());
  EXPECT_FALSE(net->blocks[0]->as<torch::nn::Sequential>()->ptr<LoRALinearImpl>(2)->has_adapter());
  EXPECT_FALSE(net->head->has_adapter());
  const std::vector<std::string> keys = parameter_keys(*net);
  EXPECT_NE(std::find(keys.begin(), keys.end(), "blocks.1.0.lora_B"), keys.end());
  EXPECT_EQ(keys.size(), keys_before.size() + 4);

  std::vector<std::string> state_keys;
  for (const auto& [name, tensor] : lora_state(*net)) state_keys.push_back(name);
  EXPECT_EQ(state_keys, (std::vector<std::string>{"blocks.0.0.lora_A", "blocks.0.0.lora_B",
                                                  "blocks.1.0.lora_A", "blocks.1.0.lora_B"}));
  state_keys.clear();
  for (const auto& [name, tensor] : lora_state(*net, "^head\\.")) state_keys.push_back(name);
  EXPECT_EQ(state_keys.size(), 6u);
  EXPECT_EQ(state_keys.back(), "head.bias");
}

TEST(LoRAModelTest, GradientsReachOnlyAdaptersAndAlsoTrain) {
  TinyNet net;
  add_lora(*net, "\\.2$", LoRAOptions().rank(2));
  for (auto& block : *net->blocks) {
    randomize_b(*block->as<torch::nn::Sequential>()->ptr<LoRALinearImpl>(2));
  }
  mark_only_lora_trainable(*net, "^head\\.");
  net(torch::randn({3, 4})).sum().backward();
  for (const auto& item : net->named_parameters()) {
    const std::string& name = item.key();
    const bool trained = name.find("lora_") != std::string::npos || name.rfind("head.", 0) == 0;
    EXPECT_EQ(item.value().requires_grad(), trained) << name;
    if (trained) {
      ASSERT_TRUE(item.value().grad().defined()) << name;
      EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0) << name;
    } else {
      EXPECT_FALSE(item.value().grad().defined()) << name;
    }
  }
}

TEST(LoRAModelTest, MergeLoraRestoresTheKeysAndKeepsTheOutputs) {
  TinyNet net;
  const std::vector<std::string> keys_before = parameter_keys(*net);
  add_lora(*net, "", LoRAOptions().rank(2).alpha(4));  // every LoRALinear
  for (auto& block : *net->blocks) {
    auto* seq = block->as<torch::nn::Sequential>();
    for (int i : {0, 2}) randomize_b(*seq->ptr<LoRALinearImpl>(i));
  }
  const torch::Tensor x = torch::randn({5, 4});
  const torch::Tensor y = net(x);
  merge_lora(*net);
  EXPECT_EQ(parameter_keys(*net), keys_before);
  EXPECT_TRUE(lora_state(*net).empty());
  expect_close(net(x), y);
  merge_lora(*net);  // nothing left to merge: a no-op
  expect_close(net(x), y);
}

TEST(LoRAModelTest, RootLayerItself) {
  LoRALinear layer(3, 2);
  EXPECT_EQ(add_lora(*layer, "^$", LoRAOptions().rank(1)), (std::vector<std::string>{""}));
  EXPECT_TRUE(layer->has_adapter());
  std::vector<std::string> state_keys;
  for (const auto& [name, tensor] : lora_state(*layer)) state_keys.push_back(name);
  EXPECT_EQ(state_keys, (std::vector<std::string>{"lora_A", "lora_B"}));
}

// ---------------------------------------------------------------------------------------------
// Bad input

TEST(LoRAErrorsTest, BadAdapterOptions) {
  LoRALinear layer(4, 3);
  EXPECT_THROW_WITH(layer->add_adapter(LoRAOptions().rank(0)), "rank must be positive, got 0");
  EXPECT_THROW_WITH(layer->add_adapter(LoRAOptions().dropout(1.0)),
                    "dropout must be in [0, 1), got 1");
  EXPECT_FALSE(layer->has_adapter());
  EXPECT_EQ(parameter_keys(*layer), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_THROW_WITH(layer->merge(), "merge() needs an adapter");
  EXPECT_THROW_WITH(layer->scaling(), "has no adapter");
}

TEST(LoRAErrorsTest, AdapterAddedTwice) {
  LoRALinear layer(4, 3);
  layer->add_adapter(LoRAOptions().rank(2));
  EXPECT_THROW_WITH(layer->add_adapter(LoRAOptions()), "adapter is already present (rank 2)");

  TinyNet net;
  add_lora(*net, "^head$", LoRAOptions());
  // Nothing changes when one of the matches already has an adapter.
  EXPECT_THROW_WITH(add_lora(*net, "0$|head", LoRAOptions()), "'head' already has an adapter");
  EXPECT_FALSE(net->blocks[0]->as<torch::nn::Sequential>()->ptr<LoRALinearImpl>(0)->has_adapter());
}

TEST(LoRAErrorsTest, PatternsThatMatchNothingListTheCandidates) {
  TinyNet net;
  EXPECT_THROW_WITH(add_lora(*net, "query", LoRAOptions()),
                    "add_lora: pattern 'query' matches none of the 5 LoRALinear layers: "
                    "blocks.0.0, blocks.0.2, blocks.1.0, blocks.1.2, head");
  EXPECT_THROW_WITH(add_lora(*net, "blocks.(", LoRAOptions()),
                    "add_lora: pattern 'blocks.(' is not a valid regex");
  EXPECT_EQ(lora_state(*net).size(), 0u);

  torch::nn::Sequential plain(torch::nn::Linear(2, 2));
  EXPECT_THROW_WITH(add_lora(*plain, "0", LoRAOptions()),
                    "matches none of the 0 LoRALinear layers: none");

  add_lora(*net, "head", LoRAOptions());
  EXPECT_THROW_WITH(mark_only_lora_trainable(*net, "^classifier\\."),
                    "also_train '^classifier\\.' matches none of the 12 parameters: "
                    "blocks.0.0.weight, blocks.0.0.bias");
  EXPECT_THROW_WITH(lora_state(*net, "^pooler"), "also_save '^pooler' matches none");
  EXPECT_THROW_WITH(mark_only_lora_trainable(*plain), "every parameter would be frozen");
}

}  // namespace
}  // namespace nlpkit
