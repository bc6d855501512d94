#include "modules/regularization.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "trainers/safetensors.h"

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

TEST(DropoutTest, ReproducibleUnderManualSeed) {
  Dropout dropout(0.25);
  torch::Tensor x = torch::randn({16, 9});
  torch::manual_seed(42);
  torch::Tensor first = dropout(x);
  torch::manual_seed(42);
  torch::Tensor second = dropout(x);
  EXPECT_TRUE(torch::equal(first, second));
  torch::Tensor third = dropout(x);  // the generator moved on
  EXPECT_FALSE(torch::equal(second, third));
}

TEST(DropoutTest, MaskDoesNotDependOnTheNumberOfThreads) {
  const int threads = torch::get_num_threads();
  torch::Tensor x = torch::ones({300001});  // odd, several parallel chunks
  torch::set_num_threads(1);
  torch::manual_seed(5);
  torch::Tensor one = nlpkit::dropout(x, 0.1, true);
  torch::set_num_threads(std::max(2, threads));
  torch::manual_seed(5);
  torch::Tensor many = nlpkit::dropout(x, 0.1, true);
  torch::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one, many));
  // The last (odd) element is drawn too, and the draws are not all alike.
  EXPECT_NEAR((one == 0).to(torch::kDouble).mean().item<double>(), 0.1, 0.003);
}

TEST(DropoutTest, NeighbouringElementsAreIndependent) {
  // Elements 2k and 2k+1 share one 64-bit draw: their drops must still be independent.
  torch::manual_seed(6);
  const torch::Tensor ones = torch::ones({400000});
  const torch::Tensor dropped = nlpkit::dropout(ones, 0.5, true).view({-1, 2}) == 0;
  const double both = (dropped.select(1, 0) & dropped.select(1, 1)).to(torch::kDouble).mean()
                          .item<double>();
  EXPECT_NEAR(both, 0.25, 0.005);  // 200000 pairs: std ~0.001
  // Successive calls draw new seeds: the masks of two calls agree on about half the elements.
  const torch::Tensor again = nlpkit::dropout(ones, 0.5, true).view({-1, 2}) == 0;
  EXPECT_NEAR((dropped == again).to(torch::kDouble).mean().item<double>(), 0.5, 0.005);
}

TEST(DropoutTest, GradientIsTheMaskTimesTheScaleAndTwiceDifferentiable) {
  torch::manual_seed(7);
  const double p = 0.4;
  torch::Tensor x = (torch::rand({50, 30}) + 0.5).requires_grad_();
  torch::Tensor y = nlpkit::dropout(x, p, true);
  const torch::Tensor kept = (y != 0).to(torch::kFloat);
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  // d(sum y^2)/dx = 2 y * mask * scale; its derivative again along x is 2 mask scale^2.
  torch::Tensor g = torch::autograd::grad({(y * y).sum()}, {x}, {}, true, true)[0];
  EXPECT_TRUE(torch::allclose(g, 2 * y.detach() * kept * scale));
  torch::Tensor gg = torch::autograd::grad({g.sum()}, {x})[0];
  EXPECT_TRUE(torch::allclose(gg, 2 * kept * scale * scale));
}

TEST(DropoutTest, NonContiguousAndReducedPrecisionInputs) {
  torch::manual_seed(8);
  torch::Tensor x = torch::rand({20, 40}).t() + 1;  // non-contiguous
  torch::Tensor y = nlpkit::dropout(x, 0.5, true);
  ASSERT_EQ(y.sizes(), x.sizes());
  const torch::Tensor kept = y != 0;
  EXPECT_TRUE(torch::allclose(y.masked_select(kept), x.masked_select(kept) * 2));
  torch::Tensor b = nlpkit::dropout(x.to(torch::kBFloat16), 0.5, true);
  EXPECT_EQ(b.scalar_type(), torch::kBFloat16);
  EXPECT_NEAR((b == 0).to(torch::kDouble).mean().item<double>(), 0.5, 0.1);
}

