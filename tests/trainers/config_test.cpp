#include "trainers/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "trainers/registry.h"

namespace nlpkit {
namespace {

std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, "x.yaml", overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Config, DefaultsFileThenOverrides) {
  ExperimentConfig c = parse_config(
      "name: demo\n"
      "optimizer:\n"
      "  type: sgd\n"
      "  lr: 0.5\n"
      "model:\n"
      "  hidden_size: 8\n"
      "  kernel_sizes: [2, 3]\n",
      "x.yaml", {"optimizer.lr=1e-4", "trainer.max_steps=50"});
  EXPECT_EQ(c.name, "demo");
  EXPECT_EQ(c.optimizer.type, "sgd");
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 1e-4);
  EXPECT_EQ(c.trainer.max_steps, 50);
  EXPECT_EQ(c.model.text_cnn_bilstm_attention.hidden_size(), 8);
  EXPECT_EQ(c.model.text_cnn_bilstm_attention.kernel_sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(c.data.batch_size, 32);  // untouched default
  EXPECT_EQ(c.run_dir(), "runs/demo");
}

TEST(Config, UnknownKeySuggestsTheClosest) {
  EXPECT_EQ(error_of("model:\n  hiden_size: 3\n"),
            "x.yaml:2:3: model.hiden_size: unknown key; did you mean 'hidden_size'?");
  EXPECT_EQ(error_of("optimzer:\n  lr: 1\n"),
            "x.yaml:1:1: optimzer: unknown key; did you mean 'optimizer'?");
  EXPECT_EQ(error_of("zzz: 1\n"), "x.yaml:1:1: zzz: unknown key");
}

TEST(Config, MovedKeysNameTheirNewPlace) {
  EXPECT_EQ(error_of("trainer:\n  log_every: 5\n"),
            "x.yaml:2:3: trainer.log_every: unknown key; it moved to 'logging.every'");
  EXPECT_EQ(error_of("", {"trainer.progress=line"}),
            "command line: trainer.progress: unknown key; it moved to 'logging.progress'");
  ExperimentConfig c = parse_config("logging: {every: 5, tensorboard: false}\n", "x.yaml",
                                    {"logging.histograms_every=10"});
  EXPECT_EQ(c.logging.every, 5);
  EXPECT_FALSE(c.logging.tensorboard);
  EXPECT_TRUE(c.logging.jsonl);
  EXPECT_EQ(c.logging.histograms_every, 10);
  EXPECT_EQ(c.logging.progress, "auto");
}

TEST(Config, WrongTypesNameFileLineAndKey) {
  EXPECT_EQ(error_of("optimizer:\n  lr: fast\n"),
            "x.yaml:2:7: optimizer.lr: expected a number, found 'fast'");
  EXPECT_EQ(error_of("trainer:\n  max_steps: 1.5\n"),
            "x.yaml:2:14: trainer.max_steps: expected an integer, found '1.5'");
  EXPECT_EQ(error_of("data:\n  shuffle: maybe\n"),
            "x.yaml:2:12: data.shuffle: expected true or false, found 'maybe'");
  EXPECT_EQ(error_of("model:\n  kernel_sizes: [2, x]\n"),
            "x.yaml:2:21: model.kernel_sizes[1]: expected an integer, found 'x'");
  EXPECT_EQ(error_of("data: 3\n"),
            "x.yaml:1:7: data: expected a section of key: value lines, found '3'");
  EXPECT_EQ(error_of("name: [a]\n"), "x.yaml:1:7: name: expected a string, found a list");
}

TEST(Config, OutOfRangeValues) {
  EXPECT_EQ(error_of("optimizer:\n  lr: -1\n"),
            "x.yaml:2:7: optimizer.lr: must be > 0.0, found -1.0");
  EXPECT_EQ(error_of("data:\n  batch_size: 0\n"),
            "x.yaml:2:15: data.batch_size: must be >= 1.0, found 0.0");
  EXPECT_EQ(error_of("model:\n  dropout: 1.5\n"),
            "x.yaml:2:12: model.dropout: must be <= 0.99, found 1.5");
}

TEST(Config, UnknownTypeListsTheRegisteredOnes) {
  EXPECT_EQ(error_of("optimizer:\n  type: adamm\n"),
            "x.yaml:2:9: optimizer.type: unknown value 'adamm'; expected one of: adam, adamw, "
            "sgd; did you mean 'adam'?");
  const std::string e = error_of("model:\n  type: gpt\n");
  EXPECT_EQ(e.find("x.yaml:2:9: model.type: unknown value 'gpt'; expected one of: "), 0u) << e;
  EXPECT_NE(e.find("text_cnn_bilstm_attention"), std::string::npos) << e;
}

TEST(Config, OverrideErrorsSayCommandLine) {
  EXPECT_EQ(error_of("", {"optimizer.lr=abc"}),
            "command line: optimizer.lr: expected a number, found 'abc'");
  EXPECT_EQ(error_of("", {"optimizer.lrr=1"}),
            "command line: optimizer.lrr: unknown key; did you mean 'lr'?");
  EXPECT_EQ(error_of("", {"noequals"}), "command line: 'noequals': expected key.path=value");
  EXPECT_EQ(error_of("seed: 1\n", {"seed.x=1"}), "command line: seed.x: seed is not a section");
}

TEST(Config, MissingFileAndInvalidYaml) {
  try {
    load_config("/nonexistent/cfg.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "config file not found: /nonexistent/cfg.yaml");
  }
  EXPECT_EQ(error_of("a: [1, 2\n").rfind("x.yaml:", 0), 0u);
  EXPECT_NE(error_of("a: [1, 2\n").find("invalid YAML"), std::string::npos);
  EXPECT_EQ(error_of("- 1\n- 2\n"),
            "x.yaml:1:1: expected a YAML mapping (key: value lines) at the top level, found a list");
  EXPECT_EQ(error_of("optimizer:\n  lr:\n"), "x.yaml:2:3: optimizer.lr: missing value");
}

TEST(Config, DumpRoundTripsEveryKey) {
  ExperimentConfig c = parse_config("name: rt\noptimizer: {lr: 0.25, type: sgd}\n", "x.yaml",
                                    {"model.kernel_sizes=[5]", "data.train=a b.tsv"});
  const std::string dumped = dump_config(c);
  ExperimentConfig again = parse_config(dumped, "dump");
  EXPECT_EQ(dump_config(again), dumped);
  EXPECT_EQ(again.data.train, "a b.tsv");
  EXPECT_EQ(again.model.text_cnn_bilstm_attention.kernel_sizes(), std::vector<int64_t>{5});
  EXPECT_NE(dumped.find("  lr: 0.25\n"), std::string::npos) << dumped;
}

TEST(Config, ReadmeDocumentsEveryKey) {
  // configs/README.md holds the generated reference between two markers; regenerate it with
  // `nlpkit dump-config --reference` when a declaration changes.
  std::ifstream in(std::string(NLPKIT_SOURCE_DIR) + "/configs/README.md");
  ASSERT_TRUE(in) << "configs/README.md is missing";
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const std::string begin = "<!-- BEGIN KEY REFERENCE (nlpkit dump-config --reference) -->\n";
  const std::string end = "<!-- END KEY REFERENCE -->";
  const size_t b = text.find(begin), e = text.find(end);
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(e, std::string::npos);
  EXPECT_EQ(text.substr(b + begin.size(), e - b - begin.size()), config_reference_markdown())
      << "configs/README.md is out of date: run tools/update-config-reference.sh";
}

TEST(Config, EveryShippedConfigParses) {
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(std::string(NLPKIT_SOURCE_DIR) + "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    EXPECT_NO_THROW(load_config(entry.path().string())) << entry.path();
  }
}

TEST(Config, DidYouMean) {
  EXPECT_EQ(did_you_mean("lrr", {"lr", "eps"}), "lr");
  EXPECT_EQ(did_you_mean("totally", {"lr", "eps"}), "");
  EXPECT_EQ(did_you_mean("warmup", {"warmup_steps", "gamma"}), "warmup_steps");
}

}  // namespace
}  // namespace nlpkit
