// The registries: one sorted table per kind of name a config can hold (model.type, task,
// optimizer.type, scheduler.type, tokenizer.type). `nlpkit list` prints them. No static
// self-registration: adding a model means adding a row here.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "datasets/tokenizers.h"
#include "trainers/config.h"
#include "trainers/optim.h"
#include "trainers/task.h"

namespace nlpkit {

struct ModelEntry {
  std::string name;
  std::string doc;
  /// Declares the type's keys under `model:`, bound to its options in ModelConfig.
  void (*declare)(Section& section, ModelConfig& config);
};

struct TaskEntry {
  std::string name;
  std::string doc;
  std::unique_ptr<Task> (*build)(const ExperimentConfig&, const std::string& artifacts_dir,
                                 torch::Device device);
};

struct OptimizerEntry {
  std::string name;
  std::string doc;
  /// One optimizer parameter group per ParameterGroup (same order): lr * lr_scale, and
  /// config.weight_decay where `decay`, else none.
  std::unique_ptr<torch::optim::Optimizer> (*build)(const std::vector<ParameterGroup>& groups,
                                                    const OptimizerConfig& config);
};

struct SchedulerEntry {
  std::string name;
  std::string doc;
  /// Multiplier on the peak lr at `step` (warmup is applied on top, by lr_at).
  double (*factor)(const SchedulerConfig& config, int64_t step, int64_t total_steps);
};

struct TokenizerEntry {
  std::string name;
  std::string doc;
  std::unique_ptr<Tokenizer> (*build)(const TokenizerConfig& config);
};

const std::vector<ModelEntry>& model_registry();
const std::vector<TaskEntry>& task_registry();
const std::vector<OptimizerEntry>& optimizer_registry();
const std::vector<SchedulerEntry>& scheduler_registry();
const std::vector<TokenizerEntry>& tokenizer_registry();

template <class Entry>
std::vector<std::string> registry_names(const std::vector<Entry>& table) {
  std::vector<std::string> names;
  for (const auto& e : table) names.push_back(e.name);
  return names;
}

/// The entry called `name`; a ConfigError listing the registered names when there is none.
template <class Entry>
const Entry& find_entry(const std::vector<Entry>& table, const std::string& name,
                        const std::string& kind) {
  for (const auto& e : table) {
    if (e.name == name) return e;
  }
  std::string known;
  for (const auto& e : table) known += (known.empty() ? "" : ", ") + e.name;
  throw ConfigError("unknown " + kind + " '" + name + "'; registered: " + known);
}

/// Every table, formatted for `nlpkit list`.
std::string format_registries();

}  // namespace nlpkit
