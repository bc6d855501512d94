#include "trainers/tasks/frame_prediction.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "datasets/frames.h"
#include "datasets/png.h"
#include "tests/test_util.h"
#include "trainers/checkpoint.h"
#include "trainers/trainer.h"

namespace nlpkit {
namespace {
namespace fs = std::filesystem;

/// A tiny prepared Moving MNIST folder: a fake `mnist` package of square "digits" converted by
/// the real converter, 4 test sequences.
class FramePredictionTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    fs::create_directories(dir_ / "package" / "src" / "digits");
    for (int label = 0; label < 10; ++label) {
      std::string json = "{\"data\": [";
      for (int digit = 0; digit < 10; ++digit) {
        for (int y = 0; y < 28; ++y) {
          for (int x = 0; x < 28; ++x) {
            const bool on = y >= 8 && y < 20 && x >= 8 + label % 3 && x < 18;
            json += std::string(digit || y || x ? "," : "") + (on ? "1" : "0");
          }
        }
      }
      write("package/src/digits/" + std::to_string(label) + ".json", json + "]}");
    }
    std::ostringstream log;
    convert_mnist_package((dir_ / "package").string(), (dir_ / "mm").string(), log, 4);
  }

  ExperimentConfig config(const std::string& run) {
    ExperimentConfig c;
    c.task = "frame_prediction";
    c.model.type = "convlstm";
    c.model.convlstm_hidden_sizes = {4};
    c.data.train = (dir_ / "mm").string();
    c.data.batch_size = 2;
    c.data.eval_batch_size = 2;
    c.frames.input_frames = 3;
    c.frames.future_frames = 2;
    c.frames.train_sequences = 4;
    c.frames.valid_sequences = 2;
    c.frames.test_sequences = 4;
    c.frames.predictions_dir = (dir_ / "pred").string();
    c.optimizer.type = "adam";
    c.optimizer.lr = 0.01;
    c.trainer.max_steps = 4;
    c.trainer.save_every = 2;
    c.trainer.metric = "mse";
    c.trainer.metric_mode = "min";
    c.logging.progress = "none";
    c.output_dir = (dir_ / run).string();
    return c;
  }
};

TEST_F(FramePredictionTest, TrainsEvaluatesAgainstTheBaselineAndPredictsPngStrips) {
  ExperimentConfig c = config("run");
  auto task = make_task(c, "", torch::kCPU);
  FitResult r = Trainer(c, *task, torch::kCPU).fit();
  ASSERT_TRUE(r.test.has_value());
  for (const char* m : {"loss", "mse", "mae", "ssim", "baseline_mse", "baseline_mae",
                        "baseline_ssim"}) {
    ASSERT_TRUE(r.test->metrics.count(m)) << m;
    EXPECT_TRUE(std::isfinite(r.test->metrics.at(m))) << m;
  }
  EXPECT_GT(r.test->metrics.at("baseline_mse"), 0);
  EXPECT_NE(r.test->table.find("repeat last input frame"), std::string::npos);

  // A checkpoint rebuilds the task; predict writes one strip per test index.
  auto loaded = make_task(c, r.last_checkpoint, torch::kCPU);
  load_weights(*loaded, r.last_checkpoint);
  auto paths = loaded->predict({"0", "3"});
  ASSERT_EQ(paths.size(), 2u);
  torch::Tensor strip = read_png(paths[1]);
  EXPECT_EQ(strip.size(0), 3 * 64 + 2 * 2);  // inputs, truth, prediction rows + separators
  EXPECT_ERROR(loaded->predict({"4"}), "expected a test-sequence index in [0, 4), found '4'");
  EXPECT_ERROR(loaded->predict({"x"}), "found 'x'");
}

TEST_F(FramePredictionTest, ResumeIsExact) {
  ExperimentConfig a = config("a");
  auto straight = make_task(a, "", torch::kCPU);
  FitResult ra = Trainer(a, *straight, torch::kCPU).fit();
  ExperimentConfig b = config("b");
  b.trainer.resume = a.output_dir + "/checkpoints/" + checkpoint_name(2);
  auto resumed = make_task(b, "", torch::kCPU);
  FitResult rb = Trainer(b, *resumed, torch::kCPU).fit();
  ASSERT_EQ(rb.losses.size(), 2u);
  EXPECT_EQ(rb.losses[0], ra.losses[2]);
  EXPECT_EQ(rb.losses[1], ra.losses[3]);
}

TEST_F(FramePredictionTest, BadConfig) {
  ExperimentConfig c = config("bad");
  c.model.type = "lstm";
  EXPECT_ERROR(make_task(c, "", torch::kCPU), "model.type: 'lstm' is not a frame predictor");
  c = config("bad");
  c.frames.patch_size = 3;
  EXPECT_ERROR(make_task(c, "", torch::kCPU), "frames.patch_size: must divide the frame size 64");
  c = config("bad");
  c.frames.input_frames = 15;
  c.frames.future_frames = 10;
  EXPECT_ERROR(make_task(c, "", torch::kCPU), "input_frames + future_frames must be <= 20");
  c = config("bad");
  c.model.convlstm_kernel_size = 4;
  EXPECT_ERROR(make_task(c, "", torch::kCPU), "model.kernel_size: must be odd");
  c = config("bad");
  c.data.train = (dir_ / "nowhere").string();
  EXPECT_ERROR(make_task(c, "", torch::kCPU), "nlpkit data prepare moving_mnist");
}

}  // namespace
}  // namespace nlpkit