TEST(DropoutTest, RejectsBadP) {
  EXPECT_THROW_WITH(nlpkit::dropout(torch::ones({2}), 1.0, true), "p must be in [0, 1)");
  EXPECT_THROW_WITH(Dropout(-0.1), "p must be in [0, 1)");
}

TEST(DropoutTest, DropsOnGpu_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(9);
  torch::Tensor x = torch::ones({1000}, torch::kCUDA);
  const torch::Tensor y = nlpkit::dropout(x, 0.3, true);
  EXPECT_NEAR((y == 0).to(torch::kDouble).mean().item<double>(), 0.3, 0.06);
}

TEST(DropoutTest, TorchMasksOnRequest) {
  const bool before = torch_dropout_masks();
  torch::Tensor x = torch::randn({64, 33});
  set_torch_dropout_masks(true);
  torch::manual_seed(42);
  const torch::Tensor ours = nlpkit::dropout(x, 0.25, true);
  torch::manual_seed(42);
  EXPECT_TRUE(torch::equal(ours, torch::nn::Dropout(0.25)(x)));  // ATen's masks exactly
  set_torch_dropout_masks(false);
  torch::manual_seed(42);
  EXPECT_FALSE(torch::equal(nlpkit::dropout(x, 0.25, true), ours));  // the counter-based generator
  set_torch_dropout_masks(before);
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

// ---------------------------------------------------------------------------------------------
// InstanceNorm, GroupNorm, weight normalization

// Trains (three steps: outputs, gradients, running statistics) and evaluates an InstanceNorm
// and a LibTorch one side by side.
template <typename Reference>
void check_instancenorm_parity(InstanceNormOptions options, Reference reference,
                               std::vector<int64_t> shape) {
  InstanceNorm norm(options);
  if (options.affine()) {
    torch::NoGradGuard no_grad;
    norm->weight.normal_();
    norm->bias.normal_();
    reference->weight.copy_(norm->weight);
    reference->bias.copy_(norm->bias);
  }
  for (int step = 0; step < 3; ++step) {
    torch::Tensor x = (torch::randn(shape) * (step + 1) + step).requires_grad_();
    torch::Tensor x_ref = x.detach().clone().requires_grad_();
    torch::Tensor y = norm(x);
    torch::Tensor y_ref = reference(x_ref);
    expect_close(y, y_ref);
    const torch::Tensor upstream = torch::randn_like(y);
    (y * upstream).sum().backward();
    (y_ref * upstream).sum().backward();
    expect_close(x.grad(), x_ref.grad(), 1e-4, 1e-5);
    if (options.affine()) {
      expect_close(norm->weight.grad(), reference->weight.grad(), 1e-4, 1e-5);
      expect_close(norm->bias.grad(), reference->bias.grad(), 1e-4, 1e-5);
    }
    if (options.track_running_stats()) {
      expect_close(norm->running_mean, reference->running_mean);
      expect_close(norm->running_var, reference->running_var);
    }
  }
  norm->eval();
  reference->eval();
  const torch::Tensor x = torch::randn(shape) * 3 + 1;
  expect_close(norm(x), reference(x));
}

TEST(InstanceNormTest, MatchesInstanceNorm1d) {
  torch::manual_seed(10);
  check_instancenorm_parity(InstanceNormOptions(3), torch::nn::InstanceNorm1d(3), {4, 3, 9});
}

TEST(InstanceNormTest, MatchesInstanceNorm2dWithAffineAndRunningStats) {
  torch::manual_seed(11);
  check_instancenorm_parity(
      InstanceNormOptions(3).affine(true).track_running_stats(true).momentum(0.2).eps(1e-4),
      torch::nn::InstanceNorm2d(torch::nn::InstanceNorm2dOptions(3)
                                    .affine(true)
                                    .track_running_stats(true)
                                    .momentum(0.2)
                                    .eps(1e-4)),
      {2, 3, 5, 4});
}

TEST(InstanceNormTest, MatchesInstanceNorm3d) {
  torch::manual_seed(12);
  check_instancenorm_parity(InstanceNormOptions(2).affine(true),
                            torch::nn::InstanceNorm3d(torch::nn::InstanceNorm3dOptions(2).affine(true)),
                            {2, 2, 3, 4, 2});
}

TEST(InstanceNormTest, StateKeysPrintAndBadInput) {
  EXPECT_TRUE(state_keys(*InstanceNorm(4)).empty());
  InstanceNorm full(InstanceNormOptions(4).affine(true).track_running_stats(true));
  EXPECT_EQ(state_keys(*full), state_keys(*torch::nn::InstanceNorm2d(
                                   torch::nn::InstanceNorm2dOptions(4).affine(true).track_running_stats(true))));
  EXPECT_EQ(printed(*InstanceNorm(4)),
            "InstanceNorm(num_features=4, eps=1e-05, momentum=0.1, affine=false, "
            "track_running_stats=false)");
  EXPECT_THROW_WITH(InstanceNorm(0), "InstanceNorm: num_features must be positive, got 0");
  InstanceNorm norm(3);
  EXPECT_THROW_WITH(norm(torch::randn({2, 3})), "got 2-D input of shape [2, 3]");
  EXPECT_THROW_WITH(norm(torch::randn({2, 4, 5})),
                    "InstanceNorm: expected 3 channels (num_features) in dimension 1");
  EXPECT_THROW_WITH(norm(torch::randn({2, 3, 1})), "more than 1 spatial position");
}

TEST(GroupNormTest, MatchesLibTorchInTrainAndEvalWithGradients) {
  torch::manual_seed(13);
  for (const std::vector<int64_t>& shape :
       {std::vector<int64_t>{4, 6}, std::vector<int64_t>{3, 6, 5}, std::vector<int64_t>{2, 6, 3, 4}}) {
    for (int64_t groups : {1, 2, 3, 6}) {
      GroupNorm norm(GroupNormOptions(groups, 6).eps(1e-4));
      torch::nn::GroupNorm reference(torch::nn::GroupNormOptions(groups, 6).eps(1e-4));
      {
        torch::NoGradGuard no_grad;
        norm->weight.normal_();
        norm->bias.normal_();
        reference->weight.copy_(norm->weight);
        reference->bias.copy_(norm->bias);
      }
      torch::Tensor x = (torch::randn(shape) * 2 + 1).requires_grad_();
      torch::Tensor x_ref = x.detach().clone().requires_grad_();
      torch::Tensor y = norm(x), y_ref = reference(x_ref);
      // LibTorch's kernel accumulates the moments in another order: float rounding, ~1e-5.
      expect_close(y, y_ref, 1e-4, 1e-5);
      const torch::Tensor upstream = torch::randn_like(y);
      (y * upstream).sum().backward();
      (y_ref * upstream).sum().backward();
      expect_close(x.grad(), x_ref.grad(), 1e-4, 1e-5);
      expect_close(norm->weight.grad(), reference->weight.grad(), 1e-4, 1e-5);
      expect_close(norm->bias.grad(), reference->bias.grad(), 1e-4, 1e-5);
      norm->eval();
      reference->eval();
      expect_close(norm(x.detach()), reference(x.detach()), 1e-4, 1e-5);
    }
  }
}

TEST(GroupNormTest, StateKeysPrintAndBadInput) {
  EXPECT_EQ(state_keys(*GroupNorm(GroupNormOptions(2, 4))),
            state_keys(*torch::nn::GroupNorm(torch::nn::GroupNormOptions(2, 4))));
  EXPECT_TRUE(state_keys(*GroupNorm(GroupNormOptions(2, 4).affine(false))).empty());
  EXPECT_EQ(printed(*GroupNorm(GroupNormOptions(2, 4))),
            "GroupNorm(num_groups=2, num_channels=4, eps=1e-05, affine=true)");
  EXPECT_THROW_WITH(GroupNorm(GroupNormOptions(3, 4)),
                    "GroupNorm: num_channels (4) must be divisible by num_groups (3)");
  EXPECT_THROW_WITH(GroupNorm(GroupNormOptions(0, 4)), "must be positive");
  GroupNorm norm(GroupNormOptions(2, 4));
  EXPECT_THROW_WITH(norm(torch::randn({2, 5})), "GroupNorm: expected an (N, 4, *) input");
}

TEST(WeightNormTest, MatchesTorchWeightNormOnEveryDim) {
  torch::manual_seed(14);
  const torch::Tensor v = torch::randn({4, 3, 5});
  for (int64_t dim : {0, 1, 2}) {
    std::vector<int64_t> g_shape(3, 1);
    g_shape[dim] = v.size(dim);
    const torch::Tensor g = torch::rand(g_shape) + 0.5;
    expect_close(weight_norm(v, g, dim), torch::_weight_norm(v, g, dim));
  }
  const torch::Tensor g = torch::rand({}) + 0.5;
  expect_close(weight_norm(v, g, -1), torch::_weight_norm(v, g, -1));
  EXPECT_THROW_WITH(weight_norm(v, g, 3), "weight_norm: dim 3 out of range for a 3-D tensor");
}

TEST(WeightNormTest, LinearNamesInitGradientsAndParity) {
  torch::manual_seed(15);
  WeightNormLinear layer(WeightNormLinearOptions(5, 3));
  EXPECT_EQ(state_keys(*layer), (std::vector<std::string>{"weight_g", "weight_v", "bias"}));
  EXPECT_EQ(layer->weight_g.sizes(), torch::IntArrayRef({3, 1}));
  // g = ||v|| at initialisation: the effective weight is v itself.
  expect_close(layer->weight(), layer->weight_v);
  {
    torch::NoGradGuard no_grad;
    layer->weight_g.mul_(torch::rand({3, 1}) + 0.5);
  }
  const torch::Tensor x = torch::randn({7, 5});
  const torch::Tensor w = torch::_weight_norm(layer->weight_v, layer->weight_g, 0);
  expect_close(layer(x), torch::linear(x, w, layer->bias));
  // Gradients reach g, v and the bias, and the row norms of w are g.
  layer(x).pow(2).sum().backward();
  for (const auto& p : layer->parameters()) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_GT(p.grad().abs().sum().item<double>(), 0);
  }
  expect_close(layer->weight().norm(2, {1}, true), layer->weight_g);
  EXPECT_EQ(printed(*layer), "WeightNormLinear(in_features=5, out_features=3, bias=true)");
  EXPECT_THROW_WITH(layer(torch::randn({2, 4})), "expected an input whose last dimension is 5");
}

