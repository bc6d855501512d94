// Run directories read back after training: `nlpkit plot` (metrics.jsonl as PNG charts) and
// `nlpkit runs list` (a table comparing runs). A run directory holds config.yaml, metrics.jsonl
// and checkpoints/ (see trainers/checkpoint.h); these readers accept runs of older nlpkit
// versions, whose config keys may no longer parse.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace nlpkit {

/// Whether `dir` looks like a run directory (it holds config.yaml or metrics.jsonl).
bool is_run_dir(const std::string& dir);

/// The run directories under `dir`: `dir` itself when it is one, otherwise its subdirectories
/// that are, sorted by name. Throws InputError when `dir` does not exist or holds no run.
std::vector<std::string> find_runs(const std::string& dir);

/// The records of `<run_dir>/metrics.jsonl`, in file order. Throws InputError when the
/// directory or the file is missing ("no metrics.jsonl in runs/x (...)") or a line is not a
/// JSON object ("runs/x/metrics.jsonl:3: invalid JSON: ...").
std::vector<nlohmann::json> read_metrics(const std::string& run_dir);

/// What `nlpkit runs list` shows about one run.
struct RunSummary {
  std::string dir;
  /// config.yaml flattened to "section.key" -> value as written (lists as "[2, 3]").
  std::vector<std::pair<std::string, std::string>> config;
  int64_t steps = 0;
  /// Training time in seconds (the latest checkpoint's, else the metrics.jsonl span); NaN when
  /// unknown.
  double seconds = NAN;
  /// trainer.metric and its best validation value and step (NaN / -1 when never validated).
  std::string metric;
  double best = NAN;
  int64_t best_step = -1;
  /// trainer.metric on the test split, when the run evaluated it.
  double test = NAN;

  /// The value of a flattened config key, "" when absent.
  std::string config_value(const std::string& key) const;
};

/// Reads config.yaml, metrics.jsonl and the latest checkpoint's trainer_state.json, each if
/// present. Throws InputError when none is, or one is malformed (naming the file).
RunSummary summarize_run(const std::string& dir);

/// The `nlpkit runs list` table: run, task, model, steps, best validation metric (with its step),
/// test metric, training time, then one column per config key whose value differs between the
/// runs (name, output_dir and trainer.resume aside).
std::string format_runs_table(const std::vector<RunSummary>& runs);

/// Metric names that charts can show: the numeric keys of the records other than step, epoch
/// and wall_time, "loss" first, then in alphabetical order.
std::vector<std::string> plottable_metrics(const std::vector<nlohmann::json>& records);

/// `nlpkit plot`: one `<out_dir>/<metric>.png` line chart per metric (all plottable ones when
/// `metrics` is empty) with a line per run and split (train, valid, test) against the step,
/// runs overlaid and named in the legend. Returns the files written. Throws InputError for a
/// missing run or metrics.jsonl, or a metric no run logged (listing those logged).
std::vector<std::string> plot_runs(const std::vector<std::string>& run_dirs,
                                   const std::string& out_dir,
                                   const std::vector<std::string>& metrics = {});

}  // namespace nlpkit
