#include "trainers/trainer.h"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "datasets/batching.h"
#include "tests/trainers/tfevents_reader.h"
#include "trainers/checkpoint.h"
#include "trainers/safetensors.h"

namespace nlpkit {
namespace {
namespace fs = std::filesystem;

/// A tiny task: an MLP with dropout on fixed random data, so that the trainer's loop, RNG
/// handling and checkpoints are tested without any real model or data file.
class ToyTask : public Task {
 public:
  explicit ToyTask(int64_t seed) {
    torch::manual_seed(seed);
    model_ = torch::nn::Sequential(torch::nn::Linear(4, 16), torch::nn::ReLU(),
                                   torch::nn::Dropout(0.3), torch::nn::Linear(16, 2));
    auto g = torch::make_generator<at::CPUGeneratorImpl>(7);
    x_ = torch::randn({40, 4}, g);
    y_ = (x_.select(1, 0) > 0).to(torch::kInt64);
  }
  std::shared_ptr<torch::nn::Module> model() override { return model_.ptr(); }
  int64_t batches_per_epoch() override { return 5; }
  StepOutput train_step(int64_t epoch, int64_t batch) override {
    if (on_step) on_step(epoch, batch);
    auto order = shuffled_indices(40, 100 + epoch);
    auto idx = torch::tensor(std::vector<int64_t>(order.begin() + batch * 8,
                                                  order.begin() + batch * 8 + 8));
    StepOutput out;
    out.loss = torch::nn::functional::cross_entropy(model_->forward(x_.index_select(0, idx)),
                                                    y_.index_select(0, idx));
    if (nan_batches.count(batch)) out.loss = out.loss * NAN;
    out.examples = 8;
    out.tokens = 32;
    return out;
  }
  bool has_split(Split s) const override { return s == Split::kValid; }
  Evaluation evaluate(Split) override {
    torch::NoGradGuard g;
    model_->eval();
    Evaluation e;
    e.metrics["loss"] = torch::nn::functional::cross_entropy(model_->forward(x_), y_).item<double>();
    e.metrics["constant"] = 1.0;
    ++evaluations;
    return e;
  }
  std::vector<std::string> predict(const std::vector<std::string>&) override { return {}; }
  void save_artifacts(const std::string& dir) const override {
    std::ofstream(dir + "/toy.txt") << "toy\n";
  }

  std::function<void(int64_t, int64_t)> on_step;
  std::set<int64_t> nan_batches;
  int evaluations = 0;

