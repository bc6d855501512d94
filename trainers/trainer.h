// The training loop. `Trainer::fit` is the whole loop on one screen; everything it calls
// (lr_at, checkpoints, evaluation, logging) is small and tested alone.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "trainers/config.h"
#include "trainers/distributed.h"
#include "trainers/optim.h"
#include "trainers/precision.h"
#include "trainers/task.h"

namespace nlpkit {

class ProgressReporter;
class RunLog;

/// `auto` -> CUDA when available, else CPU; `cpu`, `cuda`, `cuda:N`. Throws ConfigError on a
/// malformed value or when CUDA is asked for and not available.
torch::Device resolve_device(const std::string& device);

/// Seeds every generator nlpkit uses (torch's CPU and CUDA generators; data order is derived from
/// the seed and the epoch).
void seed_everything(int64_t seed);

/// Where a run is: what a checkpoint's trainer_state.json holds.
struct TrainerState {
  int64_t step = 0;   // optimizer steps done
  int64_t epoch = 0;  // current epoch (0-based)
  int64_t batch = 0;  // next batch within the epoch
  int64_t nonfinite_steps = 0;
  int64_t consecutive_nonfinite = 0;
  double best_metric = NAN;
  int64_t best_step = -1;
  int64_t evals_without_improvement = 0;
  double elapsed_seconds = 0;  // training time, summed over the sessions of a resumed run
  int64_t world_size = 1;      // ranks that trained; `batch` counts batches of one rank ...
  int64_t batch_size = 0;      // ... of this many examples (0: not recorded)
  nlohmann::json to_json() const;
  static TrainerState from_json(const nlohmann::json& j, const std::string& source);
};

/// How fit() ended.
struct FitResult {
  TrainerState state;
  std::string last_checkpoint;  // directory of the final checkpoint
  std::string best_checkpoint;  // directory, empty when none
  bool interrupted = false;     // SIGINT/SIGTERM: checkpoint saved, loop left early
  int signal = 0;
  bool early_stopped = false;
  std::vector<double> losses;   // the training loss of every optimizer step of this process
  std::optional<Evaluation> test;
};

class Trainer {
 public:
  /// With a distributed `comm`, every rank runs fit() on its own shard of the data (the task
  /// was built with config.data.shard_index/shard_count): weights start as rank 0's, gradients
  /// are averaged, metrics averaged, and rank 0 alone writes checkpoints and logs.
  Trainer(ExperimentConfig config, Task& task, torch::Device device,
          std::shared_ptr<Communicator> comm = nullptr);
  /// Trains to the end (or to a signal / early stop), checkpointing on the way, then evaluates
  /// the test split (with the best checkpoint's weights when keep_best) if one is configured.
  FitResult fit();
  /// Loads weights, optimizer and trainer state (including RNG states) from a checkpoint dir.
  void resume_from(const std::string& checkpoint_dir);

 private:
  /// Writes the checkpoint of the current step and prunes old ones (keeping the best).
  void save_checkpoint();
  /// Validates; updates best and early stopping. Returns true when training should stop.
  bool validate(ProgressReporter& progress, RunLog& log);
  /// TensorBoard histograms of every parameter and its gradient (logging.histograms_every).
  void log_histograms(RunLog& log);
  int64_t total_steps();
  int64_t display_epoch() const;

  ExperimentConfig config_;
  Task& task_;
  torch::Device device_;
  std::shared_ptr<Communicator> comm_;  // never null: a single process has a no-op one
  Precision precision_;
  LossScaler scaler_;  // fp16 only
  std::shared_ptr<torch::nn::Module> model_;
  std::vector<ParameterGroup> groups_;  // the optimizer's groups, in its order
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  TrainerState state_;
  int64_t saved_step_ = -1;      // step of the newest checkpoint this process wrote
  int64_t validated_step_ = -1;  // step of the last validation (never validate twice)
  std::string run_dir_;
  std::string checkpoint_root_;
  double elapsed_base_ = 0;  // elapsed_seconds when this session started
  std::chrono::steady_clock::time_point session_start_ = std::chrono::steady_clock::now();
};

/// Loads a model's weights from a checkpoint directory (verifying its manifest) into `task`.
void load_weights(Task& task, const std::string& checkpoint_dir);

/// Resolves a path given by the user to a checkpoint directory: a checkpoint itself, or a run
/// directory / checkpoints folder (its `latest`).
std::string find_checkpoint(const std::string& path);

/// As find_checkpoint, but a run directory / checkpoints folder means its best checkpoint (by
/// trainer.metric, as its latest trainer_state.json records it) when that is still on disk, else
/// its latest. What `nlpkit evaluate`, `predict`, `export` and `forward` load.
std::string find_best_checkpoint(const std::string& path);

}  // namespace nlpkit
