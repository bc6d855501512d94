#include "trainers/tasks/fasttext.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"
#include "trainers/trainer.h"

namespace nlpkit {
namespace {

class FastTextTaskTest : public TempDirTest {};

TEST_F(FastTextTaskTest, TrainsOnTinySpamThroughTheTrainer) {
  const std::string src = NLPKIT_SOURCE_DIR;
  ExperimentConfig config =
      load_config(src + "/configs/tiny/fasttext.yaml",
                  {"data.train=" + src + "/tests/data/tiny_cls/train.tsv",
                   "data.valid=" + src + "/tests/data/tiny_cls/valid.tsv", "data.test=\"\"",
                   "output_dir=" + (dir_ / "run").string(), "logging.progress=none",
                   "logging.tensorboard=false", "trainer.epochs=10", "device=cpu"});
  seed_everything(config.seed);
  auto task = make_task(config, "", torch::kCPU);
  EXPECT_TRUE(Contains(task->summary(), "labels ham spam"));
  const double before = task->evaluate(Split::kValid).metrics.at("loss");
  const FitResult result = Trainer(config, *task, torch::kCPU).fit();
  const Evaluation after = task->evaluate(Split::kValid);
  EXPECT_LT(after.metrics.at("loss"), before);
  EXPECT_GE(after.metrics.at("accuracy"), 0.8);
  const auto lines = task->predict({"win free money now click", "meeting at noon for lunch"});
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].substr(0, 5), "spam\t");
  EXPECT_EQ(lines[1].substr(0, 4), "ham\t");
  // The checkpoint rebuilds the same task (vocabulary, labels, n-gram buckets).
  auto reloaded = make_task(config, result.last_checkpoint, torch::kCPU);
  load_weights(*reloaded, result.last_checkpoint);
  EXPECT_EQ(reloaded->predict({"win free money now click"}),
            task->predict({"win free money now click"}));
}

}  // namespace
}  // namespace nlpkit
