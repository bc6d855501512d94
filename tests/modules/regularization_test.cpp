#include "modules/regularization.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, double rtol = 1e-5,
                  double atol = 1e-6) {
  ASSERT_EQ(actual.sizes(), expected.sizes());
  EXPECT_TRUE(torch::allclose(actual, expected, rtol, atol))
      << "max abs difference " << (actual - expected).abs().max().item<double>();
}

// ---------------------------------------------------------------------------------------------
// Dropout

TEST(DropoutTest, EvalIsIdentityLikeTorch) {
  Dropout dropout(0.5);
  torch::nn::Dropout reference(0.5);
  dropout->eval();
  reference->eval();
  torch::Tensor x = torch::randn({4, 7});
  EXPECT_TRUE(torch::equal(dropout(x), x));
  EXPECT_TRUE(torch::equal(dropout(x), reference(x)));
}

TEST(DropoutTest, TrainingZeroesAboutPAndScalesSurvivorsExactly) {
  torch::manual_seed(0);
  const double p = 0.3;
  Dropout dropout(p);
  dropout->train();
  torch::Tensor x = torch::rand({200, 100}) + 0.5;  // no zeros in the input
  torch::Tensor y = dropout(x);
  const torch::Tensor zeroed = y == 0;
  const double zero_fraction = zeroed.to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(zero_fraction, p, 0.02);  // 20000 draws: std ~0.003
  const torch::Tensor kept = ~zeroed;
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  EXPECT_TRUE(torch::equal(y.masked_select(kept), x.masked_select(kept) * scale));
}

TEST(DropoutTest, PreservesExpectation) {
  torch::manual_seed(1);
  Dropout dropout(0.5);
  torch::Tensor x = torch::full({100000}, 2.0);
  EXPECT_NEAR(dropout(x).mean().item<double>(), 2.0, 0.03);  // std of the mean ~0.006
}

TEST(DropoutTest, ReproducibleUnderManualSeedAndMatchesTorchOnCpu) {
  Dropout dropout(0.25);
  torch::nn::Dropout reference(0.25);
  torch::Tensor x = torch::randn({16, 9});
  torch::manual_seed(42);
  torch::Tensor first = dropout(x);
  torch::manual_seed(42);
  torch::Tensor second = dropout(x);
  EXPECT_TRUE(torch::equal(first, second));
  torch::Tensor third = dropout(x);  // the generator moved on
  EXPECT_FALSE(torch::equal(second, third));
  // Same draws and arithmetic as ATen's CPU dropout.
  torch::manual_seed(42);
  EXPECT_TRUE(torch::equal(first, reference(x)));
}

TEST(DropoutTest, PZeroIsIdentityInTraining) {
  Dropout dropout(0.0);
  torch::Tensor x = torch::randn({5, 5});
  EXPECT_TRUE(torch::equal(dropout(x), x));
}

TEST(DropoutTest, GradientIsTheMask) {
  torch::manual_seed(3);
  Dropout dropout(0.5);
  torch::Tensor x = torch::randn({50}, torch::requires_grad());
  torch::Tensor y = dropout(x);
  y.sum().backward();
  const torch::Tensor expected = (y != 0).to(torch::kFloat) * 2.0;
  EXPECT_TRUE(torch::equal(x.grad(), expected));
}

TEST(DropoutTest, BadPThrows) {
  EXPECT_THROW_WITH(Dropout(1.0), "Dropout: p must be in [0, 1), got 1");
  EXPECT_THROW_WITH(Dropout(-0.1), "Dropout: p must be in [0, 1), got -0.1");
}

