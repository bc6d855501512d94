#include "trainers/runs.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "datasets/input_error.h"
#include "datasets/png.h"
#include "trainers/checkpoint.h"
#include "trainers/logging.h"
#include "trainers/plot.h"

namespace nlpkit {
namespace fs = std::filesystem;

namespace {

/// "runs/a/" -> "a".
std::string base_name(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void flatten(const YAML::Node& node, const std::string& prefix,
             std::vector<std::pair<std::string, std::string>>* out) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      const std::string key = kv.first.Scalar();
      flatten(kv.second, prefix.empty() ? key : prefix + "." + key, out);
    }
  } else if (node.IsSequence()) {
    std::string text = "[";
    for (size_t i = 0; i < node.size(); ++i) {
      text += (i ? ", " : "") + (node[i].IsScalar() ? node[i].Scalar() : std::string("..."));
    }
    out->emplace_back(prefix, text + "]");
  } else if (node.IsScalar()) {
    out->emplace_back(prefix, node.Scalar());
  } else {
    out->emplace_back(prefix, "");
  }
}

std::string format_number(double v) {
  if (std::isnan(v)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, std::abs(v) >= 1000 ? "%.1f" : "%.4f", v);
  return buf;
}

/// The step and value of every record of `split` holding a number `metric`, by step; a step
/// logged twice (a run resumed from an earlier checkpoint) keeps its later value.
std::map<int64_t, double> metric_by_step(const std::vector<nlohmann::json>& records,
                                         const std::string& split, const std::string& metric) {
  std::map<int64_t, double> out;
  for (const auto& r : records) {
    if (r.value("split", "") != split) continue;
    auto step = r.find("step");
    auto value = r.find(metric);
    if (step == r.end() || !step->is_number_integer() || value == r.end() || !value->is_number()) {
      continue;
    }
    out[step->get<int64_t>()] = value->get<double>();
  }
  return out;
}

}  // namespace

bool is_run_dir(const std::string& dir) {
  return fs::is_regular_file(fs::path(dir) / "config.yaml") ||
         fs::is_regular_file(fs::path(dir) / "metrics.jsonl");
}

std::vector<std::string> find_runs(const std::string& dir) {
  if (!fs::is_directory(dir)) throw InputError("runs directory not found: " + dir);
  if (is_run_dir(dir)) return {dir};
  std::vector<std::string> runs;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_directory() && is_run_dir(entry.path().string())) {
      runs.push_back(entry.path().string());
    }
  }
  if (runs.empty()) {
    throw InputError("no runs under " + dir +
                     " (a run directory holds config.yaml or metrics.jsonl)");
  }
  std::sort(runs.begin(), runs.end());
  return runs;
}

std::vector<nlohmann::json> read_metrics(const std::string& run_dir) {
  if (!fs::is_directory(run_dir)) throw InputError("run directory not found: " + run_dir);
  const std::string path = (fs::path(run_dir) / "metrics.jsonl").string();
  if (!fs::exists(path)) {
    throw InputError("no metrics.jsonl in " + run_dir +
                     " (not a run directory, or trained with logging.jsonl: false)");
  }
  const std::string text = read_text(path);
  std::vector<nlohmann::json> records;
  std::istringstream lines(text);
  int64_t number = 0;
  for (std::string line; std::getline(lines, line);) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    // A run killed while writing leaves an unterminated last line: drop it.
    const bool last_unterminated = lines.eof() && !text.empty() && text.back() != '\n';
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      if (last_unterminated) break;
      throw InputError(path + ":" + std::to_string(number) + ": invalid JSON: " + e.what());
    }
    if (!record.is_object()) {
      throw InputError(path + ":" + std::to_string(number) + ": expected a JSON object");
    }
    records.push_back(std::move(record));
  }
  return records;
}

std::string RunSummary::config_value(const std::string& key) const {
  for (const auto& [k, v] : config) {
    if (k == key) return v;
  }
  return "";
}

