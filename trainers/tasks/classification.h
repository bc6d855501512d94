// Task `classification`: text -> label, read from TSV/CSV/JSONL, trained with cross-entropy,
// evaluated with accuracy, per-class and macro/micro precision/recall/F1, ROC-AUC and the
// confusion matrix. Models: text_cnn_bilstm_attention (documents -> sentences -> words) and bert.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "trainers/task.h"

namespace nlpkit {

struct ClassificationReport;

/// The Evaluation of a classification report: metrics accuracy, loss, macro/micro P/R/F1 and
/// roc_auc when defined; the report as JSON and its table.
Evaluation classification_evaluation(const ClassificationReport& report);

/// Evaluates a classifier over examples 0..n-1 (n = labels.size()) in batches of `batch_size`:
/// `logits(indices)` gives (batch, classes) logits; mean cross-entropy loss, probabilities and
/// the classification report. The caller sets eval mode and no-grad.
Evaluation evaluate_classifier(const std::vector<int64_t>& labels, int64_t batch_size,
                               const std::vector<std::string>& names,
                               const std::function<torch::Tensor(const std::vector<int64_t>&)>& logits);

/// Softmax probabilities (n, classes) of inputs 0..n-1, in batches of `batch_size`:
/// `logits(indices)` gives (batch, classes) logits. The caller sets eval mode and no-grad.
torch::Tensor class_probabilities_of(
    int64_t n, int64_t batch_size,
    const std::function<torch::Tensor(const std::vector<int64_t>&)>& logits);

/// `nlpkit predict` lines: "label<TAB>probability" of each row's most likely class.
std::vector<std::string> label_lines(const torch::Tensor& probabilities,
                                     const std::vector<std::string>& names);

/// The `summary()` line of a classification task: examples per split (with the malformed lines
/// skipped), the vocabulary size and the label names.
std::string classification_summary(const std::map<Split, int64_t>& examples,
                                   const std::map<Split, int64_t>& skipped, int64_t vocab_size,
                                   const std::vector<std::string>& labels);

/// Task `classification`; model.type bert builds the BERT classifier (trainers/tasks/bert.h).
std::unique_ptr<Task> make_classification_task(const ExperimentConfig& config,
                                               const std::string& artifacts_dir,
                                               torch::Device device);

}  // namespace nlpkit
