#include "trainers/precision.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "datasets/batching.h"
#include "tests/test_util.h"
#include "trainers/checkpoint.h"
#include "trainers/trainer.h"

namespace nlpkit {
namespace {

TEST(Precision, ParsesTheConfigValues) {
  EXPECT_EQ(parse_precision("fp32"), Precision::kFp32);
  EXPECT_EQ(parse_precision("bf16"), Precision::kBf16);
  EXPECT_EQ(parse_precision("fp16"), Precision::kFp16);
  EXPECT_ERROR(parse_precision("fp8"), "expected one of: fp32, bf16, fp16");
  EXPECT_TRUE(autocast_supported(Precision::kBf16, torch::kCPU));
  EXPECT_FALSE(autocast_supported(Precision::kFp16, torch::kCPU));
  EXPECT_FALSE(autocast_supported(Precision::kFp32, torch::kCPU));
}

TEST(AutocastScope, CpuBf16RunsMatmulsInBf16AndWeightsStayFp32) {
  torch::nn::Linear linear(4, 3);
  const torch::Tensor x = torch::randn({2, 4});
  {
    AutocastScope autocast(Precision::kBf16, torch::kCPU);
    EXPECT_EQ(linear->forward(x).scalar_type(), torch::kBFloat16);
    {
      AutocastScope nested(Precision::kFp32, torch::kCPU);  // fp32 leaves the region alone
      EXPECT_EQ(linear->forward(x).scalar_type(), torch::kBFloat16);
    }
  }
  EXPECT_EQ(linear->forward(x).scalar_type(), torch::kFloat);
  EXPECT_EQ(linear->weight.scalar_type(), torch::kFloat);
  {
    AutocastScope fp16_on_cpu(Precision::kFp16, torch::kCPU);  // unsupported: a no-op
    EXPECT_EQ(linear->forward(x).scalar_type(), torch::kFloat);
  }
}

TEST(AutocastScope, CudaBf16AndFp16_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::nn::Linear linear(4, 3);
  linear->to(torch::kCUDA);
  const torch::Tensor x = torch::randn({2, 4}, torch::kCUDA);
  {
    AutocastScope autocast(Precision::kBf16, torch::kCUDA);
    EXPECT_EQ(linear->forward(x).scalar_type(), torch::kBFloat16);
  }
  {
    AutocastScope autocast(Precision::kFp16, torch::kCUDA);
    EXPECT_EQ(linear->forward(x).scalar_type(), torch::kHalf);
  }
  EXPECT_EQ(linear->forward(x).scalar_type(), torch::kFloat);
}

TEST(LossScaler, GradScalerSchedule) {
  LossScaler scaler(true, LossScalerOptions().growth_interval(3));
  EXPECT_EQ(scaler.scale(), 65536.0);
  scaler.update(true);
  scaler.update(true);
  EXPECT_EQ(scaler.scale(), 65536.0);
  scaler.update(true);  // 3 clean steps
  EXPECT_EQ(scaler.scale(), 131072.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  scaler.update(true);
  scaler.update(false);  // backoff resets the count of clean steps
  EXPECT_EQ(scaler.scale(), 65536.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  EXPECT_EQ(LossScalerOptions().growth_interval(), 2000);
  LossScaler restored(true);
  restored.load_state(scaler.state(), "test");
  EXPECT_EQ(restored.scale(), 65536.0);
  LossScaler off(false);
  EXPECT_EQ(off.scale(), 1.0);
  off.update(false);
  EXPECT_EQ(off.scale(), 1.0);
}

TEST(LossScaler, UnscalesAndDetectsInfAndNan) {
  LossScaler scaler(true, LossScalerOptions().init_scale(4));
  torch::Tensor w = torch::ones({3}, torch::requires_grad());
  (scaler.scale_loss(w.sum() * 2)).backward();
  EXPECT_TRUE(w.grad().equal(torch::full({3}, 8.0f)));
  EXPECT_TRUE(scaler.unscale({w}));
  EXPECT_TRUE(w.grad().equal(torch::full({3}, 2.0f)));
  w.mutable_grad()[1] = INFINITY;
  EXPECT_FALSE(scaler.unscale({w}));
  w.mutable_grad()[1] = NAN;
  EXPECT_FALSE(scaler.unscale({w}));
}

/// A linear classifier whose gradient can be made infinite on chosen batches.
class InfGradTask : public Task {
 public:
  InfGradTask() : batches_(32, 8, true, 3) {
    torch::manual_seed(2);
    model_ = torch::nn::Linear(6, 3);
    auto g = torch::make_generator<at::CPUGeneratorImpl>(4);
    x_ = torch::randn({32, 6}, g);
    y_ = torch::randint(0, 3, {32}, g);
  }
  std::shared_ptr<torch::nn::Module> model() override { return model_.ptr(); }
  int64_t batches_per_epoch() override { return batches_.count(); }
  StepOutput train_step(int64_t epoch, int64_t batch) override {
    ++calls;
    const auto idx = torch::tensor(batches_.indices(epoch, batch));
    torch::Tensor logits = model_->forward(x_.index_select(0, idx));
    if (inf_batches.count(epoch * batches_.count() + batch)) {
      logits.register_hook([](torch::Tensor g) { return g * INFINITY; });
    }
    StepOutput out;
    out.loss = torch::nn::functional::cross_entropy(logits, y_.index_select(0, idx));
    out.examples = out.tokens = idx.numel();
    return out;
  }
  bool has_split(Split) const override { return false; }
  Evaluation evaluate(Split) override { return {}; }
  std::vector<std::string> predict(const std::vector<std::string>&) override { return {}; }
  void save_artifacts(const std::string&) const override {}

  std::set<int64_t> inf_batches;  // global batch numbers
  int64_t calls = 0;

 private:
  EpochBatches batches_;
  torch::nn::Linear model_{nullptr};
  torch::Tensor x_, y_;
};

class PrecisionTrainerTest : public TempDirTest {
 protected:
  std::string dir(const std::string& name) const { return (dir_ / name).string(); }
  ExperimentConfig config(const std::string& precision, int64_t max_steps) {
    ExperimentConfig c;
    c.output_dir = dir("run");
    c.precision = precision;
    c.logging.progress = "none";
    c.logging.tensorboard = false;
    c.trainer.max_steps = max_steps;
    c.trainer.eval_each_epoch = false;
    c.optimizer.type = "sgd";
    c.optimizer.lr = 0.1;
    return c;
  }
  nlohmann::json trainer_state(int64_t step) {
    std::ifstream in(dir("run") + "/checkpoints/" + checkpoint_name(step) + "/trainer_state.json");
    return nlohmann::json::parse(in);
  }
};

TEST_F(PrecisionTrainerTest, Fp16InfGradientSkipsExactlyOneStepAndHalvesTheScale) {
  InfGradTask task;
  task.inf_batches = {2};
  Trainer trainer(config("fp16", 5), task, torch::kCPU);
  const FitResult result = trainer.fit();
  EXPECT_EQ(result.state.step, 5);
  EXPECT_EQ(result.losses.size(), 5u);
  EXPECT_EQ(task.calls, 6) << "one batch more than steps: exactly one step was skipped";
  EXPECT_EQ(result.state.nonfinite_steps, 1);
  EXPECT_EQ(result.state.consecutive_nonfinite, 0) << "an overflow is not divergence";
  const nlohmann::json state = trainer_state(5);
  EXPECT_EQ(state.at("loss_scaler").at("scale").get<double>(), 32768.0);
  EXPECT_EQ(state.at("loss_scaler").at("growth_tracker").get<int64_t>(), 3);  // steps after it

  // The scaler's state comes back on resume.
  InfGradTask again;
  ExperimentConfig resumed = config("fp16", 6);
  resumed.trainer.resume = "auto";
  Trainer(resumed, again, torch::kCPU).fit();
  EXPECT_EQ(trainer_state(6).at("loss_scaler").at("growth_tracker").get<int64_t>(), 4);
  EXPECT_EQ(trainer_state(6).at("loss_scaler").at("scale").get<double>(), 32768.0);
}

TEST_F(PrecisionTrainerTest, Fp16ScalingGivesTheFp32StepsWhenNothingOverflows) {
  InfGradTask a, b;
  Trainer(config("fp32", 4), a, torch::kCPU).fit();
  std::filesystem::remove_all(dir("run"));
  Trainer(config("fp16", 4), b, torch::kCPU).fit();  // CPU: fp32 maths, scaled by 2^16
  for (size_t i = 0; i < a.model()->parameters().size(); ++i) {
    EXPECT_TRUE(a.model()->parameters()[i].allclose(b.model()->parameters()[i], 0, 1e-6));
  }
}

/// A tiny config trained on the CPU in bf16 with `overrides`; returns the step losses.
std::vector<double> train_tiny_bf16(const std::string& file, const std::string& run,
                                    std::vector<std::string> overrides) {
  const std::string src = NLPKIT_SOURCE_DIR;
  overrides.insert(overrides.end(), {"precision=bf16", "output_dir=" + run, "logging.progress=none",
                                     "logging.tensorboard=false",
                                     "data.train=" + src + "/tests/data/tiny_cls/train.tsv",
                                     "data.valid=\"\"", "data.test=\"\""});
  ExperimentConfig c = load_config(src + "/configs/tiny/" + file, overrides);
  auto task = make_task(c, "", torch::kCPU);
  return Trainer(c, *task, torch::kCPU).fit().losses;
}

void expect_loss_decreases(const std::vector<double>& losses, size_t window) {
  ASSERT_GE(losses.size(), 2 * window);
  for (double loss : losses) EXPECT_TRUE(std::isfinite(loss));
  const double first = std::accumulate(losses.begin(), losses.begin() + window, 0.0);
  const double last = std::accumulate(losses.end() - window, losses.end(), 0.0);
  EXPECT_LT(last, first) << "bf16 training did not lower the loss";
}

TEST_F(PrecisionTrainerTest, Bf16TinyClassifierTrains) {
  expect_loss_decreases(train_tiny_bf16("classifier.yaml", dir("run"), {"trainer.epochs=4"}), 4);
}

// The MLM head's LayerNorm follows a bf16 dense layer (LibTorch 1.13's CPU autocast does not
// cast layer_norm's input as CUDA's does).
TEST_F(PrecisionTrainerTest, Bf16TinyBertMlmTrains) {
  expect_loss_decreases(train_tiny_bf16("bert_mlm.yaml", dir("run"), {"trainer.max_steps=8"}), 3);
}

}  // namespace
}  // namespace nlpkit
