#include "trainers/runs.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "datasets/png.h"
#include "tests/test_util.h"
#include "trainers/checkpoint.h"
#include "trainers/trainer.h"

namespace nlpkit {
namespace {
namespace fs = std::filesystem;

class RunsTest : public TempDirTest {
 protected:
  /// A run directory made by hand: config.yaml, metrics.jsonl and, optionally, a checkpoint.
  std::string make_run(const std::string& name, const std::string& lr, const std::string& metrics,
                       const std::string& trainer_state = "") {
    const fs::path dir = dir_ / "runs" / name;
    fs::create_directories(dir);
    std::ofstream(dir / "config.yaml")
        << "name: \"" << name << "\"\ntask: \"classification\"\noutput_dir: \"" << dir.string()
        << "\"\nmodel:\n  type: \"text_cnn_bilstm_attention\"\n  kernel_sizes: [2, 3]\n"
        << "optimizer:\n  lr: " << lr << "\ntrainer:\n  metric: \"accuracy\"\n"
        << "  metric_mode: \"max\"\n  resume: \"none\"\n";
    std::ofstream(dir / "metrics.jsonl") << metrics;
    if (!trainer_state.empty()) {
      commit_checkpoint((dir / "checkpoints").string(), checkpoint_name(10),
                        [&](const std::string& tmp) {
                          std::ofstream(tmp + "/trainer_state.json") << trainer_state;
                        });
    }
    return dir.string();
  }
};

const char* kMetrics =
    R"({"split":"train","step":5,"epoch":1,"loss":0.9,"lr":0.01,"wall_time":1000.0})"
    "\n"
    R"({"split":"valid","step":5,"epoch":1,"loss":0.7,"accuracy":0.75,"wall_time":1001.0})"
    "\n"
    R"({"split":"train","step":10,"epoch":1,"loss":0.5,"lr":0.01,"wall_time":1010.0})"
    "\n"
    R"({"split":"valid","step":10,"epoch":1,"loss":0.6,"accuracy":0.625,"wall_time":1011.0})"
    "\n"
    R"({"split":"test","step":10,"loss":0.65,"accuracy":0.6,"wall_time":1012.0})"
    "\n";

TEST_F(RunsTest, SummaryFromMetricsAndCheckpoint) {
  const std::string a = make_run("a", "0.01", kMetrics);
  RunSummary s = summarize_run(a);
  EXPECT_EQ(s.steps, 10);
  EXPECT_EQ(s.metric, "accuracy");
  EXPECT_EQ(s.best, 0.75);  // the maximum: metric_mode max
  EXPECT_EQ(s.best_step, 5);
  EXPECT_EQ(s.test, 0.6);
  EXPECT_EQ(s.seconds, 12.0);  // the metrics.jsonl span, without a checkpoint
  EXPECT_EQ(s.config_value("model.kernel_sizes"), "[2, 3]");
  EXPECT_EQ(s.config_value("optimizer.lr"), "0.01");
  EXPECT_EQ(s.config_value("nothing.here"), "");

  // The checkpoint's trainer state wins: its best (keep_best's) and its summed training time.
  const std::string b =
      make_run("b", "0.001", kMetrics,
               R"({"step": 12, "best_metric": 0.8, "best_step": 12, "elapsed_seconds": 42.5})");
  s = summarize_run(b);
  EXPECT_EQ(s.steps, 12);
  EXPECT_EQ(s.best, 0.8);
  EXPECT_EQ(s.best_step, 12);
  EXPECT_EQ(s.seconds, 42.5);
}

TEST_F(RunsTest, TableShowsTheConfigKeysThatDiffer) {
  make_run("a", "0.01", kMetrics);
  make_run("b", "0.001", kMetrics);
  const std::vector<std::string> dirs = find_runs((dir_ / "runs").string());
  ASSERT_EQ(dirs.size(), 2u);
  EXPECT_EQ(fs::path(dirs[0]).filename(), "a");
  std::vector<RunSummary> runs;
  for (const auto& d : dirs) runs.push_back(summarize_run(d));
  const std::string table = format_runs_table(runs);
  std::istringstream lines(table);
  std::string header, row_a, row_b;
  std::getline(lines, header);
  std::getline(lines, row_a);
  std::getline(lines, row_b);
  EXPECT_EQ(header.rfind("run", 0), 0u) << table;
  for (const char* column : {"task", "model", "steps", "time", "metric", "best valid", "at step",
                             "test", "optimizer.lr"}) {
    EXPECT_TRUE(Contains(header, column)) << column;
  }
  // name and output_dir differ too, but the run column already says which run it is.
  EXPECT_FALSE(Contains(header, "output_dir"));
  EXPECT_FALSE(Contains(header, "name"));
  EXPECT_FALSE(Contains(header, "kernel_sizes"));  // the same in both
  EXPECT_EQ(row_a.rfind("a ", 0), 0u);
  EXPECT_TRUE(Contains(row_a, "classification"));
  EXPECT_TRUE(Contains(row_a, "0.7500"));
  EXPECT_TRUE(Contains(row_a, "0.6000"));
  EXPECT_TRUE(Contains(row_a, "12s"));
  EXPECT_TRUE(Contains(row_a, "0.01"));
  EXPECT_TRUE(Contains(row_b, "0.001"));
  // Columns line up: "optimizer.lr" starts where the rows' lr values start.
  EXPECT_EQ(header.find("optimizer.lr"), row_a.rfind("0.01"));
}

TEST_F(RunsTest, FindRunsErrors) {
  EXPECT_ERROR(find_runs((dir_ / "missing").string()), "runs directory not found: ");
  fs::create_directories(dir_ / "empty" / "not_a_run");
  EXPECT_ERROR(find_runs((dir_ / "empty").string()), "no runs under " + (dir_ / "empty").string());
  // A run directory itself is its own list.
  const std::string a = make_run("a", "0.01", kMetrics);
  EXPECT_EQ(find_runs(a), std::vector<std::string>{a});
}

TEST_F(RunsTest, ReadMetricsErrors) {
  EXPECT_ERROR(read_metrics((dir_ / "missing").string()), "run directory not found: ");
  fs::create_directories(dir_ / "bare");
  EXPECT_ERROR(read_metrics((dir_ / "bare").string()),
               "no metrics.jsonl in " + (dir_ / "bare").string());
  const std::string bad = make_run("bad", "0.1", "{\"split\":\"train\",\"step\":1}\nnot json\n");
  EXPECT_ERROR(read_metrics(bad), bad + "/metrics.jsonl:2: invalid JSON");
  const std::string list = make_run("list", "0.1", "[1, 2]\n");
  EXPECT_ERROR(read_metrics(list), list + "/metrics.jsonl:1: expected a JSON object");
  // A run killed mid-write: the unterminated last line is dropped.
  const std::string cut = make_run("cut", "0.1", "{\"split\":\"train\",\"step\":1}\n{\"spl");
  EXPECT_EQ(read_metrics(cut).size(), 1u);
}

TEST_F(RunsTest, PlottableMetrics) {
  std::vector<nlohmann::json> records;
  std::istringstream lines(kMetrics);
  for (std::string line; std::getline(lines, line);) records.push_back(nlohmann::json::parse(line));
  EXPECT_EQ(plottable_metrics(records), (std::vector<std::string>{"loss", "accuracy", "lr"}));
}

TEST_F(RunsTest, PlotWritesOneChartPerMetric) {
  const std::string a = make_run("a", "0.01", kMetrics);
  const std::string b = make_run("b", "0.001", kMetrics);
  const std::string out = (dir_ / "plots").string();
  const std::vector<std::string> files = plot_runs({a, b}, out, {"loss", "accuracy"});
  EXPECT_EQ(files, (std::vector<std::string>{out + "/loss.png", out + "/accuracy.png"}));
  for (const auto& f : files) EXPECT_EQ(read_png(f).sizes(), (std::vector<int64_t>{500, 800, 3}));
  EXPECT_ERROR(plot_runs({a}, out, {"acc"}),
               "plot: no run logged the metric 'acc'; logged: loss, accuracy, lr");
  EXPECT_ERROR(plot_runs({(dir_ / "nowhere").string()}, out), "run directory not found: ");
  EXPECT_ERROR(plot_runs({}, out), "no run directory given");
}

/// The tiny classifier of configs/tiny/classifier.yaml, a few steps of it.
ExperimentConfig tiny_classifier(const std::string& dir, std::vector<std::string> overrides) {
  const std::string src = NLPKIT_SOURCE_DIR;
  overrides.insert(overrides.end(),
                   {"data.train=" + src + "/tests/data/tiny_cls/train.tsv",
                    "data.valid=" + src + "/tests/data/tiny_cls/valid.tsv",
                    "data.test=" + src + "/tests/data/tiny_cls/test.tsv", "output_dir=" + dir,
                    "logging.progress=none", "logging.every=1", "trainer.max_steps=4",
                    "trainer.eval_every=2", "device=cpu"});
  return load_config(src + "/configs/tiny/classifier.yaml", overrides);
}

void train(const ExperimentConfig& config) {
  seed_everything(config.seed);
  auto task = make_task(config, "", torch::kCPU);
  Trainer(config, *task, torch::kCPU).fit();
}

TEST_F(RunsTest, TinyRunsPlotAndList) {
  const std::string a = (dir_ / "runs" / "lr_a").string(), b = (dir_ / "runs" / "lr_b").string();
  train(tiny_classifier(a, {"optimizer.lr=0.01"}));
  train(tiny_classifier(b, {"optimizer.lr=0.02"}));

  // Every metric the trainer logged gets a chart; each decodes at the chart's size.
  const std::vector<std::string> files = plot_runs({a, b}, (dir_ / "plots").string());
  EXPECT_EQ(files.size(), plottable_metrics(read_metrics(a)).size());
  EXPECT_GE(files.size(), 8u);  // loss, accuracy, lr, grad_norm, macro_f1, ...
  for (const auto& f : files) EXPECT_EQ(read_png(f).sizes(), (std::vector<int64_t>{500, 800, 3}));

  std::vector<RunSummary> runs;
  for (const auto& d : find_runs((dir_ / "runs").string())) runs.push_back(summarize_run(d));
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].steps, 4);
  EXPECT_EQ(runs[0].metric, "accuracy");
  EXPECT_EQ(runs[0].best_step >= 2, true);
  EXPECT_FALSE(std::isnan(runs[0].test));
  EXPECT_GT(runs[0].seconds, 0);
  const std::string table = format_runs_table(runs);
  EXPECT_TRUE(Contains(table, "optimizer.lr")) << table;
  EXPECT_TRUE(Contains(table, "text_cnn_bilstm_attention")) << table;
  EXPECT_TRUE(Contains(table, "lr_b")) << table;
}

}  // namespace
}  // namespace nlpkit