TEST(WeightNormTest, OverfitsOneBatch) {
  torch::manual_seed(16);
  torch::nn::Sequential net(WeightNormLinear(WeightNormLinearOptions(4, 16)),
                            torch::nn::Functional(torch::tanh),
                            WeightNormLinear(WeightNormLinearOptions(16, 3)));
  const torch::Tensor x = torch::randn({12, 4});
  const torch::Tensor y = torch::randint(0, 3, {12});
  torch::optim::Adam adam(net->parameters(), 0.05);
  double loss = 0;
  for (int step = 0; step < 200; ++step) {
    adam.zero_grad();
    torch::Tensor l = torch::nn::functional::cross_entropy(net->forward(x), y);
    l.backward();
    adam.step();
    loss = l.item<double>();
  }
  EXPECT_LT(loss, 0.05);
}

// ---------------------------------------------------------------------------------------------
// Golden fixtures

/// The tensors of tests/data/golden/<name>/io.safetensors by name.
std::map<std::string, torch::Tensor> golden_io(const std::string& name) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [key, tensor] : load_safetensors(std::string(NLPKIT_SOURCE_DIR) +
                                              "/tests/data/golden/" + name + "/io.safetensors")
                                 .tensors) {
    out[key] = tensor;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// R-Drop: every loss of rdrop_losses computed from its stored logits (atol 1e-6, rtol 1e-5)

TEST(RDropTest, KlMatchesTheReadmeAndFairseqForms) {
  auto io = golden_io("rdrop_losses");
  expect_close(rdrop_kl(io["in/p"], io["in/q"]), io["out/readme_kl"]);
  expect_close(rdrop_kl(io["in/p"], io["in/q"]), io["out/fairseq_kl"]);
}

TEST(RDropTest, KlZeroesPaddedPositions) {
  auto io = golden_io("rdrop_losses");
  const torch::Tensor pad = io["in/pad_mask"];  // (2, 6, 1)
  expect_close(rdrop_kl(io["in/ps"], io["in/qs"], pad), io["out/readme_kl_pad"]);
  // The padding changes the value: the fixture would not catch an ignored mask otherwise.
  EXPECT_GT((rdrop_kl(io["in/ps"], io["in/qs"]) - io["out/readme_kl_pad"]).abs().item<double>(),
            0.1);
}

TEST(RDropTest, ReadmeRecipeTotalWithAlpha4) {
  auto io = golden_io("rdrop_losses");
  expect_close(rdrop_loss(io["in/p"], io["in/q"], io["in/label"], 4.0, RDropVariant::kReadme),
               io["out/readme_total_alpha4"]);
}

TEST(RDropTest, BertKlLossFromTheStoredLogits) {
  auto io = golden_io("rdrop_losses");
  expect_close(rdrop_loss(io["out/bert_kl_logits1"], io["out/bert_kl_logits2"],
                          io["in/bert_labels"], 0.5, RDropVariant::kBert),
               io["out/bert_kl_loss_seed77"]);
}

TEST(RDropTest, FairseqFormSumsTheNlls) {
  auto io = golden_io("rdrop_losses");
  const torch::Tensor p = io["in/p"], q = io["in/q"], y = io["in/label"];
  namespace F = torch::nn::functional;
  const auto sum = F::CrossEntropyFuncOptions().reduction(torch::kSum);
  const torch::Tensor expected =
      F::cross_entropy(p, y, sum) + F::cross_entropy(q, y, sum) + 2.0 * io["out/fairseq_kl"];
  expect_close(rdrop_loss(p, q, y, 2.0, RDropVariant::kFairseq), expected);
}

TEST(RDropTest, TokenLevelLossIgnoresPadding) {
  auto io = golden_io("rdrop_losses");
  const torch::Tensor ps = io["in/ps"], qs = io["in/qs"], pad = io["in/pad_mask"];
  torch::Tensor labels = torch::tensor({1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5}).view({2, 6});
  const torch::Tensor loss = rdrop_loss(ps, qs, labels, 1.0, RDropVariant::kReadme, pad);
  // By hand: the 10 real tokens only.
  const torch::Tensor keep = (~pad.view({-1})).nonzero().squeeze(1);
  const torch::Tensor p = ps.view({-1, 7}).index_select(0, keep);
  const torch::Tensor q = qs.view({-1, 7}).index_select(0, keep);
  const torch::Tensor y = labels.view({-1}).index_select(0, keep);
  namespace F = torch::nn::functional;
  const torch::Tensor expected =
      0.5 * (F::cross_entropy(p, y) + F::cross_entropy(q, y)) + io["out/readme_kl_pad"];
  expect_close(loss, expected);
  // Garbage labels at padded positions change nothing.
  labels.view({-1})[10] = 6;
  labels.view({-1})[11] = 0;
  expect_close(rdrop_loss(ps, qs, labels, 1.0, RDropVariant::kReadme, pad), loss);
}

TEST(RDropTest, IdenticalPassesHaveNoKlAndGradientsFlowToBoth) {
  torch::Tensor a = torch::randn({3, 4}, torch::requires_grad());
  EXPECT_NEAR(rdrop_kl(a, a.detach()).item<double>(), 0.0, 1e-6);
  torch::Tensor b = torch::randn({3, 4}, torch::requires_grad());
  rdrop_loss(a, b, torch::tensor({0, 1, 2}), 1.0, RDropVariant::kBert).backward();
  EXPECT_GT(a.grad().abs().sum().item<double>(), 0);
  EXPECT_GT(b.grad().abs().sum().item<double>(), 0);
}

TEST(RDropTest, BadInputThrows) {
  EXPECT_THROW_WITH(rdrop_kl(torch::zeros({2, 3}), torch::zeros({2, 4})), "differ in shape");
  EXPECT_THROW_WITH(rdrop_loss(torch::zeros({2, 3}), torch::zeros({2, 3}),
                               torch::zeros({2}, torch::kLong), -1.0, RDropVariant::kReadme),
                    "alpha must be >= 0");
  EXPECT_THROW_WITH(
      rdrop_loss(torch::zeros({2, 3}), torch::zeros({2, 3}), torch::zeros({2}, torch::kLong), 1.0,
                 RDropVariant::kReadme, torch::zeros({2, 1}, torch::kBool)),
      "pad_mask is for token-level logits");
}

// ---------------------------------------------------------------------------------------------
// SiFT: the steps of microsoft/DeBERTa's AdversarialLearner, each against deberta_sift_tiny's
// intermediates where they do not need the DeBERTa forward, and by hand.

TEST(SiftTest, NormalizationMatchesTheFixture) {
  auto io = golden_io("deberta_sift_tiny");
  expect_close(sift_normalize(io["out/ln_input"], 1e-7), io["out/ln_input_normalized"], 1e-4, 1e-5);
}

TEST(SiftTest, AscentStepMatchesTheFixture) {
  auto io = golden_io("deberta_sift_tiny");
  const torch::Tensor delta0 = io["out/delta0"], g = io["out/delta_grad"];
  const torch::Tensor delta1 = sift_ascent_step(delta0, g, 1e-4);
  expect_close(delta1, io["out/delta1"], 1e-4, 1e-5);
  // The step itself is about 2e-05: compare it relatively, as the fixture's README says.
  expect_close(delta1 - delta0, io["out/delta1"] - delta0, 1e-3, 1e-9);
  // And through SiftPerturbation, with the fixture's delta0 injected.
  SiftPerturbation sift(SiftOptions().step_size(1e-4));
  sift(io["out/ln_input"]);
  sift.set_adversarial(true);
  sift.set_delta(delta0);
  expect_close(sift(io["out/ln_input"]), io["out/ln_input_normalized"] + delta0, 1e-4, 1e-5);
  ASSERT_TRUE(sift.ascend(g));
  expect_close(sift.delta() - delta0, io["out/delta1"] - delta0, 1e-3, 1e-9);
  EXPECT_TRUE(sift.delta().requires_grad());
}

TEST(SiftTest, InitialDeltaOfTheFixtureIsAClampedNormal) {
  auto io = golden_io("deberta_sift_tiny");
  const torch::Tensor d = io["out/delta0"];
  EXPECT_LE(d.abs().max().item<double>(), 0.02 + 1e-9);
  // Ours has the same law: clamped to 2 sigma, standard deviation a little under sigma.
  torch::manual_seed(3);
  const torch::Tensor ours = sift_initial_delta(torch::zeros({20000, 32}), 0.01);
  EXPECT_EQ(ours.scalar_type(), torch::kFloat);
  EXPECT_LE(ours.abs().max().item<double>(), 0.02);
  EXPECT_NEAR(ours.std().item<double>(), d.std().item<double>(), 5e-4);
  EXPECT_NEAR(ours.mean().item<double>(), 0.0, 2e-4);
  torch::manual_seed(3);
  EXPECT_TRUE(torch::equal(sift_initial_delta(torch::zeros({20000, 32}), 0.01), ours));
}

TEST(SiftTest, TaskAndTotalLossesOfTheFixture) {
  auto io = golden_io("deberta_sift_tiny");
  const torch::Tensor task =
      torch::nn::functional::cross_entropy(io["out/clean_logits_hooked"], io["in/labels"]);
  expect_close(task, io["out/task_loss"], 1e-4, 1e-5);
  expect_close(task + 5.0 * io["out/adv_loss"], io["out/total_loss"], 1e-4, 1e-5);
  // Near-uniform logits: the adversarial loss is about 2 ln 3, the two entropies.
  EXPECT_NEAR(io["out/adv_loss"].item<double>(), 2 * std::log(3.0), 0.01);
  const torch::Tensor clean = io["out/clean_logits_hooked"];
  EXPECT_NEAR(sift_symmetric_kl(clean, clean).mean().item<double>(),
              io["out/adv_loss"].item<double>(), 0.01);
}

TEST(SiftTest, SymmetricKlByHand) {
  // Two classes, student logits (0, 0), teacher (ln 3, 0): p_s = (1/2, 1/2), p_t = (3/4, 1/4).
  torch::Tensor s = torch::zeros({1, 2}, torch::requires_grad());
  torch::Tensor t = torch::tensor({{std::log(3.0), 0.0}}, torch::kFloat).requires_grad_(true);
  const torch::Tensor loss = sift_symmetric_kl(s, t);
  // sum p_t * -log p_s = ln 2; sum p_s * -log p_t = (ln(4/3) + ln 4) / 2.
  const double expected = std::log(2.0) + 0.5 * (std::log(4.0 / 3) + std::log(4.0));
  EXPECT_NEAR(loss.item<double>(), expected, 1e-6);
  loss.sum().backward();
  // d/ds = softmax(s) - p_t; d/dt = softmax(t) - p_s (both factors detached).
  expect_close(s.grad(), torch::tensor({{0.5 - 0.75, 0.5 - 0.25}}));
  expect_close(t.grad(), torch::tensor({{0.75 - 0.5, 0.25 - 0.5}}));
}

TEST(SiftTest, AscentStepByHand) {
  const torch::Tensor delta = torch::tensor({{0.01, -0.01, 0.0}, {0.0, 0.0, 0.0}});
  const torch::Tensor g = torch::tensor({{1.0, -2.0, 0.5}, {0.0, 0.0, 0.0}});
  const torch::Tensor out = sift_ascent_step(delta, g, 0.1);
  // Row 0: max |g| = 2; row 1: g = 0 leaves delta unchanged (no division by 0).
  const double s = 0.1 / (1e-6 + 2.0);
  expect_close(out, torch::tensor({{0.01 + s, -0.01 - 2 * s, 0.5 * s}, {0.0, 0.0, 0.0}}), 1e-6,
               1e-8);
  EXPECT_FALSE(out.requires_grad());
}

TEST(SiftTest, PerturbationModes) {
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({2, 3, 8}) * 0.05 + 0.3;
  SiftPerturbation feeds_norm(SiftOptions().sigma(0.01));
  const torch::Tensor xn = feeds_norm(x);
  expect_close(xn.mean(-1), torch::zeros({2, 3}), 0, 1e-5);
  expect_close(xn.var(-1, false), torch::ones({2, 3}), 1e-3,
               1e-3);  // eps 1e-7 against a small variance
  feeds_norm.set_adversarial(true);
  const torch::Tensor perturbed = feeds_norm(x);
  ASSERT_TRUE(feeds_norm.delta().defined());
  expect_close(perturbed, xn + feeds_norm.delta());
  EXPECT_LE(feeds_norm.delta().abs().max().item<double>(), 0.02);
  // A second adversarial pass reuses delta; leaving adversarial mode drops it.
  expect_close(feeds_norm(x), perturbed);
  feeds_norm.set_adversarial(false);
  EXPECT_FALSE(feeds_norm.delta().defined());

  // restore_scale: the clean pass is the identity, the adversarial pass is
  // mean + std * (xn + delta), so a zero delta gives x back.
  SiftPerturbation restores(SiftOptions().restore_scale(true));
  EXPECT_TRUE(torch::equal(restores(x), x));
  restores.set_adversarial(true);
  restores.set_delta(torch::zeros_like(x));
  expect_close(restores(x), x, 1e-5, 1e-6);
  restores.set_delta(torch::full_like(x, 0.01));
  const torch::Tensor std = torch::sqrt(x.var(-1, false, true) + 1e-7);
  expect_close(restores(x), x + 0.01 * std, 1e-5, 1e-6);
}

TEST(SiftTest, AdversarialPassNeedsACleanOneAndFiniteGradients) {
  SiftPerturbation sift;
  sift.set_adversarial(true);
  EXPECT_THROW_WITH(sift(torch::zeros({2, 4})), "needs a clean pass first");
  sift.set_adversarial(false);
  sift(torch::randn({2, 4}));
  sift.set_adversarial(true);
  sift(torch::randn({2, 4}));
  const torch::Tensor before = sift.delta().detach().clone();
  EXPECT_FALSE(sift.ascend(torch::full({2, 4}, std::nan(""))));
  EXPECT_TRUE(torch::equal(sift.delta().detach(), before));
  EXPECT_THROW_WITH(sift(torch::randn({3, 4})), "the clean pass saw");
}

// ---------------------------------------------------------------------------------------------
// Mixup

TEST(MixupTest, LambdaIsBetaDistributedAndSeeded) {
  torch::manual_seed(5);
  double sum = 0, sum_sq = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    const double l = mixup_lambda(0.4);
    ASSERT_GE(l, 0.0);
    ASSERT_LE(l, 1.0);
    sum += l;
    sum_sq += l * l;
  }
  // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)) = 0.1389 for a = 0.4.
  EXPECT_NEAR(sum / n, 0.5, 0.02);
  EXPECT_NEAR(sum_sq / n - 0.25, 1.0 / (4 * (2 * 0.4 + 1)), 0.01);
  torch::manual_seed(5);
  const double first = mixup_lambda(0.4);
  torch::manual_seed(5);
  EXPECT_EQ(mixup_lambda(0.4), first);
  EXPECT_THROW_WITH(mixup_lambda(0.0), "alpha must be > 0");
}

TEST(MixupTest, MixesPairsAndLabelsWithTheSameLambda) {
  const torch::Tensor x = torch::tensor({{1.0, 0.0}, {0.0, 2.0}, {4.0, 4.0}});
  const torch::Tensor perm = torch::tensor({2, 0, 1});
  expect_close(mixup(x, perm, 0.25),
               torch::tensor({{0.25 + 3.0, 3.0}, {0.75, 0.5}, {1.0, 1.0 + 1.5}}));
  const torch::Tensor logits = torch::randn({3, 4});
  const torch::Tensor y = torch::tensor({0, 3, 1});
  // CE with the mixed one-hot targets, by hand.
  const torch::Tensor targets =
      0.25 * torch::one_hot(y, 4) + 0.75 * torch::one_hot(y.index_select(0, perm), 4);
  const torch::Tensor expected = -(targets * torch::log_softmax(logits, -1)).sum(-1).mean();
  expect_close(mixup_cross_entropy(logits, y, perm, 0.25), expected);
}

}  // namespace
}  // namespace nlpkit