RunSummary summarize_run(const std::string& dir) {
  if (!fs::is_directory(dir)) throw InputError("run directory not found: " + dir);
  RunSummary run;
  run.dir = dir;
  const std::string config_path = (fs::path(dir) / "config.yaml").string();
  if (fs::exists(config_path)) {
    try {
      flatten(YAML::Load(read_text(config_path)), "", &run.config);
    } catch (const YAML::Exception& e) {
      throw InputError(config_path + ": invalid YAML: " + e.msg);
    }
  }
  run.metric = run.config_value("trainer.metric");
  const bool maximize = run.config_value("trainer.metric_mode") != "min";
  std::vector<nlohmann::json> records;
  if (fs::exists(fs::path(dir) / "metrics.jsonl")) records = read_metrics(dir);
  if (run.config.empty() && records.empty() && !fs::exists(fs::path(dir) / "metrics.jsonl")) {
    throw InputError("not a run directory (no config.yaml or metrics.jsonl): " + dir);
  }
  // From metrics.jsonl: steps, time span, best validation value, last test value.
  double first_time = NAN, last_time = NAN;
  for (const auto& r : records) {
    if (r.contains("step") && r["step"].is_number_integer()) {
      run.steps = std::max(run.steps, r["step"].get<int64_t>());
    }
    if (r.contains("wall_time") && r["wall_time"].is_number()) {
      const double t = r["wall_time"].get<double>();
      first_time = std::isnan(first_time) ? t : std::min(first_time, t);
      last_time = std::isnan(last_time) ? t : std::max(last_time, t);
    }
  }
  if (!std::isnan(first_time)) run.seconds = last_time - first_time;
  if (!run.metric.empty()) {
    for (const auto& [step, value] : metric_by_step(records, "valid", run.metric)) {
      if (std::isnan(run.best) || (maximize ? value > run.best : value < run.best)) {
        run.best = value;
        run.best_step = step;
      }
    }
    const auto test = metric_by_step(records, "test", run.metric);
    if (!test.empty()) run.test = test.rbegin()->second;
  }
  // The latest checkpoint knows best: exact step, kept best and the summed training time.
  std::optional<std::string> latest;
  try {
    latest = latest_checkpoint((fs::path(dir) / "checkpoints").string());
  } catch (const std::exception&) {
    // a dangling `latest`: fall back to metrics.jsonl
  }
  if (latest && fs::exists(fs::path(*latest) / "trainer_state.json")) {
    const std::string state_path = (fs::path(*latest) / "trainer_state.json").string();
    nlohmann::json state;
    try {
      state = nlohmann::json::parse(read_text(state_path));
      run.steps = std::max(run.steps, state.at("step").get<int64_t>());
      if (state.contains("best_metric") && state["best_metric"].is_number()) {
        run.best = state["best_metric"].get<double>();
        run.best_step = state.value("best_step", int64_t{-1});
      }
      if (state.value("elapsed_seconds", 0.0) > 0) run.seconds = state["elapsed_seconds"];
    } catch (const nlohmann::json::exception& e) {
      throw InputError(state_path + ": bad trainer state: " + e.what());
    }
  }
  return run;
}

