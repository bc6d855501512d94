// What a run tells its user: a progress bar on a terminal, one fixed grep-friendly line per log
// interval otherwise, and metrics.jsonl in the run directory.
#pragma once

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace nlpkit {

/// Training throughput and loss since the last report.
struct TrainProgress {
  int64_t step = 0;
  int64_t total_steps = 0;
  int64_t epoch = 0;  // 1-based, as shown
  double loss = 0;
  double lr = 0;
  double tokens_per_second = 0;
  double examples_per_second = 0;
  double ms_per_step = 0;
  double grad_norm = 0;
};

/// The fixed log line: `step 200/5000 | epoch 1 | loss 2.3141 | lr 3.00e-04 | 812 tok/s | ...`.
std::string format_log_line(const TrainProgress& p);

/// "1h02m", "3m05s", "42s".
std::string format_duration(double seconds);

class ProgressReporter {
 public:
  /// mode: auto (bar when stderr is a terminal, lines otherwise), bar, line, none.
  explicit ProgressReporter(const std::string& mode, std::FILE* out = stderr);
  /// Called every step; redraws the bar, or prints a line when `log_line` is set.
  void update(const TrainProgress& p, bool log_line);
  /// Prints a message on its own line (clearing the bar first); nothing in mode none.
  void message(const std::string& text);
  void finish();

 private:
  std::FILE* out_;
  bool bar_ = false;
  bool quiet_ = false;
  bool bar_drawn_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_draw_{};
  int64_t first_step_ = -1;
};

/// Appends one JSON object per line to <run_dir>/metrics.jsonl, flushed each time.
class MetricsLog {
 public:
  explicit MetricsLog(const std::string& path);
  void write(const nlohmann::json& record);

 private:
  std::ofstream out_;
  std::string path_;
};

class EventWriter;

/// Where the trainer's records go: metrics.jsonl and TensorBoard events in the run directory,
/// each optional (logging.jsonl, logging.tensorboard).
///   RunLog log("runs/x", /*jsonl=*/true, /*tensorboard=*/true);
///   log.write({{"split", "train"}, {"step", 10}, {"loss", 0.71}});
class RunLog {
 public:
  RunLog(const std::string& run_dir, bool jsonl, bool tensorboard);
  ~RunLog();
  /// `record` holds "split", "step" and numbers: one metrics.jsonl line (with "wall_time", Unix
  /// seconds, added) and one TensorBoard event with a scalar "<split>/<name>" for every other
  /// number but the epoch (e.g. train/loss, valid/accuracy).
  void write(nlohmann::json record);
  /// The event file, or null when TensorBoard is off.
  EventWriter* events() { return events_.get(); }

 private:
  std::unique_ptr<MetricsLog> jsonl_;
  std::unique_ptr<EventWriter> events_;
};

}  // namespace nlpkit
