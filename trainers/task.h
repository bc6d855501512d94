// A Task is the one place that knows both a model family and a data format: it owns the model,
// the data, the loss and the metrics, and the Trainer drives it without knowing either.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "trainers/config.h"
#include "trainers/safetensors.h"

namespace nlpkit {

enum class Split { kTrain, kValid, kTest };
inline const char* split_name(Split split) {
  return split == Split::kTrain ? "train" : split == Split::kValid ? "valid" : "test";
}

/// One training batch's forward pass.
struct StepOutput {
  torch::Tensor loss;    // scalar, with graph
  int64_t examples = 0;  // examples in the batch
  int64_t tokens = 0;    // non-padding tokens in the batch
};

/// An evaluation: scalar metrics (names as trainer.metric uses them, e.g. "accuracy", "loss"),
/// the full report as JSON, and a human-readable table.
struct Evaluation {
  std::map<std::string, double> metrics;
  nlohmann::json report;
  std::string table;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual std::shared_ptr<torch::nn::Module> model() = 0;
  /// Training batches in one epoch.
  virtual int64_t batches_per_epoch() = 0;
  /// Forward pass and loss on batch `batch` of `epoch` (the epoch's shuffled order is a function
  /// of seed and epoch alone, so a resumed run sees the same batches).
  virtual StepOutput train_step(int64_t epoch, int64_t batch) = 0;
  /// Whether the config names a file for `split`.
  virtual bool has_split(Split split) const = 0;
  /// Evaluates the model (eval mode, no grad) on a split.
  virtual Evaluation evaluate(Split split) = 0;
  /// `nlpkit predict`: one output line per input line (a label and its probability, generated
  /// text, ...).
  virtual std::vector<std::string> predict(const std::vector<std::string>& inputs) = 0;
  /// Classification tasks: (inputs, classes) float probabilities of each input, the columns
  /// in the order of `class_names()`; what `nlpkit predict` averages over an ensemble of
  /// checkpoints (bagging). Other tasks throw InputError.
  virtual torch::Tensor class_probabilities(const std::vector<std::string>& inputs) {
    throw InputError(
        "predict: only classification tasks have class probabilities to average over an "
        "ensemble");
  }
  virtual std::vector<std::string> class_names() const { return {}; }
  /// Learning-rate multiplier of the parameter called `name` (layer-wise decay, a faster new
  /// head); the trainer groups parameters by it.
  virtual double lr_scale(const std::string& name) const { return 1.0; }
  /// `nlpkit predict --explain DIR`: writes into `out_dir` one picture per input of what the
  /// model attended to and returns the paths. Tasks whose models have no attention to show
  /// throw InputError.
  virtual std::vector<std::string> explain(const std::vector<std::string>& inputs,
                                           const std::string& out_dir) {
    throw InputError(
        "predict --explain: this task's model has no attention weights to draw (task "
        "classification has)");
  }
  /// Tasks that do not train by backpropagation steps (word2vec's lock-free SGD on plain
  /// arrays) train here, write their outputs into the run directory and return true; `nlpkit
  /// train` then skips the Trainer. The default returns false.
  virtual bool train_standalone() { return false; }
  /// Tensors the task carries from batch to batch (e.g. a language model's hidden state), saved
  /// in checkpoints so that a resumed run continues exactly.
  virtual NamedTensors state() const { return {}; }
  virtual void load_state(const NamedTensors& state, const std::string& source) {}
  /// One line about the data: examples per split, skipped lines, vocabulary and labels.
  virtual std::string summary() const { return ""; }
  /// Writes what is needed besides the weights to rebuild the task (vocabulary, label names).
  virtual void save_artifacts(const std::string& dir) const = 0;
  /// `nlpkit export --format hf`: writes the model as a HuggingFace folder into the empty
  /// directory `dir` (config.json, model.safetensors, tokenizer files; LoRA merged).
  virtual void export_huggingface(const std::string& dir) {
    throw InputError("export --format hf: only BERT and DeBERTa models have a HuggingFace format");
  }
};

/// Builds the task named by config.task. With `artifacts_dir` (a checkpoint), vocabulary and
/// labels come from there; otherwise from the training data.
std::unique_ptr<Task> make_task(const ExperimentConfig& config, const std::string& artifacts_dir,
                                torch::Device device);

}  // namespace nlpkit