 private:
  torch::nn::Sequential model_{nullptr};
  torch::Tensor x_, y_;
};

ExperimentConfig toy_config(const std::string& dir) {
  ExperimentConfig c;
  c.output_dir = dir;
  c.logging.progress = "none";
  c.trainer.max_steps = 12;
  c.trainer.save_every = 6;
  c.trainer.keep_last = 10;
  c.trainer.metric = "loss";
  c.trainer.metric_mode = "min";
  c.optimizer.type = "adam";
  c.optimizer.lr = 0.01;
  c.scheduler.type = "cosine";
  c.scheduler.warmup_steps = 2;
  return c;
}

std::string fresh_dir(const std::string& name) {
  const std::string dir = testing::TempDir() + "/nlpkit_trainer_" + name;
  fs::remove_all(dir);
  return dir;
}

bool same_weights(torch::nn::Module& a, torch::nn::Module& b) {
  auto pa = module_state(a), pb = module_state(b);
  if (pa.size() != pb.size()) return false;
  for (size_t i = 0; i < pa.size(); ++i) {
    if (pa[i].first != pb[i].first || !torch::equal(pa[i].second, pb[i].second)) return false;
  }
  return true;
}

TEST(Trainer, ResumeReproducesTheUninterruptedRunExactly) {
  const std::string dir_a = fresh_dir("straight"), dir_b = fresh_dir("resumed");
  ToyTask straight(1);
  FitResult a = Trainer(toy_config(dir_a), straight, torch::kCPU).fit();
  ASSERT_EQ(a.losses.size(), 12u);
  EXPECT_EQ(a.state.step, 12);

  // A different seed and a different run directory: everything must come from the checkpoint.
  ToyTask resumed(999);
  torch::manual_seed(12345);
  ExperimentConfig c = toy_config(dir_b);
  c.trainer.resume = dir_a + "/checkpoints/" + checkpoint_name(6);
  FitResult b = Trainer(c, resumed, torch::kCPU).fit();
  ASSERT_EQ(b.losses.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(b.losses[i], a.losses[6 + i]) << "step " << 7 + i;
  EXPECT_TRUE(same_weights(*straight.model(), *resumed.model()));
}

TEST(Trainer, SignalSavesACheckpointThatResumesExactly) {
  const std::string dir_a = fresh_dir("sig_straight"), dir_b = fresh_dir("sig_interrupted");
  ToyTask straight(1);
  FitResult a = Trainer(toy_config(dir_a), straight, torch::kCPU).fit();

  ToyTask interrupted(1);
  ExperimentConfig c = toy_config(dir_b);
  c.trainer.save_every = 0;
  interrupted.on_step = [](int64_t epoch, int64_t batch) {
    if (epoch == 1 && batch == 2) std::raise(SIGTERM);  // during step 8
  };
  FitResult b = Trainer(c, interrupted, torch::kCPU).fit();
  EXPECT_TRUE(b.interrupted);
  EXPECT_EQ(b.signal, SIGTERM);
  EXPECT_EQ(b.state.step, 8);
  EXPECT_EQ(b.last_checkpoint, dir_b + "/checkpoints/" + checkpoint_name(8));

  ToyTask resumed(5);
  c.trainer.resume = "auto";
  FitResult r = Trainer(c, resumed, torch::kCPU).fit();
  ASSERT_EQ(r.losses.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(r.losses[i], a.losses[8 + i]);
  EXPECT_TRUE(same_weights(*straight.model(), *resumed.model()));
}

TEST(Trainer, CheckpointHoldsEverythingAndPrunes) {
  const std::string dir = fresh_dir("files");
  ToyTask task(1);
  ExperimentConfig c = toy_config(dir);
  c.trainer.save_every = 2;
  c.trainer.keep_last = 2;
  c.trainer.keep_best = false;
  c.trainer.eval_each_epoch = false;
  Trainer(c, task, torch::kCPU).fit();
  auto names = list_checkpoints(dir + "/checkpoints");
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(fs::path(names[1]).filename(), checkpoint_name(12));
  for (const char* f : {"model.safetensors", "optimizer.pt", "trainer_state.json", "config.yaml",
                        "manifest.json", "toy.txt"}) {
    EXPECT_TRUE(fs::exists(names[1] + "/" + f)) << f;
  }
  EXPECT_NO_THROW(verify_checkpoint(names[1]));
  EXPECT_EQ(find_checkpoint(dir), names[1]);
  EXPECT_EQ(find_best_checkpoint(dir), names[1]);  // no best kept: the latest
  EXPECT_TRUE(fs::exists(dir + "/config.yaml"));
  std::ifstream log(dir + "/metrics.jsonl");
  int lines = 0;
  for (std::string l; std::getline(log, l);) {
    auto j = nlohmann::json::parse(l);
    EXPECT_TRUE(j.contains("step"));
    ++lines;
  }
  EXPECT_GE(lines, 1);
}

TEST(Trainer, KeepBestKeepsTheBestCheckpoint) {
  const std::string dir = fresh_dir("best");
  ToyTask task(1);
  ExperimentConfig c = toy_config(dir);
  c.trainer.metric = "constant";  // improves once, at the first evaluation
  c.trainer.metric_mode = "max";
  c.trainer.eval_every = 2;
  c.trainer.save_every = 4;
  c.trainer.keep_last = 1;
  FitResult r = Trainer(c, task, torch::kCPU).fit();
  EXPECT_EQ(r.state.best_step, 2);
  EXPECT_EQ(r.best_checkpoint, dir + "/checkpoints/" + checkpoint_name(2));
  EXPECT_TRUE(fs::exists(r.best_checkpoint));
  EXPECT_EQ(list_checkpoints(dir + "/checkpoints").size(), 2u);  // best + newest
  // A run (or its checkpoints folder) means its best checkpoint to evaluate, its latest to
  // resume; a checkpoint directory means itself.
  const std::string latest = dir + "/checkpoints/" + checkpoint_name(r.state.step);
  EXPECT_EQ(find_checkpoint(dir), latest);
  EXPECT_EQ(find_best_checkpoint(dir), r.best_checkpoint);
  EXPECT_EQ(find_best_checkpoint(dir + "/checkpoints"), r.best_checkpoint);
  EXPECT_EQ(find_best_checkpoint(latest), latest);
  // Once the best is gone, the latest.
  fs::remove_all(r.best_checkpoint);
  EXPECT_EQ(find_best_checkpoint(dir), latest);
  EXPECT_THROW(find_best_checkpoint(dir + "/nothing"), InputError);
}

TEST(Trainer, EarlyStopping) {
  ToyTask task(1);
  ExperimentConfig c = toy_config(fresh_dir("early"));
  c.trainer.metric = "constant";
  c.trainer.metric_mode = "max";
  c.trainer.eval_every = 1;
  c.trainer.patience = 3;
  FitResult r = Trainer(c, task, torch::kCPU).fit();
  EXPECT_TRUE(r.early_stopped);
  EXPECT_EQ(r.state.step, 4);  // best at 1, then 3 evaluations without improvement
}

TEST(Trainer, NonFiniteStepsAreSkippedThenFatal) {
  ToyTask task(1);
  task.nan_batches = {1, 3};
  ExperimentConfig c = toy_config(fresh_dir("nan"));
  c.trainer.max_steps = 6;
  FitResult r = Trainer(c, task, torch::kCPU).fit();
  EXPECT_EQ(r.state.step, 6);
  EXPECT_EQ(r.state.nonfinite_steps, 4);  // batches 1 and 3 of epochs 0 and 1
  for (double loss : r.losses) EXPECT_TRUE(std::isfinite(loss));

  ToyTask bad(1);
  bad.nan_batches = {0, 1, 2, 3, 4};
  c = toy_config(fresh_dir("nan_fatal"));
  c.trainer.max_nonfinite_steps = 3;
  try {
    Trainer(c, bad, torch::kCPU).fit();
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("3 non-finite losses or gradients in a row"),
              std::string::npos)
        << e.what();
  }
}

TEST(Trainer, EpochsAndGradientAccumulation) {
  ToyTask task(1);
  ExperimentConfig c = toy_config(fresh_dir("accum"));
  c.trainer.max_steps = 0;
  c.trainer.epochs = 2;
  c.trainer.grad_accum_steps = 2;  // 5 batches -> steps of 2, 2, 1
  FitResult r = Trainer(c, task, torch::kCPU).fit();
  EXPECT_EQ(r.state.step, 6);
  EXPECT_EQ(r.state.epoch, 2);
  EXPECT_EQ(task.evaluations, 2);  // one validation per epoch
}

TEST(Trainer, ClippingAndPenaltiesRun) {
  ToyTask task(1);
  ExperimentConfig c = toy_config(fresh_dir("clip"));
  c.trainer.clip_grad_norm = 0.01;
  c.trainer.clip_grad_value = 0.001;
  c.trainer.l1 = 1e-4;
  c.trainer.l2 = 1e-4;
  FitResult r = Trainer(c, task, torch::kCPU).fit();
  EXPECT_EQ(r.losses.size(), 12u);
}

TEST(Trainer, ResolveDevice) {
  EXPECT_EQ(resolve_device("cpu"), torch::Device(torch::kCPU));
  EXPECT_THROW(resolve_device("tpu"), ConfigError);
  if (!torch::cuda::is_available()) {
    EXPECT_EQ(resolve_device("auto"), torch::Device(torch::kCPU));
    EXPECT_THROW(resolve_device("cuda:0"), ConfigError);
  }
}

TEST(Trainer, CorruptCheckpointIsReportedOnResume) {
  const std::string dir = fresh_dir("corrupt");
  ToyTask task(1);
  Trainer(toy_config(dir), task, torch::kCPU).fit();
  const std::string ckpt = dir + "/checkpoints/" + checkpoint_name(12);
  {
    std::fstream f(ckpt + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('\x7f');
  }
  ToyTask again(1);
  ExperimentConfig c = toy_config(fresh_dir("corrupt_resume"));
  c.trainer.resume = ckpt;
  try {
    Trainer(c, again, torch::kCPU).fit();
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(ckpt + "/model.safetensors"), std::string::npos)
        << e.what();
  }
}

std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0) {
      files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<nlohmann::json> jsonl(const std::string& path) {
  std::vector<nlohmann::json> records;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
  return records;
}

TEST(Trainer, TensorBoardEventsHoldEveryLoggedMetric) {
  namespace tfe = testing_tfevents;
  const std::string dir = fresh_dir("tensorboard");
  ToyTask task(1);
  ExperimentConfig c = toy_config(dir);
  c.logging.every = 3;
  c.logging.histograms_every = 4;
  c.trainer.eval_every = 4;
  c.trainer.eval_each_epoch = false;
  Trainer(c, task, torch::kCPU).fit();

  const std::vector<std::string> files = event_files(dir);
  ASSERT_EQ(files.size(), 1u);
  const std::vector<tfe::Event> events = tfe::read_events(files[0]);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");

  // Every number of every metrics.jsonl record is a scalar "<split>/<name>" at its step, and
  // there is no other scalar.
  const auto scalars = tfe::scalars(events);
  size_t expected = 0;
  std::set<std::string> splits;
  for (const auto& record : jsonl(dir + "/metrics.jsonl")) {
    const std::string split = record.at("split");
    splits.insert(split);
    const int64_t step = record.at("step");
    EXPECT_GT(record.at("wall_time").get<double>(), 1.6e9);
    for (const auto& [name, value] : record.items()) {
      if (name == "step" || name == "epoch" || name == "wall_time" || !value.is_number()) continue;
      ++expected;
      const std::string tag = split + "/" + name;
      ASSERT_TRUE(scalars.count(tag) && scalars.at(tag).count(step)) << tag << " at " << step;
      EXPECT_EQ(scalars.at(tag).at(step), static_cast<float>(value.get<double>())) << tag;
    }
  }
  EXPECT_EQ(splits, (std::set<std::string>{"train", "valid"}));
  size_t found = 0;
  for (const auto& [tag, by_step] : scalars) found += by_step.size();
  EXPECT_EQ(found, expected);
  EXPECT_EQ(scalars.at("train/loss").size(), 4u);  // steps 3, 6, 9, 12
  EXPECT_EQ(scalars.at("valid/loss").size(), 3u);  // steps 4, 8, 12

  // The resolved config as a text summary: a Markdown code block (indented lines).
  std::string config_text;
  std::map<int64_t, std::set<std::string>> histograms;
  for (const auto& e : events) {
    for (const auto& v : e.values) {
      if (v.tag == "config") {
        EXPECT_EQ(v.plugin, "text");
        EXPECT_EQ(v.dtype, 7u);
        ASSERT_EQ(v.strings.size(), 1u);
        config_text = v.strings[0];
      }
      if (v.has_histo) {
        histograms[e.step].insert(v.tag);
        EXPECT_GT(v.num, 0) << v.tag;
        double total = 0;
        for (double b : v.bucket) total += b;
        EXPECT_EQ(total, v.num) << v.tag;
      }
    }
  }
  std::string indented;
  std::istringstream lines(dump_config(c));
  for (std::string line; std::getline(lines, line);) indented += "    " + line + "\n";
  EXPECT_EQ(config_text, indented);
  // Weights and gradients of every parameter at steps 4, 8 and 12.
  std::set<std::string> tags;
  for (const auto& p : task.model()->named_parameters()) {
    tags.insert("weights/" + p.key());
    tags.insert("gradients/" + p.key());
  }
  ASSERT_EQ(histograms.size(), 3u);
  for (int64_t step : {4, 8, 12}) EXPECT_EQ(histograms[step], tags) << step;
}

TEST(Trainer, ResumedRunWritesASessionStartInANewEventFile) {
  namespace tfe = testing_tfevents;
  const std::string dir = fresh_dir("tensorboard_resume");
  ToyTask task(1);
  Trainer(toy_config(dir), task, torch::kCPU).fit();
  ToyTask again(1);
  ExperimentConfig c = toy_config(dir);
  c.trainer.resume = dir + "/checkpoints/" + checkpoint_name(6);
  Trainer(c, again, torch::kCPU).fit();
  const std::vector<std::string> files = event_files(dir);
  ASSERT_EQ(files.size(), 2u);
  const std::vector<tfe::Event> events = tfe::read_events(files[1]);
  ASSERT_GE(events.size(), 2u);
  EXPECT_TRUE(events[1].session_start);
  EXPECT_EQ(events[1].step, 7);  // TensorBoard drops the first run's steps >= 7
}

TEST(Trainer, LoggingSwitches) {
  const std::string dir = fresh_dir("logging_off");
  ToyTask task(1);
  ExperimentConfig c = toy_config(dir);
  c.logging.jsonl = false;
  c.logging.tensorboard = false;
  Trainer(c, task, torch::kCPU).fit();
  EXPECT_FALSE(fs::exists(dir + "/metrics.jsonl"));
  EXPECT_TRUE(event_files(dir).empty());
  EXPECT_TRUE(fs::exists(dir + "/checkpoints/latest"));
}

TEST(Trainer, CheckpointsSumTheTrainingTime) {
  const std::string dir = fresh_dir("elapsed");
  ToyTask task(1);
  FitResult r = Trainer(toy_config(dir), task, torch::kCPU).fit();
  EXPECT_GT(r.state.elapsed_seconds, 0);
  std::ifstream in(dir + "/checkpoints/" + checkpoint_name(12) + "/trainer_state.json");
  nlohmann::json state;
  in >> state;
  EXPECT_GT(state.at("elapsed_seconds").get<double>(), 0);
  // A resumed run adds its own time to the checkpoint's.
  ToyTask again(1);
  ExperimentConfig c = toy_config(dir);
  c.trainer.max_steps = 13;
  c.trainer.resume = dir + "/checkpoints/" + checkpoint_name(12);
  FitResult more = Trainer(c, again, torch::kCPU).fit();
  EXPECT_GT(more.state.elapsed_seconds, state.at("elapsed_seconds").get<double>());
  // Checkpoints written before elapsed_seconds existed still load.
  state.erase("elapsed_seconds");
  EXPECT_EQ(TrainerState::from_json(state, "old.json").elapsed_seconds, 0);
}

}  // namespace
}  // namespace nlpkit
