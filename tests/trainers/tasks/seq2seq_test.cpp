#include "trainers/tasks/seq2seq.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "datasets/png.h"
#include "tests/test_util.h"
#include "trainers/plot.h"
#include "trainers/registry.h"
#include "trainers/trainer.h"

namespace nlpkit {
namespace {

class Seq2SeqTaskTest : public TempDirTest {
 protected:
  ExperimentConfig tiny_config(const std::string& name, std::vector<std::string> overrides = {}) {
    const std::string src = NLPKIT_SOURCE_DIR;
    std::vector<std::string> all = {"data.train=" + src + "/tests/data/tiny_g2p/train.tsv",
                                    "data.valid=" + src + "/tests/data/tiny_g2p/valid.tsv",
                                    "data.test=\"\"",
                                    "output_dir=" + (dir_ / "run").string(),
                                    "logging.progress=none",
                                    "logging.tensorboard=false",
                                    "trainer.max_steps=4",
                                    "trainer.eval_each_epoch=false",
                                    "device=cpu"};
    all.insert(all.end(), overrides.begin(), overrides.end());
    return load_config(src + "/configs/tiny/" + name + ".yaml", all);
  }

  std::unique_ptr<Task> trained(const std::string& name) {
    ExperimentConfig config = tiny_config(name);
    seed_everything(config.seed);
    auto task = make_task(config, "", torch::kCPU);
    Trainer(config, *task, torch::kCPU).fit();
    return task;
  }
};

TEST_F(Seq2SeqTaskTest, BothModelsTrainEvaluatePredictAndExplain) {
  for (const std::string name : {"seq2seq", "transformer"}) {
    auto task = trained(name);
    EXPECT_TRUE(Contains(task->summary(), "valid 35 sources (41 pairs)")) << task->summary();
    const Evaluation e = task->evaluate(Split::kValid);
    for (const char* metric :
         {"loss", "token_accuracy", "sequence_accuracy", "wer", "per", "bleu"}) {
      ASSERT_TRUE(e.metrics.count(metric)) << name << " " << metric;
    }
    EXPECT_GE(e.metrics.at("wer"), 0);
    EXPECT_LE(e.metrics.at("wer"), 1);
    // An exact match of the first reference is a match of some reference.
    EXPECT_LE(e.metrics.at("sequence_accuracy"), 1 - e.metrics.at("wer") + 1e-12);
    EXPECT_EQ(e.report.at("examples").get<int64_t>(), 35);
    const std::vector<std::string> inputs = {"cat", "dog\tD AO1 G", "abcdefghijklmnop"};
    EXPECT_EQ(task->predict(inputs).size(), 3u);
    const std::string out = (dir_ / ("explain_" + name)).string();
    const std::vector<std::string> files = task->explain(inputs, out);
    ASSERT_EQ(files.size(), 3u);
    EXPECT_EQ(files[1], out + "/seq_0002.png");
    const torch::Tensor png = read_png(files[0]);
    EXPECT_EQ(png.dim(), 3);
    EXPECT_GT(png.size(1), heatmap_layout(1, 3, HeatmapOptions()).width);
    EXPECT_ERROR(task->predict({"cat", "  "}), "predict: input line 2 has an empty source");
  }
}

TEST_F(Seq2SeqTaskTest, ScoreStripAddsMetricsWithoutTheCharacters) {
  // Without the stress digits a word can only match more often, and be closer.
  for (const std::string strip : {"012", "ABCDEFGHIJKLMNOPQRSTUVWXYZ012"}) {
    ExperimentConfig config = tiny_config("transformer", {"seq2seq.score_strip=" + strip});
    seed_everything(config.seed);
    auto task = make_task(config, "", torch::kCPU);
    Trainer(config, *task, torch::kCPU).fit();
    const Evaluation e = task->evaluate(Split::kValid);
    ASSERT_TRUE(e.metrics.count("stripped_wer"));
    EXPECT_LE(e.metrics.at("stripped_wer"), e.metrics.at("wer"));
    EXPECT_LE(e.metrics.at("stripped_per"), e.metrics.at("per") + 1e-12);
    EXPECT_EQ(e.report.at("stripped_wer").get<double>(), e.metrics.at("stripped_wer"));
    EXPECT_TRUE(Contains(e.table, "without '" + strip + "'")) << e.table;
    if (strip.size() > 3) {  // every phoneme stripped away: all outputs equal all references
      EXPECT_EQ(e.metrics.at("stripped_wer"), 0.0);
      EXPECT_EQ(e.metrics.at("stripped_sequence_accuracy"), 1.0);
    }
  }
  ExperimentConfig plain = tiny_config("transformer");
  auto task = make_task(plain, "", torch::kCPU);
  EXPECT_FALSE(task->evaluate(Split::kValid).metrics.count("stripped_wer"));
}

TEST_F(Seq2SeqTaskTest, BadInputIsCountedOrAClearError) {
  const std::string bad = write("bad.tsv",
                                "source\ttarget\ncat\tK AE1 T\n\tD AO1 G\ndog\n"
                                "abcdefghijklmnopqrstuvwxyz\tEY1\nbee\tB IY1 QQ9\n");
  // Empty source: an error naming file:line, or counted with on_error skip.
  EXPECT_ERROR(make_task(tiny_config("seq2seq", {"data.train=" + bad}), "", torch::kCPU),
               "bad.tsv:3: empty source");
  EXPECT_ERROR(make_task(tiny_config("seq2seq", {"data.train=" + bad, "data.on_error=skip",
                                                 "seq2seq.on_too_long=error"}),
                         "", torch::kCPU),
               "bad.tsv:5: source has 26 tokens, more than seq2seq.max_source_length 12");
  auto task = make_task(tiny_config("seq2seq", {"data.valid=" + bad, "data.on_error=skip"}), "",
                        torch::kCPU);
  const std::string summary = task->summary();
  EXPECT_TRUE(Contains(summary, "2 malformed lines skipped")) << summary;
  EXPECT_TRUE(Contains(summary, "1 sequences truncated")) << summary;
  EXPECT_TRUE(Contains(summary, "1 valid/test target tokens not in the vocabulary")) << summary;
  const Evaluation e = task->evaluate(Split::kValid);
  EXPECT_EQ(e.report.at("oov_target_tokens").get<int64_t>(), 1);
  EXPECT_EQ(e.report.at("truncated_sequences").get<int64_t>(), 1);
  // Missing file, wrong model, too few positions, beam size 0.
  EXPECT_ERROR(
      make_task(tiny_config("seq2seq", {"data.train=/nonexistent/x.tsv"}), "", torch::kCPU),
      "/nonexistent/x.tsv");
  const std::string src = NLPKIT_SOURCE_DIR;
  EXPECT_ERROR(
      make_task(load_config(src + "/configs/tiny/lstm_lm.yaml", {"task=seq2seq"}), "", torch::kCPU),
      "task seq2seq takes seq2seq_attention or transformer");
  EXPECT_ERROR(make_task(tiny_config("transformer", {"model.max_length=8"}), "", torch::kCPU),
               "model.max_length: 8 positions");
  EXPECT_ERROR(tiny_config("seq2seq", {"seq2seq.beam_size=0"}), "seq2seq.beam_size");
}

}  // namespace
}  // namespace nlpkit