TEST(DropoutTest, NoStateAndPrettyPrint) {
  Dropout dropout(0.15);
  EXPECT_TRUE(state_keys(*dropout).empty());
  EXPECT_EQ(printed(*dropout), "Dropout(p=0.15)");
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

// Copies our parameters into torch's module so that both compute the same function.
void copy_affine(torch::Tensor from_weight, torch::Tensor from_bias, torch::Tensor to_weight,
                 torch::Tensor to_bias) {
  torch::NoGradGuard no_grad;
  to_weight.copy_(from_weight);
  to_bias.copy_(from_bias);
}

TEST(LayerNormTest, MatchesTorchOutputsAndGradients) {
  torch::manual_seed(0);
  LayerNorm norm(LayerNormOptions({3, 5}).eps(1e-3));
  torch::nn::LayerNorm reference(torch::nn::LayerNormOptions({3, 5}).eps(1e-3));
  {
    torch::NoGradGuard no_grad;
    norm->weight.normal_();
    norm->bias.normal_();
  }
  copy_affine(norm->weight, norm->bias, reference->weight, reference->bias);

  torch::Tensor x = (torch::randn({2, 4, 3, 5}) * 3 + 1).requires_grad_();
  torch::Tensor x_ref = x.detach().clone().requires_grad_();
  torch::Tensor y = norm(x);
  torch::Tensor y_ref = reference(x_ref);
  expect_close(y, y_ref);

  torch::Tensor upstream = torch::randn_like(y);
  (y * upstream).sum().backward();
  (y_ref * upstream).sum().backward();
  expect_close(x.grad(), x_ref.grad(), 1e-4, 1e-5);
  expect_close(norm->weight.grad(), reference->weight.grad(), 1e-4, 1e-5);
  expect_close(norm->bias.grad(), reference->bias.grad(), 1e-4, 1e-5);
}

TEST(LayerNormTest, MatchesTorchInDoubleTightly) {
  torch::manual_seed(1);
  LayerNorm norm(LayerNormOptions({6}).elementwise_affine(false));
  torch::nn::LayerNorm reference(torch::nn::LayerNormOptions({6}).elementwise_affine(false));
  torch::Tensor x = torch::randn({3, 6}, torch::kDouble) * 10;
  expect_close(norm(x), reference(x), 1e-12, 1e-12);
  // Biased variance: a row normalizes to unit mean square.
  EXPECT_NEAR(norm(x).pow(2).mean(1)[0].item<double>(), 1.0, 1e-4);
}

TEST(LayerNormTest, StateKeysAndPrettyPrint) {
  LayerNorm norm(LayerNormOptions({4}));
  EXPECT_EQ(state_keys(*norm), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(printed(*norm), "LayerNorm(normalized_shape=[4], eps=1e-05, elementwise_affine=true)");
  LayerNorm plain(LayerNormOptions({2, 3}).elementwise_affine(false));
  EXPECT_TRUE(state_keys(*plain).empty());
  EXPECT_EQ(printed(*plain),
            "LayerNorm(normalized_shape=[2, 3], eps=1e-05, elementwise_affine=false)");
}

TEST(LayerNormTest, BadOptionsAndInputThrow) {
  EXPECT_THROW_WITH(LayerNorm(LayerNormOptions({})), "normalized_shape must not be empty");
  EXPECT_THROW_WITH(LayerNorm(LayerNormOptions({4, 0})),
                    "normalized_shape entries must be positive, got 0");
  EXPECT_THROW_WITH(LayerNorm(LayerNormOptions({4}).eps(-1)), "eps must be non-negative");
  LayerNorm norm(LayerNormOptions({4}));
  EXPECT_THROW_WITH(norm(torch::randn({2, 3})),
                    "LayerNorm: expected an input whose last 1 dimension(s) are normalized_shape "
                    "[4], got input of shape [2, 3]");
}

// ---------------------------------------------------------------------------------------------
// BatchNorm

// Trains, differentiates and evaluates our BatchNorm and a LibTorch one side by side.
template <typename Reference>
void check_batchnorm_parity(Reference reference, std::vector<int64_t> shape) {
  const int64_t c = shape[1];
  BatchNorm norm(BatchNormOptions(c).momentum(0.3).eps(1e-4));
  reference->options.momentum(0.3).eps(1e-4);
  {
    torch::NoGradGuard no_grad;
    norm->weight.normal_();
    norm->bias.normal_();
    reference->weight.copy_(norm->weight);
    reference->bias.copy_(norm->bias);
  }
  // Several training steps: outputs, input and parameter gradients, running statistics.
  for (int step = 0; step < 3; ++step) {
    torch::Tensor x = (torch::randn(shape) * (step + 1) + step).requires_grad_();
    torch::Tensor x_ref = x.detach().clone().requires_grad_();
    norm->zero_grad();
    reference->zero_grad();
    torch::Tensor y = norm(x);
    torch::Tensor y_ref = reference(x_ref);
    expect_close(y, y_ref);
    torch::Tensor upstream = torch::randn_like(y);
    (y * upstream).sum().backward();
    (y_ref * upstream).sum().backward();
    expect_close(x.grad(), x_ref.grad(), 1e-4, 1e-5);
    expect_close(norm->weight.grad(), reference->weight.grad(), 1e-4, 1e-5);
    expect_close(norm->bias.grad(), reference->bias.grad(), 1e-4, 1e-5);
    expect_close(norm->running_mean, reference->running_mean);
    expect_close(norm->running_var, reference->running_var);
    EXPECT_EQ(norm->num_batches_tracked.template item<int64_t>(), step + 1);
    EXPECT_EQ(reference->num_batches_tracked.template item<int64_t>(), step + 1);
  }
  // Eval normalizes with the running statistics.
  norm->eval();
  reference->eval();
  torch::Tensor x = torch::randn(shape) * 2;
  expect_close(norm(x), reference(x));
  EXPECT_EQ(norm->num_batches_tracked.template item<int64_t>(), 3);  // eval does not count
}

TEST(BatchNormTest, MatchesBatchNorm1dOn2dInput) {
  torch::manual_seed(0);
  check_batchnorm_parity(torch::nn::BatchNorm1d(4), {8, 4});
}

TEST(BatchNormTest, MatchesBatchNorm1dOn3dInput) {
  torch::manual_seed(1);
  check_batchnorm_parity(torch::nn::BatchNorm1d(3), {5, 3, 7});
}

TEST(BatchNormTest, MatchesBatchNorm2d) {
  torch::manual_seed(2);
  check_batchnorm_parity(torch::nn::BatchNorm2d(3), {4, 3, 5, 6});
}

TEST(BatchNormTest, CumulativeAverageWithoutMomentum) {
  torch::manual_seed(3);
  BatchNorm norm(BatchNormOptions(2).momentum(std::nullopt));
  torch::nn::BatchNorm1d reference(torch::nn::BatchNorm1dOptions(2).momentum(c10::nullopt));
  for (int step = 0; step < 4; ++step) {
    torch::Tensor x = torch::randn({6, 2}) + step;
    expect_close(norm(x), reference(x));
  }
  expect_close(norm->running_mean, reference->running_mean);
  expect_close(norm->running_var, reference->running_var);
}

TEST(BatchNormTest, WithoutRunningStatsEvalUsesBatchStatistics) {
  torch::manual_seed(4);
  BatchNorm norm(BatchNormOptions(3).track_running_stats(false).affine(false));
  torch::nn::BatchNorm1d reference(
      torch::nn::BatchNorm1dOptions(3).track_running_stats(false).affine(false));
  EXPECT_TRUE(state_keys(*norm).empty());
  norm->eval();
  reference->eval();
  torch::Tensor x = torch::randn({10, 3}) * 5 + 2;
  expect_close(norm(x), reference(x));
  // Batch statistics: each channel comes out with zero mean.
  EXPECT_LT(norm(x).mean(0).abs().max().item<double>(), 1e-5);
}

TEST(BatchNormTest, StateKeysMatchPyTorch) {
  BatchNorm norm(4);
  EXPECT_EQ(state_keys(*norm), (std::vector<std::string>{"weight", "bias", "running_mean",
                                                         "running_var", "num_batches_tracked"}));
  std::vector<std::string> torch_keys = state_keys(*torch::nn::BatchNorm2d(4));
  EXPECT_EQ(state_keys(*norm), torch_keys);
  EXPECT_EQ(norm->num_batches_tracked.scalar_type(), torch::kLong);
}

TEST(BatchNormTest, PrettyPrint) {
  EXPECT_EQ(printed(*BatchNorm(4)),
            "BatchNorm(num_features=4, eps=1e-05, momentum=0.1, affine=true, "
            "track_running_stats=true)");
  EXPECT_EQ(printed(*BatchNorm(BatchNormOptions(2).momentum(std::nullopt).affine(false))),
            "BatchNorm(num_features=2, eps=1e-05, momentum=none, affine=false, "
            "track_running_stats=true)");
}

TEST(BatchNormTest, BadOptionsAndInputThrow) {
  EXPECT_THROW_WITH(BatchNorm(0), "BatchNorm: num_features must be positive, got 0");
  EXPECT_THROW_WITH(BatchNorm(BatchNormOptions(2).momentum(1.5)),
                    "BatchNorm: momentum must be in [0, 1], got 1.5");
  EXPECT_THROW_WITH(BatchNorm(BatchNormOptions(2).eps(-1e-5)), "eps must be non-negative");
  BatchNorm norm(3);
  EXPECT_THROW_WITH(norm(torch::randn({3})), "got 1-D input of shape [3]");
  EXPECT_THROW_WITH(norm(torch::randn({2, 3, 4, 5, 6})), "got 5-D input");
  EXPECT_THROW_WITH(norm(torch::randn({2, 4})),
                    "BatchNorm: expected 3 channels (num_features) in dimension 1, got input of "
                    "shape [2, 4]");
  EXPECT_THROW_WITH(norm(torch::randn({1, 3})),
                    "expected more than 1 value per channel when training");
  norm->eval();
  EXPECT_NO_THROW(norm(torch::randn({1, 3})));  // running statistics need no batch
}

TEST(BatchNormTest, CloneIsDeep) {
  BatchNorm norm(2);
  norm(torch::randn({4, 2}));
  auto copy = std::dynamic_pointer_cast<BatchNormImpl>(norm->clone());
  ASSERT_TRUE(copy);
  EXPECT_TRUE(torch::equal(copy->running_mean, norm->running_mean));
  norm(torch::randn({4, 2}) + 5);
  EXPECT_FALSE(torch::equal(copy->running_mean, norm->running_mean));
  EXPECT_EQ(copy->num_batches_tracked.item<int64_t>(), 1);
}

}  // namespace
}  // namespace nlpkit
