#include "trainers/tasks/classification.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "datasets/png.h"
#include "tests/test_util.h"
#include "trainers/plot.h"
#include "trainers/trainer.h"

namespace nlpkit {
namespace {

class ClassificationTaskTest : public TempDirTest {
 protected:
  /// configs/tiny/classifier.yaml, trained for a few steps.
  std::unique_ptr<Task> tiny_trained_task() {
    const std::string src = NLPKIT_SOURCE_DIR;
    ExperimentConfig config = load_config(
        src + "/configs/tiny/classifier.yaml",
        {"data.train=" + src + "/tests/data/tiny_cls/train.tsv", "data.valid=\"\"",
         "data.test=\"\"", "output_dir=" + (dir_ / "run").string(), "logging.progress=none",
         "logging.tensorboard=false", "trainer.max_steps=3", "device=cpu"});
    seed_everything(config.seed);
    auto task = make_task(config, "", torch::kCPU);
    Trainer(config, *task, torch::kCPU).fit();
    return task;
  }
};

TEST_F(ClassificationTaskTest, ExplainDrawsOneAttentionHeatmapPerDocument) {
  auto task = tiny_trained_task();
  const std::vector<std::string> docs = {
      "Win money now! Click here for the prize. Meeting moved to noon.",  // 3 sentences
      "Lunch at noon?",                                                   // 1
      "!!!",                                                              // no words
      "One. Two. Three. Four. Five. Six.",  // 6, of which max_sentences (4) are kept
  };
  const std::string out = (dir_ / "explain").string();
  const std::vector<std::string> files = task->explain(docs, out);
  ASSERT_EQ(files.size(), 4u);
  EXPECT_EQ(files[0], out + "/doc_0001.png");
  EXPECT_EQ(files[3], out + "/doc_0004.png");
  // Each picture is a (sentences x 1) heatmap of the layout the task asks for.
  const int64_t sentences[] = {3, 1, 1, 4};
  for (size_t i = 0; i < files.size(); ++i) {
    const torch::Tensor png = read_png(files[i]);
    ASSERT_EQ(png.dim(), 3) << files[i];
    EXPECT_EQ(png.size(2), 3);
    HeatmapOptions o;
    o.cell_width = text_width("attention") + 8;
    o.annotate = true;
    o.column_labels = {"attention"};
    const HeatmapLayout without_labels = heatmap_layout(sentences[i], 1, o);
    EXPECT_EQ(png.size(0), without_labels.height + /*title*/ 14 + 8) << files[i];
    EXPECT_GT(png.size(1), without_labels.width) << files[i];  // the row labels' width
  }
  // Predictions are unchanged by explaining.
  EXPECT_EQ(task->predict(docs).size(), 4u);
}

TEST_F(ClassificationTaskTest, AttentionWeightsSumToOnePerDocument) {
  // What the heatmaps show: TextClassifierOutput.attention, (B, D), a distribution over the
  // real sentences of each document.
  auto task = tiny_trained_task();
  auto model = std::dynamic_pointer_cast<TextClassifierImpl>(task->model());
  ASSERT_TRUE(model);
  torch::NoGradGuard no_grad;
  model->eval();
  const torch::Tensor ids = torch::ones({2, 3, 4}, torch::kLong);
  torch::Tensor words = torch::ones({2, 3, 4}, torch::kBool);
  torch::Tensor sentences = torch::ones({2, 3}, torch::kBool);
  sentences[1][2] = false;
  words[1][2] = false;
  const TextClassifierOutput out = model->forward(ids, words, sentences);
  EXPECT_TRUE(torch::allclose(out.attention.sum(1), torch::ones({2})));
  EXPECT_EQ(out.attention[1][2].item<float>(), 0);
}

}  // namespace
}  // namespace nlpkit