std::string format_runs_table(const std::vector<RunSummary>& runs) {
  std::vector<std::string> header = {"run",    "task",       "model",   "steps", "time",
                                     "metric", "best valid", "at step", "test"};
  // Config keys whose values differ, in the order the first run that has them lists them.
  static const std::set<std::string> ignored = {"name", "output_dir", "trainer.resume"};
  std::vector<std::string> keys;
  std::set<std::string> seen;
  for (const auto& run : runs) {
    for (const auto& [key, value] : run.config) {
      if (ignored.count(key) || !seen.insert(key).second) continue;
      for (const auto& other : runs) {
        if (other.config_value(key) != value) {
          keys.push_back(key);
          break;
        }
      }
    }
  }
  for (const auto& key : keys) header.push_back(key);
  std::vector<std::vector<std::string>> rows = {header};
  for (const auto& run : runs) {
    const std::string task = run.config_value("task");
    const std::string model = run.config_value("model.type");
    std::vector<std::string> row = {base_name(run.dir),
                                    task.empty() ? "-" : task,
                                    model.empty() ? "-" : model,
                                    std::to_string(run.steps),
                                    std::isnan(run.seconds) ? "-" : format_duration(run.seconds),
                                    run.metric.empty() ? "-" : run.metric,
                                    format_number(run.best),
                                    run.best_step >= 0 ? std::to_string(run.best_step) : "-",
                                    format_number(run.test)};
    for (const auto& key : keys) {
      const std::string v = run.config_value(key);
      row.push_back(v.empty() ? "-" : v);
    }
    rows.push_back(row);
  }
  std::vector<size_t> width(header.size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::vector<std::string> plottable_metrics(const std::vector<nlohmann::json>& records) {
  std::set<std::string> names;
  for (const auto& r : records) {
    for (const auto& [key, value] : r.items()) {
      if (value.is_number() && key != "step" && key != "epoch" && key != "wall_time") {
        names.insert(key);
      }
    }
  }
  std::vector<std::string> out;
  if (names.erase("loss")) out.push_back("loss");
  out.insert(out.end(), names.begin(), names.end());
  return out;
}

std::vector<std::string> plot_runs(const std::vector<std::string>& run_dirs,
                                   const std::string& out_dir,
                                   const std::vector<std::string>& metrics) {
  if (run_dirs.empty()) throw InputError("plot: no run directory given");
  std::vector<std::vector<nlohmann::json>> records;
  std::vector<std::string> names;
  std::vector<nlohmann::json> all;
  for (const auto& dir : run_dirs) {
    records.push_back(read_metrics(dir));
    if (records.back().empty()) throw InputError("no records in " + dir + "/metrics.jsonl");
    all.insert(all.end(), records.back().begin(), records.back().end());
    names.push_back(base_name(dir));
  }
  // Two runs with one folder name (a/run, b/run) are named by their paths instead.
  for (size_t i = 0; i < names.size(); ++i) {
    if (std::count(names.begin(), names.end(), names[i]) > 1) {
      for (size_t j = 0; j < names.size(); ++j) {
        if (names[j] == names[i] && j != i) names[j] = run_dirs[j];
      }
      names[i] = run_dirs[i];
    }
  }
  const std::vector<std::string> available = plottable_metrics(all);
  const std::vector<std::string> chosen = metrics.empty() ? available : metrics;
  for (const auto& m : chosen) {
    if (std::find(available.begin(), available.end(), m) == available.end()) {
      std::string known;
      for (const auto& a : available) known += (known.empty() ? "" : ", ") + a;
      throw InputError("plot: no run logged the metric '" + m + "'; logged: " + known);
    }
  }
  fs::create_directories(out_dir);
  std::vector<std::string> written;
  for (const auto& metric : chosen) {
    std::vector<Series> series;
    for (size_t k = 0; k < records.size(); ++k) {
      // Splits in the order the run logged them (train, valid, test).
      std::vector<std::string> splits;
      for (const auto& r : records[k]) {
        const std::string split = r.value("split", "");
        if (std::find(splits.begin(), splits.end(), split) == splits.end()) {
          splits.push_back(split);
        }
      }
      for (const auto& split : splits) {
        Series s;
        s.label = records.size() > 1 ? names[k] + " " + split : split;
        s.markers = split != "train";
        for (const auto& [step, value] : metric_by_step(records[k], split, metric)) {
          s.x.push_back(static_cast<double>(step));
          s.y.push_back(value);
        }
        if (!s.x.empty()) series.push_back(std::move(s));
      }
    }
    LineChartOptions options;
    options.title = metric;
    options.y_label = metric;
    std::string file = metric;
    std::replace(file.begin(), file.end(), '/', '_');
    const std::string path = (fs::path(out_dir) / (file + ".png")).string();
    write_png(path, render_line_chart(series, options));
    written.push_back(path);
  }
  return written;
}

}  // namespace nlpkit
