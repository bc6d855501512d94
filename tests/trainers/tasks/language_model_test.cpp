#include "trainers/tasks/language_model.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"
#include "trainers/trainer.h"

namespace nlpkit {
namespace {

class NNLMTaskTest : public TempDirTest {};

TEST_F(NNLMTaskTest, TrainsEvaluatesAndSamples) {
  const std::string src = NLPKIT_SOURCE_DIR;
  ExperimentConfig config =
      load_config(src + "/configs/tiny/nnlm.yaml",
                  {"data.train=" + src + "/tests/data/tiny_lm/train.txt",
                   "data.valid=" + src + "/tests/data/tiny_lm/valid.txt", "data.test=\"\"",
                   "output_dir=" + (dir_ / "run").string(), "logging.progress=none",
                   "logging.tensorboard=false", "device=cpu"});
  seed_everything(config.seed);
  auto task = make_task(config, "", torch::kCPU);
  const double before = task->evaluate(Split::kValid).metrics.at("perplexity");
  Trainer(config, *task, torch::kCPU).fit();
  const double after = task->evaluate(Split::kValid).metrics.at("perplexity");
  EXPECT_LT(after, before / 2) << before << " -> " << after;
  // The carried state is the last context_size words.
  const NamedTensors state = task->state();
  ASSERT_EQ(state.size(), 1u);
  EXPECT_EQ(state[0].second.sizes(), torch::IntArrayRef({4, 3}));
  const auto lines = task->predict({"the cat"});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].substr(0, 7), "the cat");
}

}  // namespace
}  // namespace nlpkit
