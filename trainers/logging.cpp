#include "trainers/logging.h"

#include <unistd.h>

#include <cmath>
#include <stdexcept>

#include "trainers/tensorboard.h"

namespace nlpkit {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", long(s / 3600), long(s % 3600 / 60));
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%ldm%02lds", long(s / 60), long(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lds", long(s));
  }
  return buf;
}

std::string format_log_line(const TrainProgress& p) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "step %ld/%ld | epoch %ld | loss %.4f | lr %.2e | %.0f tok/s | %.1f ex/s | "
                "%.1f ms/step | grad_norm %.3f",
                long(p.step), long(p.total_steps), long(p.epoch), p.loss, p.lr,
                p.tokens_per_second, p.examples_per_second, p.ms_per_step, p.grad_norm);
  return buf;
}

ProgressReporter::ProgressReporter(const std::string& mode, std::FILE* out) : out_(out) {
  if (mode == "none") {
    quiet_ = true;
  } else if (mode == "bar") {
    bar_ = true;
  } else if (mode == "auto") {
    bar_ = isatty(fileno(out_)) != 0;
  }
}

void ProgressReporter::update(const TrainProgress& p, bool log_line) {
  if (quiet_) return;
  const auto now = std::chrono::steady_clock::now();
  if (first_step_ < 0) {
    first_step_ = p.step - 1;
    start_ = now;
  }
  if (!bar_) {
    if (log_line) std::fprintf(out_, "%s\n", format_log_line(p).c_str());
    std::fflush(out_);
    return;
  }
  // Redraw at most 10 times a second, and always on the last step.
  if (p.step != p.total_steps && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const int64_t done = p.step - first_step_;
  const double eta = done > 0 ? elapsed / done * (p.total_steps - p.step) : NAN;
  const int width = 30;
  const int filled = p.total_steps > 0 ? int(width * p.step / p.total_steps) : 0;
  std::string bar(filled, '=');
  if (filled < width) bar += '>' + std::string(width - filled - 1, ' ');
  std::fprintf(out_, "\r[%s] %ld/%ld | epoch %ld | loss %.4f | lr %.2e | %.0f tok/s | ETA %s\033[K",
               bar.c_str(), long(p.step), long(p.total_steps), long(p.epoch), p.loss, p.lr,
               p.tokens_per_second, format_duration(eta).c_str());
  std::fflush(out_);
  bar_drawn_ = true;
}

void ProgressReporter::message(const std::string& text) {
  if (quiet_) return;
  if (bar_drawn_) std::fprintf(out_, "\r\033[K");
  std::fprintf(out_, "%s\n", text.c_str());
  std::fflush(out_);
  bar_drawn_ = false;
}

void ProgressReporter::finish() {
  if (bar_drawn_) std::fprintf(out_, "\n");
  bar_drawn_ = false;
}

MetricsLog::MetricsLog(const std::string& path) : out_(path, std::ios::app), path_(path) {
  if (!out_) throw std::runtime_error("cannot open metrics log for writing: " + path);
}

void MetricsLog::write(const nlohmann::json& record) {
  out_ << record.dump() << "\n";
  out_.flush();
  if (!out_) throw std::runtime_error("cannot write metrics log: " + path_);
}

RunLog::RunLog(const std::string& run_dir, bool jsonl, bool tensorboard) {
  if (jsonl) jsonl_ = std::make_unique<MetricsLog>(run_dir + "/metrics.jsonl");
  if (tensorboard) events_ = std::make_unique<EventWriter>(run_dir);
}

RunLog::~RunLog() = default;

void RunLog::write(nlohmann::json record) {
  const double now = unix_time();
  if (events_) {
    const std::string split = record.value("split", "train");
    std::vector<std::pair<std::string, double>> scalars;
    for (const auto& [name, value] : record.items()) {
      if (name != "step" && name != "epoch" && value.is_number()) {
        scalars.emplace_back(split + "/" + name, value.get<double>());
      }
    }
    events_->add_scalars(scalars, record.value("step", int64_t{0}), now);
  }
  if (jsonl_) {
    record["wall_time"] = now;
    jsonl_->write(record);
  }
}

}  // namespace nlpkit
