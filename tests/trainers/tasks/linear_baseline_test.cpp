#include "trainers/tasks/linear_baseline.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

class LinearBaselineTest : public TempDirTest {
 protected:
  ExperimentConfig tiny(const std::vector<std::string>& extra = {}) {
    const std::string src = NLPKIT_SOURCE_DIR;
    std::vector<std::string> o = {"data.train=" + src + "/tests/data/tiny_cls/train.tsv",
                                  "data.valid=\"\"",
                                  "data.test=" + src + "/tests/data/tiny_cls/test.tsv",
                                  "output_dir=" + (dir_ / "run").string(), "logging.progress=none"};
    o.insert(o.end(), extra.begin(), extra.end());
    return load_config(src + "/configs/tiny/linear_baseline.yaml", o);
  }
};

TEST_F(LinearBaselineTest, LogisticRegressionSeparatesAndL2Shrinks) {
  const torch::Tensor x = torch::tensor({{1.f, 0.f}, {2.f, 0.f}, {0.f, 1.f}, {0.f, 3.f}});
  const torch::Tensor y = torch::tensor({0, 0, 1, 1}, torch::kInt64);
  const LogisticRegression weak = fit_logistic_regression(x, y, 2, 1e-4, 50);
  EXPECT_TRUE(torch::equal(weak.logits(x).argmax(-1), y));
  EXPECT_TRUE(torch::equal(weak.logits(x.to_sparse()).argmax(-1), y));
  const LogisticRegression strong = fit_logistic_regression(x, y, 2, 10.0, 50);
  EXPECT_LT(strong.weight.norm().item<float>(), weak.weight.norm().item<float>());
  // The hand-written gradient is the loss's: the fit is a stationary point of it for autograd.
  const torch::Tensor w = strong.weight.clone().requires_grad_(true);
  const torch::Tensor b = strong.bias.clone().requires_grad_(true);
  const torch::Tensor loss =
      torch::nn::functional::cross_entropy(torch::mm(x.to_sparse(), w) + b, y) +
      0.5 * 10.0 * w.pow(2).sum();
  loss.backward();
  EXPECT_LT(w.grad().abs().max().item<float>(), 1e-4);
  EXPECT_LT(b.grad().abs().max().item<float>(), 1e-4);
}

TEST_F(LinearBaselineTest, GridSearchWithStratifiedFoldsThenTest) {
  auto task = make_task(tiny(), "", torch::kCPU);
  ASSERT_TRUE(task->train_standalone());
  std::ifstream in(dir_ / "run/linear_baseline.json");
  const nlohmann::json report = nlohmann::json::parse(in);
  EXPECT_EQ(report["grid"].size(), 4u);  // 2 n-gram ranges x 2 strengths
  EXPECT_EQ(report["folds"], 3);
  EXPECT_GE(report["best"]["accuracy"].get<double>(), 0.7);
  EXPECT_GE(report["test"]["accuracy"].get<double>(), 0.7);
  EXPECT_TRUE(report["test"].contains("macro_f1"));
}

TEST_F(LinearBaselineTest, BadInputIsAClearError) {
  EXPECT_ERROR(make_task(tiny({"linear.folds=1000"}), "", torch::kCPU)->train_standalone(),
               "linear.folds 1000 needs at least as many examples");
  EXPECT_ERROR(make_task(tiny({"data.min_freq=100000"}), "", torch::kCPU)->train_standalone(),
               "no features left");
  EXPECT_ERROR(tiny({"linear.features=word2vec"}), "linear.features");
}

}  // namespace
}  // namespace nlpkit
